"""Typed settings read once from ``WHAGO_*`` environment variables.

Every field below maps to ``WHAGO_<FIELD NAME IN UPPER CASE>``. Values are converted by msgspec
(``"5"`` -> ``5``, ``"true"`` -> ``True``); a bad value fails start-up with a message naming the
variable. Secrets missing in development are generated (and kept in ``WHAGO_DEV_STATE_DIR`` so
tokens and webhook keys survive a restart of ``whago dev``); in production they are an error.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

import msgspec

logger = logging.getLogger("whago.settings")

ENV_PREFIX = "WHAGO_"
MIN_KEY_LENGTH = 32
SECRET_FIELDS = ("secret_key", "webhook_hmac_key", "waha_api_key", "encryption_key")


class SettingsError(ValueError):
    """Raised when the environment holds an invalid or missing setting."""


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    # --- core -------------------------------------------------------------------------------
    env: Literal["development", "test", "production"] = "development"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/whago"
    database_pool_size: int = 20
    database_timeout_seconds: float = 5.0
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_timeout_seconds: float = 2.0
    secret_key: str = ""
    public_url: str = "http://127.0.0.1:8000"
    log_level: str = "INFO"
    log_format: Literal["", "json", "text"] = ""  # empty: json in production, text elsewhere
    cors_origins: str = ""  # comma-separated; empty = no CORS headers
    dev_state_dir: str = ".whago"

    # --- auth and limits --------------------------------------------------------------------
    access_token_ttl_seconds: int = 3600
    stream_token_ttl_seconds: int = 60
    login_max_failures: int = 5  # per (email, client IP) per window
    login_max_failures_per_ip: int = 30  # per client IP per window, whatever the emails
    login_max_failures_per_email: int = 50  # looser ceiling per email, whatever the IPs
    auth_ip_limit_per_minute: int = 20  # register + login attempts per client IP
    trusted_proxies: str = ""  # comma-separated IPs/CIDRs whose X-Forwarded-For is believed
    password_hash_concurrency: int = 2  # argon2 operations at once per process (19 MiB each)
    signup: Literal["open", "closed"] = "open"
    max_streams_per_user: int = 5
    login_failure_window_seconds: int = 900
    plans: str = "free=1,business=3,enterprise=10"
    pairing_attempts_per_hour: int = 5
    messages_per_minute: int = 20
    message_retention_days: int = 30

    # --- WAHA -------------------------------------------------------------------------------
    waha_api_key: str = ""
    webhook_hmac_key: str = ""
    webhook_max_body_bytes: int = 1024 * 1024
    waha_timeout_seconds: float = 10.0
    # stop/restart/logout/PUT/DELETE: real WAHA waits 3 s after every stop (4 s for a logout)
    waha_lifecycle_timeout_seconds: float = 20.0
    # the longest a tenant's request waits on WAHA in all (a logout is a logout and a stop)
    waha_request_budget_seconds: float = 15.0
    waha_image: str = "devlikeapro/waha:gows-2026.7.1"  # pinned: an untagged image is refused
    waha_engine: str = "GOWS"
    waha_sessions_database_url: str = ""
    waha_registry_username: str = ""
    waha_registry_password: str = ""
    webhook_retry_attempts: int = 8
    # tenant isolation (issue 10): a PostgreSQL login allowed to create roles; when set, each
    # tenant's WAHA stores its sessions under its own role (derived password), not the shared login
    waha_sessions_admin_url: str = ""
    webhook_retry_delay_seconds: int = 2

    # --- scheduler --------------------------------------------------------------------------
    scheduler: Literal["local", "nomad", "static"] = "local"
    waha_url: str = ""  # static mode: the one shared WAHA
    nomad_addr: str = "http://127.0.0.1:4646"
    nomad_token: str = ""
    nomad_namespace: str = "default"
    nomad_region: str = ""
    nomad_datacenters: str = "dc1"
    nomad_node_pool: str = ""
    nomad_constraints: str = ""  # JSON list of Nomad Constraint objects
    nomad_timeout_seconds: float = 10.0
    nomad_threads: int = 8
    nomad_list_page_size: int = 1000
    consul_addr: str = "http://127.0.0.1:8500"
    consul_token: str = ""
    waha_cpu_base_mhz: int = 200
    waha_cpu_per_chip_mhz: int = 100
    waha_memory_base_mb: int = 256
    waha_memory_per_chip_mb: int = 200
    waha_sessions_host_volume: str = ""
    instance_ready_timeout_seconds: float = 120.0
    instance_address_cache_seconds: int = 30
    local_emulator_boot_delay_seconds: float = 0.0

    # --- workers ----------------------------------------------------------------------------
    worker_concurrency: int = 10
    worker_shutdown_grace_seconds: int = 10
    job_attempts: int = 8
    job_heartbeat_seconds: int = 20
    job_retry_delay_seconds: float = 1.0
    job_retry_max_delay_seconds: float = 60.0
    reconcile_interval_seconds: int = 60
    instance_grace_seconds: int = 600
    idle_days: int = 30
    proxy_check_interval_seconds: int = 60
    proxy_check_timeout_seconds: float = 3.0
    proxy_unhealthy_after_failures: int = 3
    proxy_healthy_after_successes: int = 2
    # liveness (app.liveness): probe connected chips quiet this long, at most once per period each
    liveness_probe_seconds: int = 300
    liveness_quiet_seconds: int = 900
    liveness_failures: int = 2  # consecutive failed probes before health becomes degraded
    liveness_heals_per_hour: int = 3
    liveness_probe_timeout_seconds: float = 10.0
    liveness_max_per_instance: int = 20  # probes per tenant instance per pass (the rest wait)
    webhook_max_future_seconds: int = 300  # later envelope timestamps are clamped to receive time
    encryption_key: str = ""  # comma-separated Fernet keys, newest first (rotation)

    # --- operations -------------------------------------------------------------------------
    audit_retention_days: int = 365
    nomad_ui_url: str = ""  # e.g. https://nomad.example.com/ui: admin instances link to their job
    alert_webhook_url: str = ""  # Discord/Slack-compatible: {"content": ...} on alert conditions
    alert_min_interval_seconds: int = 900

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def effective_log_format(self) -> str:
        return self.log_format or ("json" if self.is_production else "text")

    @property
    def plan_limits(self) -> dict[str, int]:
        return parse_plans(self.plans)

    @property
    def webhook_hmac_keys(self) -> list[str]:
        """Every key a webhook may be signed with; the first signs new session configs.

        ``WHAGO_WEBHOOK_HMAC_KEY=new,old`` rotates without downtime: both verify while the
        reconciler moves every session to the new key, then the old one is dropped.
        """
        return [k.strip() for k in self.webhook_hmac_key.split(",") if k.strip()]

    @property
    def webhook_signing_key(self) -> str:
        return self.webhook_hmac_keys[0]

    @property
    def webhook_url(self) -> str:
        return self.public_url.rstrip("/") + "/api/v1/webhooks/waha"


def parse_plans(spec: str) -> dict[str, int]:
    plans: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, limit = part.partition("=")
        if not sep or not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", name.strip()) or not limit.strip().isdigit():
            raise SettingsError(f"WHAGO_PLANS: expected 'name=max_chips,...', got {part!r}")
        plans[name.strip()] = int(limit)
    if not plans:
        raise SettingsError("WHAGO_PLANS: at least one plan is required")
    return plans


def _env_values(environ: dict[str, str]) -> dict[str, str]:
    fields = {f.name for f in msgspec.structs.fields(Settings)}
    values: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith(ENV_PREFIX):
            name = key[len(ENV_PREFIX) :].lower()
            if name in fields:
                values[name] = value
    return values


def _dev_secret(state_dir: Path, name: str) -> tuple[str, bool]:
    """A generated secret, remembered in the dev state dir so a restart keeps tokens valid.

    Returns (value, True when generated by this call)."""
    path = state_dir / "dev-secrets.json"
    stored: dict[str, str] = {}
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        stored = {}
    generated = name not in stored
    if generated:
        if name == "encryption_key":
            from cryptography.fernet import Fernet

            stored[name] = Fernet.generate_key().decode()
        else:
            stored[name] = secrets.token_urlsafe(48)
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(stored))
            path.chmod(0o600)
        except OSError:
            pass  # read-only working dir: the secret just lives for this process
    return stored[name], generated


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Build and validate settings; raise SettingsError naming the offending variable."""
    environ = dict(os.environ if environ is None else environ)
    values = _env_values(environ)
    try:
        settings = msgspec.convert(values, Settings, strict=False)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = re.search(r"at `\$\.(\w+)`", message)
        variable = ENV_PREFIX + match.group(1).upper() if match else "a WHAGO_ variable"
        raise SettingsError(f"{variable}: {message.split(' - at ')[0]}") from None
    parse_plans(settings.plans)
    if settings.scheduler == "static" and not settings.waha_url:
        raise SettingsError("WHAGO_WAHA_URL: required when WHAGO_SCHEDULER=static")
    missing = [name for name in SECRET_FIELDS if not getattr(settings, name)]
    if missing:
        if settings.is_production:
            names = ", ".join(ENV_PREFIX + name.upper() for name in missing)
            raise SettingsError(f"{names}: required when WHAGO_ENV=production")
        state_dir = Path(settings.dev_state_dir)
        dev_values = {name: _dev_secret(state_dir, name) for name in missing}
        new = [ENV_PREFIX + name.upper() for name, (_, fresh) in dev_values.items() if fresh]
        if new:
            # once, when generated; later runs read them back silently (same file, same values)
            logger.warning(
                "%s not set: generated development values, kept in %s (set them in production)",
                ", ".join(new),
                state_dir / "dev-secrets.json",
            )
        settings = msgspec.structs.replace(settings, **{name: value for name, (value, _) in dev_values.items()})
    for entry in filter(None, (p.strip() for p in settings.trusted_proxies.split(","))):
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise SettingsError(f"WHAGO_TRUSTED_PROXIES: not an IP address or network: {entry!r}") from None
    if settings.is_production:
        _check_production_secrets(settings)
    if settings.is_production and settings.waha_sessions_database_url and not settings.waha_sessions_admin_url:
        # tenant isolation (issue 10): every tenant's WAHA logs in as the same role
        logger.warning(
            "WHAGO_WAHA_SESSIONS_ADMIN_URL is not set: every tenant's WAHA shares one sessions database "
            "login, so a compromised instance can read all tenants' WhatsApp sessions"
        )
    return settings


def _check_production_secrets(settings: Settings) -> None:
    """Refuse to start on keys an attacker could guess, or that would only fail at first use."""
    keys = {
        "WHAGO_SECRET_KEY": [settings.secret_key],
        "WHAGO_WEBHOOK_HMAC_KEY": settings.webhook_hmac_keys,  # a key of "," passes non-empty checks
        "WHAGO_WAHA_API_KEY": [settings.waha_api_key],
    }
    for variable, values in keys.items():
        if not values or any(len(v) < MIN_KEY_LENGTH for v in values):
            raise SettingsError(f"{variable}: every key must be at least {MIN_KEY_LENGTH} characters in production")
    from cryptography.fernet import Fernet

    fernet_keys = [k.strip() for k in settings.encryption_key.split(",") if k.strip()]
    if not fernet_keys:
        raise SettingsError("WHAGO_ENCRYPTION_KEY: required when WHAGO_ENV=production")
    for position, fernet_key in enumerate(fernet_keys, 1):
        try:
            Fernet(fernet_key)
        except (ValueError, TypeError):
            # never echo the key itself
            raise SettingsError(
                f"WHAGO_ENCRYPTION_KEY: key #{position} is not a valid Fernet key (32 url-safe base64 bytes)"
            ) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
