"""Strict validation of submitted Nomad jobs against HashiCorp's OpenAPI ``Job`` schema.

Real Nomad decodes job JSON with Go's ``encoding/json``: keys match case-insensitively and unknown
keys are silently dropped, so a misspelt field is lost without an error. The double is stricter on
purpose, so that tests catch such mistakes:

* every object schema that lists ``properties`` gets ``additionalProperties: false`` (unknown or
  mis-cased keys are rejected);
* ``integer`` accepts only JSON integers (no floats, no booleans, no ``"10s"`` strings), which is
  what Go does for ``int``/``time.Duration`` fields;
* a few semantic rules of Nomad's ``Job.Validate`` and the docker driver's config spec.

Deliberate, documented extensions to the 2023 spec (which matches Nomad ~1.3-1.5). This list,
and ``EXTENSIONS`` below, are the one place where the double accepts fields the spec lacks:

* ``Job.NodePool`` (string): added in Nomad 1.6.0 (``api/jobs.go`` ``Job.NodePool``;
  ``website/content/docs/job-specification/job.mdx`` "node_pool").
* ``Job.UI`` ``{Description, Links: [{Label, URL}]}``: Nomad 1.8.0 (``api/jobs.go``
  ``JobUIConfig``/``JobUILink``; ``docs/job-specification/ui.mdx``).
* ``TaskGroup.Disconnect`` ``{LostAfter, StopOnClientAfter, Replace, Reconcile}``: Nomad 1.8.0
  (``api/tasks.go`` ``DisconnectStrategy``, no JSON tags so Go names; ``disconnect.mdx``). It
  replaces ``StopAfterClientDisconnect``/``MaxClientDisconnect``, which the spec has.

Test-only strictness (real Nomad is laxer; each answered 400 by the double, see
``check_register_body``): unknown or mis-cased keys anywhere, docker ``Config`` keys and types,
``KillTimeout`` above the client's default ``max_kill_timeout`` (30 s).
* ``Task.Config`` for ``Driver == "docker"`` is checked against the docker driver's task config
  keys (``drivers/docker/config.go`` ``taskConfigSpec``, lowercase HCL names), a subset listed in
  ``DOCKER_CONFIG_KEYS``. Real Nomad checks this on the client when the task starts.
"""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import yaml

from tests.support.reference import reference_file

SPEC_NAME = "nomad-openapi.yaml"  # ../shared/reference, see tests/support/reference.py

SECOND = 1_000_000_000
_SERVICE_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")

DOCKER_CONFIG_KEYS: dict[str, Any] = {
    "image": str,
    "ports": list,
    "args": list,
    "command": str,
    "entrypoint": list,
    "auth": (dict, list),
    "auth_soft_fail": bool,
    "force_pull": bool,
    "image_pull_timeout": str,
    "labels": (dict, list),
    "network_mode": str,
    "volumes": list,
    "mount": list,
    "logging": (dict, list),
    "work_dir": str,
    "hostname": str,
    "dns_servers": list,
    "extra_hosts": list,
    "cap_add": list,
    "cap_drop": list,
    "privileged": bool,
    "init": bool,
    "readonly_rootfs": bool,
    "shm_size": int,
    "pids_limit": int,
    "ulimit": (dict, list),
    "security_opt": list,
    "sysctl": (dict, list),
    "memory_hard_limit": int,
    "cpu_hard_limit": bool,
}
_DOCKER_AUTH_KEYS = {"username", "password", "email", "server_address"}


_DURATION = {"type": "integer"}
EXTENSIONS: list[tuple[str, str, dict[str, Any]]] = [  # (schema, field, JSON schema): see module doc
    ("Job", "NodePool", {"type": "string"}),
    (
        "Job",
        "UI",
        {
            "type": "object",
            "properties": {
                "Description": {"type": "string"},
                "Links": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"Label": {"type": "string"}, "URL": {"type": "string"}}},
                },
            },
        },
    ),
    (
        "TaskGroup",
        "Disconnect",
        {
            "type": "object",
            "properties": {
                "LostAfter": _DURATION,
                "StopOnClientAfter": _DURATION,
                "Replace": {"type": "boolean"},
                "Reconcile": {"enum": ["keep_original", "keep_replacement", "best_score", "longest_running"]},
            },
        },
    ),
]


