"""No secret in any job spec (issue 10): the WAHA sessions database URL, the registry password
and the tenant's keys reach the task through the Nomad Variable at the job's own path, rendered by
a template; the double serves the Variables endpoints (validated against Nomad's OpenAPI
``Variable`` schema) and never starts a task whose template names a missing Variable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from app.core.tenant_keys import TenantKeys
from app.scheduler.base import TenantRef, job_id_for
from app.scheduler.nomad_job import build_job, variable_path

pytestmark = pytest.mark.anyio

PLANTED = {
    "WHAGO_WAHA_SESSIONS_DATABASE_URL": "postgresql://waha:Planted-DB-Pass-7731@db:5432/waha",
    "WHAGO_WAHA_SESSIONS_ADMIN_URL": "postgresql://admin:Planted-Admin-Pass-4410@db:5432/postgres",
    "WHAGO_WAHA_REGISTRY_USERNAME": "registry-bot",
    "WHAGO_WAHA_REGISTRY_PASSWORD": "Planted-Registry-Pass-9902",
    "WHAGO_WAHA_API_KEY": "Planted-Platform-Api-Key-5521-xxxxxxxxxxxxxxxx",
    "WHAGO_WEBHOOK_HMAC_KEY": "Planted-Webhook-Key-3310-xxxxxxxxxxxxxxxxxx",
}


def forbidden(settings, user_id: str) -> list[str]:
    keys = TenantKeys(settings)
    return [
        "Planted-DB-Pass-7731",
        "Planted-Admin-Pass-4410",
        "Planted-Registry-Pass-9902",
        "Planted-Platform-Api-Key-5521",
        "Planted-Webhook-Key-3310",
        keys.api_key(user_id),
        keys.webhook_key(user_id),
        keys.db_password(user_id),
    ]


def test_whago_nomad_render_prints_no_secret(tmp_path):
    user_id = str(uuid.uuid4())
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHAGO_")}
    env.update(PLANTED, WHAGO_ENV="test", WHAGO_DEV_STATE_DIR=str(tmp_path), WHAGO_SCHEDULER="nomad")
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "nomad", "render", "--user-id", user_id, "--plan", "free"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    job = json.loads(out)["Job"]
    assert job["ID"] == job_id_for(user_id)
    from app.settings import load_settings

    settings = load_settings(env)
    for secret in forbidden(settings, user_id):
        assert secret not in out
    task = job["TaskGroups"][0]["Tasks"][0]
    assert task["Config"]["auth"] == {"username": "registry-bot", "password": "${WHAGO_REGISTRY_PASSWORD}"}
    [template] = task["Templates"]
    assert template["Envvars"] is True
    assert f'nomadVar "{variable_path(job_id_for(user_id))}"' in template["EmbeddedTmpl"]


async def test_the_registered_job_holds_no_secret_and_the_task_gets_them_from_the_variable(make_nomad, double):
    scheduler = make_nomad(
        waha_sessions_database_url=PLANTED["WHAGO_WAHA_SESSIONS_DATABASE_URL"],
        waha_registry_username="registry-bot",
        waha_registry_password=PLANTED["WHAGO_WAHA_REGISTRY_PASSWORD"],
        waha_api_key=PLANTED["WHAGO_WAHA_API_KEY"],
        webhook_hmac_key=PLANTED["WHAGO_WEBHOOK_HMAC_KEY"],
    )
    settings = scheduler.settings
    tenant = TenantRef(id=str(uuid.uuid4()), plan="free")
    job_id = job_id_for(tenant.id)
    instance = await scheduler.ensure_instance(tenant)
    assert instance.status == "running"

    stored = json.dumps(double.job(job_id).job)
    submitted = json.dumps(double.submitted)
    for secret in forbidden(settings, tenant.id):
        assert secret not in stored
        assert secret not in submitted
    async with httpx.AsyncClient(base_url=double.nomad_url) as nomad:  # what read-job shows
        shown = (await nomad.get(f"/v1/job/{job_id}")).text
    for secret in forbidden(settings, tenant.id):
        assert secret not in shown

    variable = double.variable(variable_path(job_id))
    assert variable is not None
    assert variable["Items"]["WHATSAPP_SESSIONS_POSTGRESQL_URL"] == PLANTED["WHAGO_WAHA_SESSIONS_DATABASE_URL"]
    assert variable["Items"]["WHAGO_REGISTRY_PASSWORD"] == PLANTED["WHAGO_WAHA_REGISTRY_PASSWORD"]
    # the task got the tenant's API key hash from the Variable: the tenant's key opens it, the
    # platform key does not
    async with httpx.AsyncClient(base_url=instance.base_url) as waha:
        mine = await waha.get("/api/sessions", headers={"X-Api-Key": TenantKeys(settings).api_key(tenant.id)})
        assert mine.status_code == 200
        platform = await waha.get("/api/sessions", headers={"X-Api-Key": settings.waha_api_key})
        assert platform.status_code == 401

    await scheduler.remove_instance(tenant.id)  # removing the tenant's instance drops its Variable
    assert double.variable(variable_path(job_id)) is None


def test_a_task_whose_template_names_a_missing_variable_waits_for_it(double, base_settings):
    tenant = TenantRef(id=str(uuid.uuid4()), plan="free")
    body = build_job(base_settings, tenant)
    assert httpx.post(double.nomad_url + "/v1/jobs", json=body, timeout=5).status_code == 200
    alloc = double.current_alloc(job_id_for(tenant.id))
    assert alloc is not None

    def blocked() -> bool:
        return any("Missing: nomad.var.block" in e.get("DisplayMessage", "") for e in alloc.events)

    deadline = time.monotonic() + 5
    while not blocked() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert blocked()
    assert alloc.client_status == "pending"
    # written afterwards (the order WHAGO never uses): the template renders and the task starts
    path = variable_path(job_id_for(tenant.id))
    items = {"WAHA_API_KEY": "sha512:" + "0" * 128}
    assert httpx.put(f"{double.nomad_url}/v1/var/{path}", json={"Items": items}, timeout=5).status_code == 200
    deadline = time.monotonic() + 5
    while alloc.client_status != "running" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert alloc.client_status == "running"


def test_the_double_validates_variable_bodies_against_the_openapi_schema(double):
    url = f"{double.nomad_url}/v1/var/nomad/jobs/x"
    ok = httpx.put(url, json={"Path": "nomad/jobs/x", "Items": {"A": "b"}}, timeout=5)
    assert ok.status_code == 200, ok.text
    assert ok.json()["Items"] == {"A": "b"}
    assert httpx.get(url, timeout=5).json()["Path"] == "nomad/jobs/x"
    for bad in ({"Path": "nomad/jobs/x", "Items": {"A": 1}}, {"Items": {"A": "b"}, "Secret": "x"}, {"Path": "y"}):
        response = httpx.put(url, json=bad, timeout=5)
        assert response.status_code == 400, (bad, response.text)
    assert httpx.delete(url, timeout=5).status_code == 200
    assert httpx.get(url, timeout=5).status_code == 404
