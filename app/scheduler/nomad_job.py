"""Pure builder of the per-tenant WAHA Nomad job (``{"Job": {...}}``, Nomad's JSON casing).

``nomad/whago-waha.nomad.hcl`` is the human-readable twin of this body; keep them in step.
Everything here is a pure function of (settings, tenant) so ``whago nomad render`` can print
exactly what the ``nomad`` adapter would submit without touching the database.

The body is assembled from small parts (``_task``, ``_group``, ``_job``) so that a later step
(a ``template`` reading Nomad Variables for per-tenant secrets) slots into ``_task`` alone.

No digest of the spec sits in the job: job and group ``Meta`` reach the task's environment, so a
changing digest would restart WAHA on every change; the adapter asks Nomad's plan endpoint
instead. ``GENERATION_META`` is a constant that moves only when this builder's output changes
shape, and lets an older WHAGO recognise (and leave alone) a job written by a newer one.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from app.core.errors import ValidationFailed
from app.core.tenant_keys import TenantKeys
from app.scheduler.base import TenantRef, job_id_for, normalize_user_id
from app.settings import Settings

SECOND = 1_000_000_000  # Nomad durations are integer nanoseconds
MINUTE = 60 * SECOND

GROUP = "waha"
TASK = "waha"
PORT_LABEL = "http"
CONTAINER_PORT = 3000  # WAHA listens on 3000 inside the container
CHECK_NAME = "whago-waha-ping"  # readiness = this check passing in Consul
GENERATION_META = "whago_job_generation"
# Bump when a WHAGO release changes what build_job produces for the same settings.
GENERATION = 3  # 3: secrets through a Nomad Variable and a template (issue 10)
# WAHA's local session store, on the allocation's data dir: with a sticky ephemeral disk it
# survives restarts and in-place updates, and Nomad migrates it when the allocation moves node.
# Docker bind-mounts relative paths from the task directory without ``volumes.enabled``.
SESSIONS_DIR = "/app/.sessions"
SESSIONS_ALLOC_VOLUME = "../alloc/data/waha-sessions:" + SESSIONS_DIR
EPHEMERAL_DISK_MB = 1024


def resources_for_plan(settings: Settings, plan: str) -> dict[str, int]:
    """CPU (MHz) and memory (MB) for a plan: base + per-chip x plan's max chips.

    Sized by the plan's ceiling, not the current chip count, so adding a chip never forces a
    destructive job update (which would restart every session of the tenant).
    """
    limits = settings.plan_limits
    if plan not in limits:
        raise ValidationFailed(f"unknown plan {plan!r}; known plans: {', '.join(sorted(limits))}")
    chips = max(1, int(limits[plan]))
    return {
        "CPU": int(settings.waha_cpu_base_mhz + settings.waha_cpu_per_chip_mhz * chips),
        "MemoryMB": int(settings.waha_memory_base_mb + settings.waha_memory_per_chip_mb * chips),
    }


def priority_for_plan(settings: Settings, plan: str) -> int:
    """Nomad job ``Priority`` by plan: plans ranked by their chip limit, the smallest (free) lowest
    (40, then 50, 60, … up to 90), so paying tenants' instances are placed first when the cluster
    is full (Nomad's default for everything else is 50)."""
    limits = settings.plan_limits
    ranks = sorted(set(limits.values()))
    rank = ranks.index(limits[plan]) if plan in limits else 0
    return min(90, 40 + 10 * rank)


def api_key_env_value(api_key: str) -> str:
    """WAHA accepts ``sha512:<hex>``: the plain key then never appears in the Nomad job (which
    anyone with read-job can see), while WHAGO keeps sending the plain key in ``X-Api-Key``."""
    return "sha512:" + hashlib.sha512(api_key.encode()).hexdigest()


def _email_label(email: str) -> str:
    # Operators get the domain (enough to recognise a customer) but not the mailbox name.
    return email.rpartition("@")[2].lower() if "@" in email else email.lower()


def _constraints(settings: Settings) -> list[dict[str, str]]:
    raw = (settings.nomad_constraints or "").strip()
    if not raw:
        return []
    try:
        items = json.loads(raw)
    except ValueError as exc:
        raise ValidationFailed(f"WHAGO_NOMAD_CONSTRAINTS: not valid JSON ({exc})") from None
    allowed = {"LTarget", "RTarget", "Operand"}
    if not isinstance(items, list) or not all(
        isinstance(c, dict) and c and set(c) <= allowed and all(isinstance(v, str) for v in c.values()) for c in items
    ):
        raise ValidationFailed(
            "WHAGO_NOMAD_CONSTRAINTS: expected a JSON list of {LTarget, Operand, RTarget} string objects"
        )
    return items


def _datacenters(settings: Settings) -> list[str]:
    return [dc.strip() for dc in (settings.nomad_datacenters or "").split(",") if dc.strip()] or ["*"]


# Secrets reach the task through the Nomad Variable at the job's own path, which the job's
# workload identity may read without any extra policy; a ``template`` renders it into the task's
# environment. The job spec (readable with read-job) names the items, never their values.
REGISTRY_PASSWORD_ENV = "WHAGO_REGISTRY_PASSWORD"  # noqa: S105 (a variable name)
SECRETS_FILE = "secrets/whago.env"


def variable_path(job_id: str) -> str:
    return f"nomad/jobs/{job_id}"


def tenant_sessions_url(settings: Settings, user_id: str) -> str:
    """WAHA's session-storage URL for this tenant: its own role (and derived password) where
    ``WHAGO_WAHA_SESSIONS_ADMIN_URL`` lets WHAGO create roles, else the shared login."""
    url = settings.waha_sessions_database_url
    if not url or not settings.waha_sessions_admin_url:
        return url
    parts = urlsplit(url)
    keys = TenantKeys(settings)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{keys.db_role(user_id)}:{quote(keys.db_password(user_id), safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def secret_items(settings: Settings, user_id: str) -> dict[str, str]:
    """The Variable's items: environment variables of the task, by name."""
    items = {
        # the tenant's derived key (app.core.tenant_keys), hashed: it opens this instance only
        "WAHA_API_KEY": api_key_env_value(TenantKeys(settings).api_key(user_id)),
    }
    if settings.waha_sessions_database_url:
        items["WHATSAPP_SESSIONS_POSTGRESQL_URL"] = tenant_sessions_url(settings, user_id)
    if settings.waha_registry_username:
        items[REGISTRY_PASSWORD_ENV] = settings.waha_registry_password
    return items


def _template(settings: Settings, job_id: str, user_id: str) -> dict[str, Any]:
    # Item names depend on the settings only, so the spec stays a pure function of them; printf
    # "%q" quotes each value for Nomad's env-file parser (go-envparse reads Go-quoted strings). A
    # changed value (key rotation) restarts the task through change_mode, without a job update.
    names = sorted(secret_items(settings, user_id))
    lines = "".join(f'{name}={{{{ .{name} | printf "%q" }}}}\n' for name in names)
    body = f'{{{{ with nomadVar "{variable_path(job_id)}" }}}}\n{lines}{{{{ end }}}}\n'
    return {"EmbeddedTmpl": body, "DestPath": SECRETS_FILE, "Envvars": True, "ChangeMode": "restart"}


def _env(settings: Settings, job_id: str) -> dict[str, str]:
    env = {
        "WHATSAPP_DEFAULT_ENGINE": settings.waha_engine,
        "WAHA_WORKER_ID": job_id,
        "WAHA_PRINT_QR": "False",  # QR codes of tenants must not end up in cluster logs
        "WAHA_LOG_FORMAT": "JSON",
        "WHATSAPP_API_KEY_EXCLUDE_PATH": "ping",
        "WAHA_API_KEY_EXCLUDE_PATH": "ping",  # docs disagree on the variable name; set both
        # No instance-wide WHATSAPP_HOOK_*: each session carries its own signed webhook config
        # (with the chip's metadata); a global hook to the same URL would deliver every event
        # twice (WAHA #1384) and put the HMAC key into the Nomad job.
    }
    return env


def pinned_image(image: str) -> str:
    """The WAHA image, refused unless pinned (a tag other than ``latest``, or a digest): an
    untagged image is pulled again on every start and changes under running tenants."""
    name = image.rpartition("/")[2]
    if "@" in name or (":" in name and not name.endswith(":latest")):
        return image
    raise ValidationFailed(
        f"WHAGO_WAHA_IMAGE {image!r} is not pinned: name a version tag, e.g. devlikeapro/waha:gows-2026.7.1"
    )


def _service(job_id: str, user_id: str) -> dict[str, Any]:
    return {
        "Name": job_id,
        "Provider": "consul",
        "PortLabel": PORT_LABEL,
        "Tags": ["whago", "whago-waha", f"user-{user_id}"],
        # Job Meta is not copied to Consul: the owner must sit on the service itself.
        "Meta": {"whago_user_id": user_id, "whago_job_id": job_id},
        "Checks": [
            {
                "Name": CHECK_NAME,
                "Type": "http",
                "Path": "/ping",  # unauthenticated in WAHA; /health would need the key
                "Interval": 10 * SECOND,
                "Timeout": 2 * SECOND,
                # A hung WAHA gets restarted by Nomad after 3 failed checks. The service sits
                # on the task, so the grace counts from the task's start, after the image pull
                # (a group service counts from the allocation's creation: nomad#25318).
                "CheckRestart": {"Limit": 3, "Grace": 60 * SECOND, "IgnoreWarnings": False},
            }
        ],
    }


def _task(settings: Settings, tenant: TenantRef, job_id: str, user_id: str) -> dict[str, Any]:
    config: dict[str, Any] = {"image": pinned_image(settings.waha_image), "ports": [PORT_LABEL]}
    if settings.waha_registry_username:
        # interpolated from the template's environment when the task starts
        config["auth"] = {"username": settings.waha_registry_username, "password": "${" + REGISTRY_PASSWORD_ENV + "}"}
    task: dict[str, Any] = {
        "Name": TASK,
        "Driver": "docker",
        "Config": config,
        "Env": _env(settings, job_id),
        "Templates": [_template(settings, job_id, user_id)],
        "Services": [_service(job_id, user_id)],
        "Resources": resources_for_plan(settings, tenant.plan),
        "KillTimeout": 30 * SECOND,  # let WAHA close sessions; the client's default maximum
        "LogConfig": {"MaxFiles": 5, "MaxFileSizeMB": 10},
        "Meta": {"whago_user_id": user_id},
    }
    if settings.waha_sessions_host_volume:
        task["VolumeMounts"] = [{"Volume": "sessions", "Destination": SESSIONS_DIR, "ReadOnly": False}]
    elif not settings.waha_sessions_database_url:
        config["volumes"] = [SESSIONS_ALLOC_VOLUME]
    return task


def _group(settings: Settings, task: dict[str, Any]) -> dict[str, Any]:
    group: dict[str, Any] = {
        "Name": GROUP,
        "Count": 1,
        "Networks": [{"Mode": "host", "DynamicPorts": [{"Label": PORT_LABEL, "To": CONTAINER_PORT}]}],
        # Sticky: a restart or in-place update finds the same data dir; migrate: Nomad copies it
        # when the allocation moves to another (live) node. Lost with the node itself.
        "EphemeralDisk": {"SizeMB": EPHEMERAL_DISK_MB, "Sticky": True, "Migrate": True},
        # A node cut off from the servers stops its WAHA before the replacement may log in with
        # the same WhatsApp session (two instances on one login get it banned or logged out).
        "Disconnect": {"StopOnClientAfter": 60 * SECOND, "Replace": True},
        "RestartPolicy": {"Attempts": 3, "Interval": 10 * MINUTE, "Delay": 15 * SECOND, "Mode": "fail"},
        "ReschedulePolicy": {
            "Unlimited": True,
            "Delay": 30 * SECOND,
            "DelayFunction": "exponential",
            "MaxDelay": 10 * MINUTE,
        },
        "ShutdownDelay": 5 * SECOND,  # deregister from Consul before the container is killed
        "Tasks": [task],
    }
    if settings.waha_sessions_host_volume:
        group["Volumes"] = {
            "sessions": {
                "Name": "sessions",
                "Type": "host",
                "Source": settings.waha_sessions_host_volume,
                "ReadOnly": False,
            }
        }
    return group


def build_job(settings: Settings, tenant: TenantRef, generation: int = GENERATION) -> dict[str, Any]:
    """The registration body for ``POST /v1/jobs``: ``{"Job": {...}}``. ``generation`` is only
    ever overridden by tests that play two WHAGO releases against one cluster."""
    user_id = normalize_user_id(tenant.id)
    job_id = job_id_for(user_id)
    group = _group(settings, _task(settings, tenant, job_id, user_id))
    job: dict[str, Any] = {
        "ID": job_id,
        "Name": job_id,
        "Type": "service",
        "Priority": priority_for_plan(settings, tenant.plan),
        "Namespace": settings.nomad_namespace or "default",
        "Datacenters": _datacenters(settings),
        "Meta": {
            "whago_user_id": user_id,
            "whago_plan": tenant.plan,
            "whago_email_domain": _email_label(tenant.email),
            "created_by": "whago",
            GENERATION_META: str(generation),
        },
        "UI": {
            "Description": f"WAHA of a WHAGO tenant ({tenant.plan} plan)",
            "Links": [{"Label": "Tenant in WHAGO", "URL": f"{settings.public_url.rstrip('/')}/admin/users/{user_id}"}],
        },
        "Update": {
            "MaxParallel": 1,
            "HealthCheck": "checks",
            "MinHealthyTime": 10 * SECOND,
            "HealthyDeadline": 5 * MINUTE,
            "ProgressDeadline": 10 * MINUTE,
            # No auto-revert: Nomad would restore the old version, WHAGO's next ensure would
            # submit the failing one again, and so on. A failed update stays visible instead.
            "AutoRevert": False,
            "Canary": 0,
        },
        "TaskGroups": [group],
    }
    if settings.nomad_region:
        job["Region"] = settings.nomad_region
    if settings.nomad_node_pool:
        job["NodePool"] = settings.nomad_node_pool  # Nomad >= 1.6
    constraints = _constraints(settings)
    if constraints:
        job["Constraints"] = constraints
    return {"Job": job}


def render(user_id: str, plan: str, settings: Settings) -> str:
    """Pretty JSON of the body ``build_job`` returns, for ``whago nomad render``."""
    body = build_job(settings, TenantRef(id=user_id, plan=plan))
    return json.dumps(body, indent=2, sort_keys=False)