def _spec_path() -> Path:
    return reference_file(SPEC_NAME)


@functools.lru_cache(maxsize=1)
def _schemas() -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with _spec_path().open() as fh:
        spec = yaml.load(fh, Loader=loader)  # noqa: S506 - a SafeLoader (the C one when built)
    schemas = copy.deepcopy(spec["components"]["schemas"])
    for schema_name, field, extension in EXTENSIONS:
        schemas[schema_name]["properties"][field] = extension
    for schema in schemas.values():
        _close(schema)
    return schemas


def _close(schema: Any) -> None:
    if isinstance(schema, dict):
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        for value in schema.values():
            _close(value)
    elif isinstance(schema, list):
        for item in schema:
            _close(item)


def _is_go_int(checker: Any, instance: Any) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


_TypeChecker = jsonschema.Draft7Validator.TYPE_CHECKER.redefine("integer", _is_go_int)
_Validator = jsonschema.validators.extend(jsonschema.Draft7Validator, type_checker=_TypeChecker)


@functools.lru_cache(maxsize=1)
def _register_validator() -> Any:
    root = {"$ref": "#/components/schemas/JobRegisterRequest", "components": {"schemas": _schemas()}}
    return _Validator(root)


@functools.lru_cache(maxsize=1)
def _variable_validator() -> Any:
    root = {"$ref": "#/components/schemas/Variable", "components": {"schemas": _schemas()}}
    return _Validator(root)


def validate_variable_body(body: Any) -> list[str]:
    """Problems with a ``PUT /v1/var/:path`` body (the OpenAPI ``Variable`` schema, closed)."""
    if not isinstance(body, dict):
        return ["Failed to decode request body: expected a JSON object"]
    return ["Failed to decode request body: " + _describe(e) for e in _variable_validator().iter_errors(body)]


def _path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<body>"


