"""Every HCL file under nomad/ parses (python-hcl2), has nothing Nomad would refuse (no dynamic
block inside a driver ``config``, kill timeouts within the client's default maximum), and the
per-tenant job's HCL twin names the same things as the JSON job the adapter submits."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import hcl2
import pytest

from app.scheduler.base import TenantRef
from app.scheduler.nomad_job import SECOND, build_job

NOMAD_DIR = Path(__file__).resolve().parents[2] / "nomad"
HCL_FILES = sorted(NOMAD_DIR.rglob("*.hcl"))
UID = "6f1c2b9e-3a4d-4e5f-8a7b-9c0d1e2f3a4b"
_UNITS = {"ms": SECOND // 1000, "s": SECOND, "m": 60 * SECOND, "h": 3600 * SECOND}


def load(path: Path) -> dict[str, Any]:
    with path.open() as fh:
        return hcl2.load(fh)


def unquote(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def blocks(node: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return list(node.get(name) or [])


def labelled(node: dict[str, Any], name: str) -> dict[str, dict[str, Any]]:
    """``group "waha" { ... }`` blocks as {label: body}."""
    return {unquote(label): body for block in blocks(node, name) for label, body in block.items()}


class Evaluator:
    """Just enough HCL evaluation for the twin: variables (defaults or given) and interpolation."""

    def __init__(self, doc: dict[str, Any], given: dict[str, Any]) -> None:
        self.vars = {name: unquote(body.get("default")) for name, body in labelled(doc, "variable").items()}
        self.vars.update(given)

    def __call__(self, value: Any) -> Any:
        value = unquote(value)
        if not isinstance(value, str):
            return value
        whole = re.fullmatch(r"\$\{var\.(\w+)\}", value)
        if whole:
            return self.vars[whole.group(1)]
        return re.sub(r"\$\{var\.(\w+)\}", lambda m: str(self.vars[m.group(1)]), value)


def duration(text: str) -> int:
    match = re.fullmatch(r"(\d+)(ms|s|m|h)", text)
    assert match, text
    return int(match.group(1)) * _UNITS[match.group(2)]


def walk(node: Any, path: str = ""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, key, value
            yield from walk(value, f"{path}/{unquote(key)}")
    elif isinstance(node, list):
        for item in node:
            yield from walk(item, path)


@pytest.mark.parametrize("path", HCL_FILES, ids=lambda p: str(p.relative_to(NOMAD_DIR)))
def test_hcl_file_is_acceptable_to_nomad(path):
    doc = load(path)
    for where, key, value in walk(doc):
        if key == "config" and isinstance(value, list):
            for config in value:
                assert "dynamic" not in config, f"{path.name}: dynamic block inside {where}/config"
        if key == "kill_timeout":
            assert duration(unquote(value)) <= 30 * SECOND, f"{path.name}: {where} kill_timeout {value}"


def test_examples_do_not_assign_bash_readonly_variables():
    for path in [*HCL_FILES, NOMAD_DIR / "README.md"]:
        for line in path.read_text().splitlines():
            assert not re.search(r"(^|[\s;#])UID=", line), f"{path.name}: {line.strip()}"


@pytest.fixture
def twin(base_settings):
    doc = load(NOMAD_DIR / "whago-waha.nomad.hcl")
    ev = Evaluator(doc, {"user_id": UID})
    [(_, hcl_job)] = labelled(doc, "job").items()
    job = build_job(base_settings, TenantRef(id=UID, plan="free"))["Job"]
    return ev, hcl_job, job


def test_twin_job_level(twin, base_settings):
    ev, hcl_job, job = twin
    assert ev(hcl_job["name"]) == job["Name"]
    assert ev(hcl_job["type"]) == job["Type"]
    assert ev(hcl_job["priority"]) == job["Priority"]
    [meta] = blocks(hcl_job, "meta")
    assert {k for k in meta if not k.startswith("__")} == set(job["Meta"])
    assert ev(meta["whago_job_generation"]) == job["Meta"]["whago_job_generation"]
    [update] = blocks(hcl_job, "update")
    assert update["auto_revert"] is job["Update"]["AutoRevert"] is False
    assert duration(ev(update["min_healthy_time"])) == job["Update"]["MinHealthyTime"]
    [ui] = blocks(hcl_job, "ui")
    assert ev(blocks(ui, "link")[0]["url"]) == job["UI"]["Links"][0]["URL"]


def test_twin_group_and_task(twin, base_settings):
    ev, hcl_job, job = twin
    [(gname, group)] = labelled(hcl_job, "group").items()
    jgroup = job["TaskGroups"][0]
    assert gname == jgroup["Name"]
    assert group["count"] == jgroup["Count"]
    [network] = blocks(group, "network")
    ports = labelled(network, "port")
    assert {label: body["to"] for label, body in ports.items()} == {
        p["Label"]: p["To"] for p in jgroup["Networks"][0]["DynamicPorts"]
    }
    [disk] = blocks(group, "ephemeral_disk")
    assert (disk["size"], disk["sticky"], disk["migrate"]) == tuple(jgroup["EphemeralDisk"].values())
    [disconnect] = blocks(group, "disconnect")
    assert duration(ev(disconnect["stop_on_client_after"])) == jgroup["Disconnect"]["StopOnClientAfter"]
    assert "service" not in group  # the service lives on the task, as in the JSON job

    [(tname, task)] = labelled(group, "task").items()
    jtask = jgroup["Tasks"][0]
    assert tname == jtask["Name"]
    assert ev(task["driver"]) == jtask["Driver"]
    [config] = blocks(task, "config")
    assert ev(config["image"]) == jtask["Config"]["image"] == base_settings.waha_image
    assert [ev(p) for p in config["ports"]] == jtask["Config"]["ports"]
    assert jtask["Config"]["volumes"][0] in config["volumes"]  # the default case of the expression
    [env] = blocks(task, "env")
    assert set(jtask["Env"]) <= {k for k in env if not k.startswith("__")}
    assert ev(env["WAHA_WORKER_ID"]) == jtask["Env"]["WAHA_WORKER_ID"]
    # secrets: a template of the job's own Variable into the environment, as in the JSON job
    [template] = blocks(task, "template")
    [jtemplate] = jtask["Templates"]
    assert ev(template["destination"]) == jtemplate["DestPath"]
    assert template["env"] is jtemplate["Envvars"] is True
    assert ev(template["change_mode"]) == jtemplate["ChangeMode"]
    assert f'nomadVar "nomad/jobs/whago-waha-{UID}"' in ev(template["data"])
    assert f'nomadVar "nomad/jobs/{jtask["Env"]["WAHA_WORKER_ID"]}"' in jtemplate["EmbeddedTmpl"]
    [resources] = blocks(task, "resources")
    assert {"CPU": ev(resources["cpu"]), "MemoryMB": ev(resources["memory"])} == jtask["Resources"]
    assert duration(ev(task["kill_timeout"])) == jtask["KillTimeout"]

    [service] = blocks(task, "service")
    [jservice] = jtask["Services"]
    assert ev(service["name"]) == jservice["Name"]
    assert ev(service["provider"]) == jservice["Provider"]
    assert ev(service["port"]) == jservice["PortLabel"]
    assert [ev(t) for t in service["tags"]] == jservice["Tags"]
    [smeta] = blocks(service, "meta")
    assert {k: ev(v) for k, v in smeta.items() if not k.startswith("__")} == jservice["Meta"]
    [check] = blocks(service, "check")
    [jcheck] = jservice["Checks"]
    assert (ev(check["name"]), ev(check["type"]), ev(check["path"])) == (jcheck["Name"], jcheck["Type"], jcheck["Path"])
    assert duration(ev(check["interval"])) == jcheck["Interval"]
    assert duration(ev(check["timeout"])) == jcheck["Timeout"]
    [restart] = blocks(check, "check_restart")
    assert restart["limit"] == jcheck["CheckRestart"]["Limit"]
    assert duration(ev(restart["grace"])) == jcheck["CheckRestart"]["Grace"]
