"""Packaging and docs: each compose service is checked on what it really serves, and the docs'
shell examples run in bash as written."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_each_compose_service_has_the_right_health_check():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    checks = {name: " ".join(svc.get("healthcheck", {}).get("test", [])) for name, svc in services.items()}
    assert ":3000/" in checks["waha"]
    assert ":8000/health/ready" in checks["api"]
    assert "whago-worker-alive" in checks["worker"]
    assert services["migrate"]["healthcheck"] == {"disable": True}
    # nothing but the API inherits the image's check of port 8000
    for name in ("waha", "worker", "migrate"):
        assert ":8000" not in checks[name], name


@pytest.mark.anyio
async def test_the_worker_touches_its_alive_file(monkeypatch, tmp_path):
    from app.worker import runner

    monkeypatch.setattr(runner, "ALIVE_FILE", tmp_path / "alive")
    task = asyncio.create_task(runner._alive_file())
    try:
        for _ in range(100):
            if (tmp_path / "alive").exists():
                break
            await asyncio.sleep(0.01)
        assert (tmp_path / "alive").exists()
    finally:
        task.cancel()


def test_doc_examples_never_assign_to_read_only_bash_variables():
    readonly = ("UID", "EUID", "PPID", "BASHPID", "SHELLOPTS")
    for doc in [ROOT / "README.md", *ROOT.glob("nomad/**/*.md")]:
        for number, line in enumerate(doc.read_text().splitlines(), start=1):
            for name in readonly:
                assert not re.match(rf"^\s*(export\s+)?{name}=", line), f"{doc.name}:{number}: {line}"
