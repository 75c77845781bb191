"""The test environment: settings are read once, so this must be applied before any ``app`` import.

``tests/conftest.py`` applies it for the suite; scripts outside pytest (tests/bench) call
``apply_test_environment()`` themselves instead of importing a conftest.
"""

from __future__ import annotations

import os
import tempfile

TEST_DATABASE_URL = os.environ.get("WHAGO_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/whago_test")
TEST_REDIS_URL = os.environ.get("WHAGO_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

WEBHOOK_HMAC_KEY = "test-webhook-hmac-key"
WAHA_API_KEY = "test-waha-api-key"
SECRET_KEY = "test-secret-key-" + "x" * 32

# Values no response may ever echo back (checked by tests.support.errors.assert_error).
SECRETS = (WEBHOOK_HMAC_KEY, WAHA_API_KEY, SECRET_KEY)


def environment() -> dict[str, str]:
    return {
        "WHAGO_ENV": "test",
        "WHAGO_DATABASE_URL": TEST_DATABASE_URL,
        "WHAGO_REDIS_URL": TEST_REDIS_URL,
        "WHAGO_SECRET_KEY": SECRET_KEY,
        "WHAGO_WEBHOOK_HMAC_KEY": WEBHOOK_HMAC_KEY,
        "WHAGO_WAHA_API_KEY": WAHA_API_KEY,
        "WHAGO_ENCRYPTION_KEY": "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE=",
        "WHAGO_PUBLIC_URL": "http://127.0.0.1:8000",
        "WHAGO_SCHEDULER": "static",
        "WHAGO_WAHA_URL": "http://127.0.0.1:9",
        # the whole suite registers from one loopback address; tests of the per-IP limit lower it
        "WHAGO_AUTH_IP_LIMIT_PER_MINUTE": "100000",
        # the local scheduler's emulator session files (and any dev state) stay out of the repo
        "WHAGO_DEV_STATE_DIR": tempfile.mkdtemp(prefix="whago-test-state-"),
    }


def apply_test_environment() -> None:
    os.environ.update(environment())
