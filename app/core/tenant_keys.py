"""Per-tenant WAHA credentials, derived from the platform secrets: nothing new is stored.

Each credential is HMAC-SHA256(purpose key, tenant id), where the purpose key is itself
HMAC-SHA256(platform secret, purpose label). A tenant's WAHA instance therefore holds keys that
are useless against any other tenant, and the platform secrets never leave WHAGO; rotating a
platform secret rotates every tenant's derived credential of that kind (the reconciler moves the
sessions, the next job update carries the new API key hash, provisioning re-sets the DB password).

| credential           | platform secret              | purpose label                |
|----------------------|------------------------------|------------------------------|
| WAHA API key         | ``WHAGO_WAHA_API_KEY``       | ``whago/waha-api-key/v1``    |
| webhook signing key  | ``WHAGO_WEBHOOK_HMAC_KEY``   | ``whago/webhook-hmac/v1``    |
| DB role password     | ``WHAGO_WAHA_API_KEY``       | ``whago/waha-db-password/v1`` |

``WHAGO_WEBHOOK_HMAC_KEY=new,old`` (rotation) yields one derived webhook key per platform key; all
of them verify, the first signs new session configs.

With ``WHAGO_SCHEDULER=static`` every tenant shares one WAHA, so its API key is the platform key
(the instance is not the tenant's); webhook keys and routes are still per tenant (they are set per
session).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import uuid

from app.settings import Settings

API_KEY_PURPOSE = "whago/waha-api-key/v1"
WEBHOOK_PURPOSE = "whago/webhook-hmac/v1"
DB_PASSWORD_PURPOSE = "whago/waha-db-password/v1"  # noqa: S105 (a label, not a secret)
DB_ROLE_PREFIX = "whago_waha_"


def _tenant(user_id: uuid.UUID | str) -> bytes:
    # canonical text: the same tenant gives the same key whatever the caller's spelling
    return str(uuid.UUID(str(user_id))).encode()


@functools.lru_cache(maxsize=4096)  # the webhook receiver derives a tenant's key on every event
def derive(secret: str, purpose: str, user_id: uuid.UUID | str) -> str:
    """Hex HMAC-SHA256 of the tenant id under the purpose key of ``secret``."""
    purpose_key = hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).digest()
    return hmac.new(purpose_key, _tenant(user_id), hashlib.sha256).hexdigest()


class TenantKeys:
    """The derivations for one process's settings (cheap: two HMACs per call, no state)."""

    def __init__(self, settings: Settings) -> None:
        self._api_secret = settings.waha_api_key
        self._webhook_secrets = settings.webhook_hmac_keys
        self.shared_instance = settings.scheduler == "static"
        self._platform_api_key = settings.waha_api_key

    def api_key(self, user_id: uuid.UUID | str) -> str:
        """The key WHAGO sends to this tenant's WAHA (and whose hash the tenant's job holds)."""
        if self.shared_instance:
            return self._platform_api_key
        return derive(self._api_secret, API_KEY_PURPOSE, user_id)

    def webhook_key(self, user_id: uuid.UUID | str) -> str:
        """The key new session configs of this tenant sign their webhooks with."""
        return derive(self._webhook_secrets[0], WEBHOOK_PURPOSE, user_id)

    def webhook_keys(self, user_id: uuid.UUID | str) -> list[str]:
        """Every key a webhook on this tenant's route may be signed with (platform key rotation)."""
        return [derive(secret, WEBHOOK_PURPOSE, user_id) for secret in self._webhook_secrets]

    def db_password(self, user_id: uuid.UUID | str) -> str:
        return derive(self._api_secret, DB_PASSWORD_PURPOSE, user_id)

    @staticmethod
    def db_role(user_id: uuid.UUID | str) -> str:
        """``whago_waha_<32 hex>``: a plain identifier (no quoting surprises), 43 chars < 63."""
        return DB_ROLE_PREFIX + uuid.UUID(str(user_id)).hex


def tenant_webhook_url(settings: Settings, user_id: uuid.UUID | str) -> str:
    """The per-tenant route new sessions post to (``settings.webhook_url`` is the platform route)."""
    return f"{settings.webhook_url}/{uuid.UUID(str(user_id))}"
