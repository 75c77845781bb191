"""Unit tests of the per-tenant job builder (pure: no network, no database)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import msgspec
import pytest

from app.core.errors import ValidationFailed
from app.core.tenant_keys import TenantKeys
from app.scheduler.base import TenantRef, job_id_for
from app.scheduler.nomad_job import (
    CHECK_NAME,
    GENERATION,
    GENERATION_META,
    SECOND,
    SESSIONS_ALLOC_VOLUME,
    build_job,
    render,
    resources_for_plan,
    secret_items,
)
from tests.doubles import validate_register_body

UID = "6f1c2b9e-3a4d-4e5f-8a7b-9c0d1e2f3a4b"
DURATION_FIELDS = {
    "Interval",
    "Timeout",
    "Delay",
    "MaxDelay",
    "MinHealthyTime",
    "HealthyDeadline",
    "ProgressDeadline",
    "Grace",
    "KillTimeout",
    "ShutdownDelay",
}
HCL = Path(__file__).resolve().parents[2] / "nomad" / "whago-waha.nomad.hcl"


def job_of(settings, plan="business", email="Alice@Example.COM", **over):
    if over:
        settings = msgspec.structs.replace(settings, **over)
    return build_job(settings, TenantRef(id=UID, plan=plan, email=email))["Job"]


@pytest.mark.parametrize(("plan", "chips"), [("free", 1), ("business", 3), ("enterprise", 10)])
def test_resources_follow_the_plan(base_settings, plan, chips):
    s = base_settings
    res = job_of(s, plan)["TaskGroups"][0]["Tasks"][0]["Resources"]
    assert res == {
        "CPU": s.waha_cpu_base_mhz + s.waha_cpu_per_chip_mhz * chips,
        "MemoryMB": s.waha_memory_base_mb + s.waha_memory_per_chip_mb * chips,
    }
    assert resources_for_plan(s, plan) == res


def test_resources_are_configurable(base_settings):
    job = job_of(
        base_settings,
        "free",
        waha_cpu_base_mhz=50,
        waha_cpu_per_chip_mhz=10,
        waha_memory_base_mb=128,
        waha_memory_per_chip_mb=64,
    )
    assert job["TaskGroups"][0]["Tasks"][0]["Resources"] == {"CPU": 60, "MemoryMB": 192}


def test_priority_follows_the_plan_free_lowest(base_settings):
    priorities = {plan: job_of(base_settings, plan)["Priority"] for plan in ("free", "business", "enterprise")}
    assert priorities["free"] < priorities["business"] < priorities["enterprise"]
    assert priorities["free"] < 50 <= priorities["business"]  # below Nomad's default for other jobs
    assert all(1 <= p <= 100 for p in priorities.values())
    # plans with the same limit share a priority; custom plans are ranked the same way
    custom = job_of(base_settings, "pro", plans="trial=1,pro=5,team=5")
    assert custom["Priority"] == job_of(base_settings, "team", plans="trial=1,pro=5,team=5")["Priority"] == 50


def test_chip_count_does_not_change_the_job(base_settings):
    a = build_job(base_settings, TenantRef(id=UID, plan="business", chip_count=1))
    b = build_job(base_settings, TenantRef(id=UID, plan="business", chip_count=3))
    assert a == b  # adding a chip must not restart the tenant's WAHA


def test_unknown_plan_and_bad_user_id_are_rejected(base_settings):
    with pytest.raises(ValidationFailed):
        job_of(base_settings, "platinum")
    with pytest.raises(ValueError):
        build_job(base_settings, TenantRef(id="Robert'); DROP", plan="free"))


def test_identity_and_meta(base_settings):
    job = job_of(base_settings)
    assert job["ID"] == job["Name"] == f"whago-waha-{UID}" == job_id_for(UID.upper())
    assert job["Type"] == "service"
    assert job["Namespace"] == base_settings.nomad_namespace
    assert job["Datacenters"] == ["dc1"]
    meta = job["Meta"]
    assert meta["whago_user_id"] == UID
    assert meta["whago_plan"] == "business"
    assert meta["whago_email_domain"] == "example.com"  # the domain only, not the mailbox
    assert meta["created_by"] == "whago"
    assert meta[GENERATION_META] == str(GENERATION)
    # nothing in any Meta (all of it reaches the task's environment) changes with the spec
    assert not any(re.fullmatch(r"[0-9a-f]{16,}", v) for v in meta.values())


def test_service_check_and_port(base_settings):
    group = job_of(base_settings)["TaskGroups"][0]
    assert group["Count"] == 1
    assert group["Networks"] == [{"Mode": "host", "DynamicPorts": [{"Label": "http", "To": 3000}]}]
    # at task level: check_restart's grace counts from the task's start, after the image pull
    assert "Services" not in group
    [service] = group["Tasks"][0]["Services"]
    assert service["Name"] == f"whago-waha-{UID}"
    assert service["Provider"] == "consul"
    assert service["PortLabel"] == "http"
    assert f"user-{UID}" in service["Tags"]
    assert service["Meta"]["whago_user_id"] == UID
    [check] = service["Checks"]
    assert check["Name"] == CHECK_NAME
    assert check["Type"] == "http"
    assert check["Path"] == "/ping"
    assert check["Interval"] == 10 * SECOND
    assert check["Timeout"] == 2 * SECOND
    task = group["Tasks"][0]
    assert task["Driver"] == "docker"
    assert task["Config"] == {
        "image": base_settings.waha_image,
        "ports": ["http"],
        "volumes": [SESSIONS_ALLOC_VOLUME],
    }


def test_policies_use_nanoseconds_and_nomad_casing(base_settings):
    job = job_of(base_settings)
    group = job["TaskGroups"][0]
    assert "Reschedule" not in job
    assert "ReschedulePolicy" in group
    assert group["RestartPolicy"]["Mode"] == "fail"
    assert job["Update"]["HealthCheck"] == "checks"

    def durations(obj, path=""):
        if isinstance(obj, dict):
            for k, v in obj.items():
                yield from durations(v, f"{path}.{k}")
        elif isinstance(obj, list):
            for i, v in enumerate(obj):
                yield from durations(v, f"{path}[{i}]")
        elif path.rsplit(".", 1)[-1] in DURATION_FIELDS:
            yield path, obj

    found = dict(durations(job))
    assert len(found) >= 12, found
    assert all(isinstance(v, int) and not isinstance(v, bool) and v >= SECOND for v in found.values()), found


def test_env(base_settings):
    env = job_of(base_settings)["TaskGroups"][0]["Tasks"][0]["Env"]
    key = base_settings.waha_api_key
    assert "WAHA_API_KEY" not in env  # in the job's Variable, as the tenant's key's hash
    tenant_key = TenantKeys(base_settings).api_key(UID)
    items = secret_items(base_settings, UID)
    assert items["WAHA_API_KEY"] == "sha512:" + hashlib.sha512(tenant_key.encode()).hexdigest()
    assert key not in json.dumps(job_of(base_settings))  # the plain key never reaches Nomad
    assert env["WAHA_WORKER_ID"] == f"whago-waha-{UID}"
    assert env["WHATSAPP_DEFAULT_ENGINE"] == "GOWS"
    # sessions carry their own webhook config; a global hook would double every event
    assert not any(name.startswith("WHATSAPP_HOOK_") for name in env)
    assert base_settings.webhook_hmac_key not in json.dumps(job_of(base_settings))
    assert "WHATSAPP_SESSIONS_POSTGRESQL_URL" not in env
    with_db = job_of(base_settings, waha_sessions_database_url="postgres://w:p@db/waha", waha_engine="NOWEB")
    env = with_db["TaskGroups"][0]["Tasks"][0]["Env"]
    assert "WHATSAPP_SESSIONS_POSTGRESQL_URL" not in env  # a secret: in the Variable
    db_settings = msgspec.structs.replace(base_settings, waha_sessions_database_url="postgres://w:p@db/waha")
    assert secret_items(db_settings, UID)["WHATSAPP_SESSIONS_POSTGRESQL_URL"] == "postgres://w:p@db/waha"
    assert env["WHATSAPP_DEFAULT_ENGINE"] == "NOWEB"


def test_optional_settings(base_settings):
    plain = job_of(base_settings)
    assert "Volumes" not in plain["TaskGroups"][0]
    assert "NodePool" not in plain
    assert "Constraints" not in plain
    assert "auth" not in plain["TaskGroups"][0]["Tasks"][0]["Config"]
    job = job_of(
        base_settings,
        waha_sessions_host_volume="whago-sessions",
        waha_registry_username="bot",
        waha_registry_password="pw",
        waha_image="registry.example.com/waha:2026.7.1",
        nomad_datacenters="dc1, dc2",
        nomad_namespace="whago",
        nomad_region="eu",
        nomad_node_pool="waha",
        nomad_constraints='[{"LTarget": "${node.class}", "Operand": "=", "RTarget": "waha"}]',
    )
    group = job["TaskGroups"][0]
    task = group["Tasks"][0]
    assert group["Volumes"] == {
        "sessions": {"Name": "sessions", "Type": "host", "Source": "whago-sessions", "ReadOnly": False}
    }
    assert task["VolumeMounts"] == [{"Volume": "sessions", "Destination": "/app/.sessions", "ReadOnly": False}]
    # the password is interpolated from the template's env when the task starts
    assert task["Config"]["auth"] == {"username": "bot", "password": "${WHAGO_REGISTRY_PASSWORD}"}
    assert task["Config"]["image"] == "registry.example.com/waha:2026.7.1"
    assert job["Datacenters"] == ["dc1", "dc2"]
    assert job["Namespace"] == "whago"
    assert job["Region"] == "eu"
    assert job["NodePool"] == "waha"
    assert job["Constraints"] == [{"LTarget": "${node.class}", "Operand": "=", "RTarget": "waha"}]
    assert validate_register_body({"Job": job}) == []


def test_bad_constraints_setting(base_settings):
    for raw in ("not json", '{"LTarget": "x"}', '[{"Ltarget": "x"}]'):
        with pytest.raises(ValidationFailed):
            job_of(base_settings, nomad_constraints=raw)


def test_meta_does_not_follow_the_spec(base_settings):
    # A digest in Meta would restart WAHA on any change: the adapter asks Nomad's plan instead.
    assert job_of(base_settings)["Meta"] == job_of(base_settings, waha_image="devlikeapro/waha:gows-2026.8.1")["Meta"]


@pytest.mark.parametrize("image", ["devlikeapro/waha", "devlikeapro/waha:latest", "registry:5000/waha"])
def test_unpinned_image_is_refused(base_settings, image):
    with pytest.raises(ValidationFailed, match="pinned"):
        job_of(base_settings, waha_image=image)


def test_pinned_images(base_settings):
    for image in ("devlikeapro/waha:gows-2026.7.1", "registry:5000/waha:1.2", "devlikeapro/waha@sha256:" + "a" * 64):
        assert job_of(base_settings, waha_image=image)["TaskGroups"][0]["Tasks"][0]["Config"]["image"] == image


def test_sessions_persist_by_default(base_settings):
    """No sessions database, no host volume: WAHA's files live on a sticky, migrating
    ephemeral disk, per allocation (so per tenant), mounted through the alloc dir."""
    group = job_of(base_settings)["TaskGroups"][0]
    assert group["EphemeralDisk"]["Sticky"] is True
    assert group["EphemeralDisk"]["Migrate"] is True
    assert group["Tasks"][0]["Config"]["volumes"] == ["../alloc/data/waha-sessions:/app/.sessions"]
    # with a sessions database WAHA keeps them there: no bind mount needed
    task = job_of(base_settings, waha_sessions_database_url="postgres://w:p@db/waha")["TaskGroups"][0]["Tasks"][0]
    assert "volumes" not in task["Config"]


def test_disconnect_and_ui(base_settings):
    job = job_of(base_settings, public_url="https://whago.example.com/")
    group = job["TaskGroups"][0]
    assert group["Disconnect"]["StopOnClientAfter"] == 60 * SECOND
    assert job["UI"]["Links"] == [{"Label": "Tenant in WHAGO", "URL": f"https://whago.example.com/admin/users/{UID}"}]
    assert job["Update"]["AutoRevert"] is False  # see nomad_job: a revert would loop with ensure
    assert group["Tasks"][0]["KillTimeout"] <= 30 * SECOND


def test_builder_output_passes_the_strict_schema(base_settings):
    assert validate_register_body(build_job(base_settings, TenantRef(id=UID, plan="free"))) == []


def test_render_prints_the_registration_body(base_settings):
    text = render(UID, "enterprise", base_settings)
    body = json.loads(text)
    assert list(body) == ["Job"]
    assert body == build_job(base_settings, TenantRef(id=UID, plan="enterprise"))
    assert text.startswith('{\n  "Job"')


def test_hcl_file_matches_the_builder(base_settings):
    """The operator's HCL twin names the same things the adapter submits."""
    hcl = HCL.read_text()
    job = job_of(base_settings)
    group = job["TaskGroups"][0]
    for needle in (
        f'group "{group["Name"]}"',
        f'task "{group["Tasks"][0]["Name"]}"',
        'port "http"',
        "to = 3000",
        f'"{CHECK_NAME}"',
        'path     = "/ping"',
        'provider = "consul"',
        'driver = "docker"',
        "/app/.sessions",
    ):
        assert needle in hcl, needle
    for name in group["Tasks"][0]["Env"]:
        assert name in hcl, name
    for name in job["Meta"]:
        assert name in hcl, name
