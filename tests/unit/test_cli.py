from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, env=dict(os.environ), timeout=60)


def test_nomad_render_prints_the_registration_body_without_a_database():
    user_id = str(uuid.uuid4())
    env = {**os.environ, "WHAGO_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "nomad", "render", "--user-id", user_id, "--plan", "enterprise"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)["Job"]
    assert job["ID"] == f"whago-waha-{user_id}" and job["Type"] == "service"
    assert job["Meta"]["whago_plan"] == "enterprise" and job["Meta"]["created_by"] == "whago"
    assert os.environ["WHAGO_WAHA_API_KEY"] not in result.stdout


def test_nomad_render_rejects_bad_input():
    assert run("nomad", "render", "--user-id", "not-a-uuid", "--plan", "free").returncode == 2
    assert run("nomad", "render", "--user-id", str(uuid.uuid4()), "--plan", "platinum").returncode == 2