def _describe(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        return f"json: unknown field in {_path(error)}: {error.message}"
    if error.validator == "type":
        return (
            f"json: cannot unmarshal {type(error.instance).__name__} {error.instance!r} into field "
            f"{_path(error)} of type {error.validator_value}"
        )
    return f"{_path(error)}: {error.message}"


class Rejection(msgspec.Struct, frozen=True):
    """Why the double refuses a registration, and how Nomad would answer it."""

    status: int  # 400: the body does not decode (or test-only strictness); 500: Job.Validate
    text: str
    problems: list[str]


def multierror(problems: list[str]) -> str:
    """Nomad's text for validation errors (hashicorp/go-multierror's list format)."""
    head = "1 error occurred:" if len(problems) == 1 else f"{len(problems)} errors occurred:"
    return head + "\n" + "\n".join(f"\t* {p}" for p in problems) + "\n\n"


def check_register_body(body: Any, path_job_id: str | None = None) -> Rejection | None:
    """None when Nomad would accept ``{"Job": {...}}``; otherwise the answer it would give.

    * 400 ``Failed to decode request body: ...``: not an object, wrong JSON types (as Go's decoder),
      and the double's test-only strictness (unknown or mis-cased keys, docker config keys);
    * 400 for the handler's own checks (missing ``Job``/``ID``, path id mismatch);
    * 500 with a multierror text for what ``Job.Validate`` refuses (observed on a real agent, see
      ``nomad-consul.md`` §1.9): bad counts, types, priorities, service names, check intervals...
    """
    if not isinstance(body, dict):
        problems = ["Failed to decode request body: expected a JSON object"]
        return Rejection(400, problems[0], problems)
    errors = sorted(_register_validator().iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        problems = ["Failed to decode request body: " + _describe(e) for e in errors[:20]]
        return Rejection(400, "; ".join(problems), problems)
    job = body.get("Job")
    if not isinstance(job, dict):
        return Rejection(400, "Job must be specified", ["Job must be specified"])
    job_id = job.get("ID") or ""
    if not job_id:
        return Rejection(400, "Job ID hasn't been provided", ["Job ID hasn't been provided"])
    if path_job_id is not None and path_job_id != job_id:
        return Rejection(400, "Job ID does not match name", ["Job ID does not match name"])
    strict = _test_only_strictness(job)
    if strict:
        return Rejection(400, "; ".join(strict), strict)
    problems = _semantic(job)
    if problems:
        return Rejection(500, multierror(problems), problems)
    return None


def validate_register_body(body: Any, path_job_id: str | None = None) -> list[str]:
    """Problems with a registration body, whatever their status; empty when acceptable."""
    rejection = check_register_body(body, path_job_id)
    return rejection.problems if rejection else []


def _test_only_strictness(job: dict[str, Any]) -> list[str]:
    """Docker config checks: real Nomad only decodes ``Config`` on the client when the task
    starts (a failed task, not a refused job); the double refuses at once so tests see it.
    ``KillTimeout`` above 30 s: the client silently caps it at ``max_kill_timeout`` (30 s by
    default), so a job must not rely on a longer one."""
    problems: list[str] = []
    for group in job.get("TaskGroups") or []:
        labels = _labels(group)
        for task in group.get("Tasks") or []:
            if (task.get("KillTimeout") or 0) > 30 * SECOND:
                problems.append(f"Task {task.get('Name')!r}: KillTimeout above the default max_kill_timeout (30s)")
            if task.get("Driver") == "docker":
                problems += _docker_config(task.get("Name") or "", task.get("Config") or {}, labels)
    return ["Failed to decode request body: " + p for p in problems]


def _labels(group: dict[str, Any]) -> set[Any]:
    return {
        p.get("Label")
        for net in group.get("Networks") or []
        for p in (net.get("DynamicPorts") or []) + (net.get("ReservedPorts") or [])
    }


def _semantic(job: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    job_id = job.get("ID") or ""
    if " " in job_id or "\x00" in job_id:
        problems.append("Job ID contains a space or null character")
    if job.get("Type", "service") not in ("service", "batch", "system", "sysbatch"):
        problems.append(f"Invalid job type: {job.get('Type')!r}")
    if not job.get("Datacenters"):
        problems.append("Missing job datacenters")
    priority = job.get("Priority", 50)
    if not 1 <= priority <= 100:
        problems.append("Job priority must be between [1, 100]")
    groups = job.get("TaskGroups") or []
    if not groups:
        problems.append("Missing job task groups")
    update = job.get("Update") or {}
    if update.get("HealthCheck", "checks") not in ("checks", "task_states", "manual"):
        problems.append(f"Invalid health check given: {update.get('HealthCheck')!r}")
    names: set[str] = set()
    for group in groups:
        problems += _group(group, names)
    return problems


def _duration_ok(value: Any, minimum: int = 0) -> bool:
    return value is None or value >= minimum


def _group(group: dict[str, Any], names: set[str]) -> list[str]:
    problems: list[str] = []
    gname = group.get("Name") or ""
    if not gname:
        problems.append("Task group must have a name")
    if gname in names:
        problems.append(f"Job task group {gname!r} redefined")
    names.add(gname)
    if (group.get("Count") or 0) < 0:
        problems.append(f"Task group {gname!r}: Count can't be negative")
    labels = _labels(group)
    for net in group.get("Networks") or []:
        if net.get("Mode", "host") not in ("host", "bridge", "none") and not str(net.get("Mode")).startswith("cni/"):
            problems.append(f"Task group {gname!r}: invalid network mode {net.get('Mode')!r}")
        for port in net.get("DynamicPorts") or []:
            if not port.get("Label"):
                problems.append(f"Task group {gname!r}: port label missing")
            if not 0 <= (port.get("To") or 0) <= 65535:
                problems.append(f"Task group {gname!r}: port To out of range")
    restart = group.get("RestartPolicy") or {}
    if restart.get("Mode", "fail") not in ("fail", "delay"):
        problems.append(f"Unsupported restart mode: {restart.get('Mode')!r}")
    resched = group.get("ReschedulePolicy") or {}
    if resched.get("DelayFunction", "exponential") not in ("constant", "exponential", "fibonacci"):
        problems.append(f"Invalid delay function {resched.get('DelayFunction')!r}")
    volumes = group.get("Volumes") or {}
    for key, vol in volumes.items():
        if vol.get("Type") not in ("host", "csi"):
            problems.append(f"Volume {key!r}: invalid type {vol.get('Type')!r}")
        if not vol.get("Source"):
            problems.append(f"Volume {key!r} has an empty source")
    for service in group.get("Services") or []:
        problems += _service(gname, service, labels)
    tasks = group.get("Tasks") or []
    if not tasks:
        problems.append(f"Task group {gname!r}: missing tasks")
    for task in tasks:
        problems += _task(gname, task, labels, set(volumes))
    return problems


def _service(gname: str, service: dict[str, Any], labels: set[Any]) -> list[str]:
    problems: list[str] = []
    name = service.get("Name") or ""
    if not _SERVICE_NAME.match(name):
        problems.append(f"Service name {name!r} must be RFC-1123 (lowercase letters, digits, '-') and < 64 chars")
    if service.get("Provider", "consul") not in ("consul", "nomad"):
        problems.append(f"Service {name!r}: invalid provider {service.get('Provider')!r}")
    port = service.get("PortLabel")
    if port and not port.isdigit() and port not in labels:
        problems.append(f"Service {name!r}: port label {port!r} not found in the group's network ports")
    for check in service.get("Checks") or []:
        ctype = check.get("Type")
        if ctype not in ("http", "tcp", "grpc", "script"):
            problems.append(f"Check {check.get('Name')!r}: invalid type {ctype!r}")
        if ctype == "http" and not (check.get("Path") or "").startswith("/"):
            problems.append(f"Check {check.get('Name')!r}: http checks need a relative Path starting with '/'")
        if not _duration_ok(check.get("Interval"), SECOND) or check.get("Interval") is None:
            problems.append(f"Check {check.get('Name')!r}: Interval must be >= 1s")
        if not _duration_ok(check.get("Timeout"), SECOND) or check.get("Timeout") is None:
            problems.append(f"Check {check.get('Name')!r}: Timeout must be >= 1s")
    return problems


def _task(gname: str, task: dict[str, Any], labels: set[Any], volumes: set[str]) -> list[str]:
    problems: list[str] = []
    tname = task.get("Name") or ""
    if not tname:
        problems.append(f"Task group {gname!r}: task name missing")
    if not task.get("Driver"):
        problems.append(f"Task {tname!r}: Missing task driver")
    resources = task.get("Resources") or {}
    if resources.get("CPU") is not None and resources["CPU"] < 1:
        problems.append(f"Task {tname!r}: minimum CPU value is 1")
    if resources.get("MemoryMB") is not None and resources["MemoryMB"] < 10:
        problems.append(f"Task {tname!r}: minimum MemoryMB value is 10")
    for mount in task.get("VolumeMounts") or []:
        if mount.get("Volume") not in volumes:
            problems.append(f"Task {tname!r}: volume mount references unknown volume {mount.get('Volume')!r}")
    for service in task.get("Services") or []:
        problems += _service(gname, service, labels)
    return problems


def _docker_config(tname: str, config: dict[str, Any], labels: set[Any]) -> list[str]:
    problems: list[str] = []
    for key, value in config.items():
        expected = DOCKER_CONFIG_KEYS.get(key)
        if expected is None:
            problems.append(f"Task {tname!r}: docker config: unsupported argument {key!r}")
        elif not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            problems.append(f"Task {tname!r}: docker config: {key!r} has the wrong type")
    if not isinstance(config.get("image"), str) or not config.get("image"):
        problems.append(f"Task {tname!r}: docker config: the argument 'image' is required")
    for label in config.get("ports") or []:
        if label not in labels:
            problems.append(f"Task {tname!r}: docker config: port {label!r} not found in the group's network")
    auth = config.get("auth")
    blocks = auth if isinstance(auth, list) else ([auth] if auth is not None else [])
    for block in blocks:
        if not isinstance(block, dict) or not set(block) <= _DOCKER_AUTH_KEYS:
            problems.append(f"Task {tname!r}: docker config: invalid auth block")
    return problems
