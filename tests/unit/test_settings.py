from __future__ import annotations

import json

import pytest

from app.settings import SettingsError, load_settings, parse_plans


def test_defaults_run_locally(tmp_path):
    settings = load_settings({"WHAGO_DEV_STATE_DIR": str(tmp_path)})
    assert settings.database_url == "postgresql://postgres@127.0.0.1:5432/whago"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.scheduler == "local"
    assert settings.plan_limits == {"free": 1, "business": 3, "enterprise": 10}
    assert len(settings.secret_key) >= 32


def test_generated_dev_secrets_are_stable_across_restarts(tmp_path, caplog):
    first = load_settings({"WHAGO_DEV_STATE_DIR": str(tmp_path)})
    # one warning naming every generated variable and the file that keeps them
    [warning] = [r.getMessage() for r in caplog.records if r.name == "whago.settings"]
    assert "WHAGO_SECRET_KEY" in warning
    assert "WHAGO_ENCRYPTION_KEY" in warning
    assert str(tmp_path / "dev-secrets.json") in warning
    caplog.clear()
    second = load_settings({"WHAGO_DEV_STATE_DIR": str(tmp_path)})
    # read back from the file: nothing to warn about
    assert [r for r in caplog.records if r.name == "whago.settings"] == []
    assert first.secret_key == second.secret_key
    assert first.webhook_hmac_key == second.webhook_hmac_key
    stored = json.loads((tmp_path / "dev-secrets.json").read_text())
    assert stored["secret_key"] == first.secret_key
    assert (tmp_path / "dev-secrets.json").stat().st_mode & 0o077 == 0


def test_production_requires_secrets(tmp_path):
    with pytest.raises(SettingsError, match="WHAGO_SECRET_KEY"):
        load_settings({"WHAGO_ENV": "production", "WHAGO_DEV_STATE_DIR": str(tmp_path)})
    assert not (tmp_path / "dev-secrets.json").exists()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WHAGO_DATABASE_POOL_SIZE", "many"),
        ("WHAGO_ENV", "staging"),
        ("WHAGO_SCHEDULER", "kubernetes"),
        ("WHAGO_REDIS_TIMEOUT_SECONDS", "soon"),
        ("WHAGO_PLANS", "free=one"),
    ],
)
def test_bad_values_name_the_variable(tmp_path, name, value):
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value, "WHAGO_DEV_STATE_DIR": str(tmp_path)})


def test_static_scheduler_needs_a_url(tmp_path):
    with pytest.raises(SettingsError, match="WHAGO_WAHA_URL"):
        load_settings({"WHAGO_SCHEDULER": "static", "WHAGO_DEV_STATE_DIR": str(tmp_path)})


def test_types_are_converted(tmp_path):
    settings = load_settings(
        {"WHAGO_DATABASE_POOL_SIZE": "7", "WHAGO_PLANS": "free=2,pro=50", "WHAGO_DEV_STATE_DIR": str(tmp_path)}
    )
    assert settings.database_pool_size == 7
    assert parse_plans(settings.plans) == {"free": 2, "pro": 50}


def test_cli_reports_bad_settings(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "WHAGO_DATABASE_POOL_SIZE": "lots"}
    result = subprocess.run([sys.executable, "-m", "app.cli", "migrate"], env=env, capture_output=True, text=True)
    assert result.returncode == 2
    assert "WHAGO_DATABASE_POOL_SIZE" in result.stderr
    assert "Traceback" not in result.stderr


def _production(tmp_path, **overrides: str) -> dict[str, str]:
    from cryptography.fernet import Fernet

    env = {
        "WHAGO_ENV": "production",
        "WHAGO_DEV_STATE_DIR": str(tmp_path),
        "WHAGO_SECRET_KEY": "s" * 32,
        "WHAGO_WEBHOOK_HMAC_KEY": "h" * 32,
        "WHAGO_WAHA_API_KEY": "k" * 32,
        "WHAGO_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }
    return {**env, **overrides}


def test_production_accepts_strong_keys(tmp_path):
    assert load_settings(_production(tmp_path)).is_production


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WHAGO_SECRET_KEY", "s" * 31),
        ("WHAGO_WEBHOOK_HMAC_KEY", ","),  # non-empty, yet no key at all
        ("WHAGO_WEBHOOK_HMAC_KEY", "h" * 32 + ",short"),  # every key of a rotation counts
        ("WHAGO_WAHA_API_KEY", "short-api-key"),
        ("WHAGO_ENCRYPTION_KEY", "not-a-fernet-key"),
        ("WHAGO_ENCRYPTION_KEY", "YWFh"),
    ],
)
def test_production_refuses_weak_or_invalid_keys(tmp_path, name, value):
    with pytest.raises(SettingsError, match=name) as refused:
        load_settings(_production(tmp_path, **{name: value}))
    if len(value) > 4:
        assert value not in str(refused.value)  # the key itself is never echoed


def test_trusted_proxies_must_be_addresses(tmp_path):
    assert load_settings({"WHAGO_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1", "WHAGO_DEV_STATE_DIR": str(tmp_path)})
    with pytest.raises(SettingsError, match="WHAGO_TRUSTED_PROXIES"):
        load_settings({"WHAGO_TRUSTED_PROXIES": "proxy.internal", "WHAGO_DEV_STATE_DIR": str(tmp_path)})


def test_the_container_image_runs_in_production():
    from pathlib import Path

    dockerfile = (Path(__file__).resolve().parents[2] / "Dockerfile").read_text()
    assert "WHAGO_ENV=production" in dockerfile
