"""The Nomad double validates every submitted job strictly, like Nomad's decoder would if it
refused unknown keys (real Nomad silently drops them, which is why the double must not)."""

from __future__ import annotations

import copy
import uuid

import httpx
import msgspec
import pytest

from app.scheduler.base import TenantRef
from app.scheduler.nomad_job import build_job


@pytest.fixture(scope="module")
def double():
    # One double for the module: rejected bodies leave no state behind (asserted per test).
    from tests.doubles import serve_double

    with serve_double() as served:
        served.node_pools.add("waha")
        yield served


@pytest.fixture
def body(base_settings):
    settings = msgspec.structs.replace(
        base_settings,
        waha_sessions_host_volume="whago-sessions",
        waha_registry_username="bot",
        waha_registry_password="pw",
        nomad_node_pool="waha",
        nomad_region="global",
        nomad_constraints='[{"LTarget": "${attr.kernel.name}", "Operand": "=", "RTarget": "linux"}]',
        waha_sessions_database_url="postgres://waha:pw@db:5432/waha",
    )
    return build_job(settings, TenantRef(id=str(uuid.uuid4()), plan="business", email="x@y.z"))


def post(double, payload, path="/v1/jobs"):
    return httpx.post(double.nomad_url + path, json=payload, timeout=5)


def test_builder_output_is_accepted(double, body):
    resp = post(double, body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["EvalID"]
    assert httpx.delete(f"{double.nomad_url}/v1/job/{body['Job']['ID']}?purge=true", timeout=5).status_code == 200


def mutate(body, fn):
    changed = copy.deepcopy(body)
    fn(changed["Job"])
    return changed


@pytest.mark.parametrize(
    ("label", "fn", "needle"),
    [
        ("misspelt key", lambda j: j.update(Datacenter=j.pop("Datacenters")), "'Datacenter' was unexpected"),
        (
            "wrong casing",
            lambda j: j["TaskGroups"][0].update(restartPolicy=j["TaskGroups"][0].pop("RestartPolicy")),
            "restartPolicy",
        ),
        ("job-level ReschedulePolicy", lambda j: j.update(ReschedulePolicy={"Unlimited": True}), "ReschedulePolicy"),
        (
            "duration as string",
            lambda j: j["TaskGroups"][0]["Tasks"][0]["Services"][0]["Checks"][0].update(Interval="10s"),
            "Interval",
        ),
        (
            "port as string",
            lambda j: j["TaskGroups"][0]["Networks"][0]["DynamicPorts"][0].update(To="3000"),
            "To",
        ),
        ("float duration", lambda j: j["Update"].update(MinHealthyTime=1.5e10), "MinHealthyTime"),
        ("bool as int", lambda j: j["TaskGroups"][0].update(Count=True), "Count"),
        ("meta value not a string", lambda j: j["Meta"].update(chips=3), "chips"),
        ("volumes as list", lambda j: j["TaskGroups"][0].update(Volumes=[{"Name": "x"}]), "Volumes"),
        (
            "header not a list",
            lambda j: j["TaskGroups"][0]["Tasks"][0]["Services"][0]["Checks"][0].update(Header={"X-Api-Key": "k"}),
            "Header",
        ),
        ("docker key misspelt", lambda j: j["TaskGroups"][0]["Tasks"][0]["Config"].update(imagee="x"), "imagee"),
        ("docker port label unknown", lambda j: j["TaskGroups"][0]["Tasks"][0]["Config"].update(ports=["web"]), "web"),
        ("missing ID", lambda j: j.pop("ID"), "Job ID"),
        ("kill timeout above 30s", lambda j: j["TaskGroups"][0]["Tasks"][0].update(KillTimeout=60 * 10**9), "30s"),
    ],
)
def test_double_rejects_bad_jobs_with_400(double, body, label, fn, needle):
    """Bodies Go's decoder refuses (and the documented test-only strictness): 400."""
    resp = post(double, mutate(body, fn))
    assert resp.status_code == 400, label
    assert needle in resp.text, resp.text
    assert not double.jobs  # nothing registered


@pytest.mark.parametrize(
    ("label", "fn", "needle"),
    [
        (
            "service name not RFC-1123",
            lambda j: j["TaskGroups"][0]["Tasks"][0]["Services"][0].update(Name="Whago_WAHA"),
            "RFC-1123",
        ),
        (
            "check interval below 1s",
            lambda j: j["TaskGroups"][0]["Tasks"][0]["Services"][0]["Checks"][0].update(Interval=5),
            "Interval",
        ),
        ("negative count", lambda j: j["TaskGroups"][0].update(Count=-1), "negative"),
        ("bogus type", lambda j: j.update(Type="bogus"), "job type"),
        ("unknown node pool", lambda j: j.update(NodePool="gpu"), 'nonexistent node pool "gpu"'),
    ],
)
def test_double_answers_semantic_errors_like_nomad(double, body, label, fn, needle):
    """What Job.Validate (or an admission hook) refuses: 500 with a multierror text, as a real
    agent answers (nomad-consul.md §1.9); plan refuses it the same way."""
    bad = mutate(body, fn)
    for path in ("/v1/jobs", f"/v1/job/{body['Job']['ID']}/plan"):
        resp = post(double, bad, path=path)
        assert resp.status_code == 500, (label, path)
        assert resp.headers["content-type"].startswith("text/plain")
        assert "error occurred" in resp.text or "errors occurred" in resp.text, resp.text
        assert needle in resp.text, resp.text
    assert not double.jobs


def test_unsatisfiable_constraint_is_accepted_and_blocked(double, body):
    """Nomad accepts a job it cannot place: the evaluation (and its blocked follow-up) carry
    FailedTGAllocs.ConstraintFiltered."""
    bad = mutate(body, lambda j: j.update(Constraints=[{"LTarget": "${attr.nosuch}", "Operand": "=", "RTarget": "x"}]))
    job_id = body["Job"]["ID"]
    assert post(double, bad).status_code == 200
    evals = httpx.get(f"{double.nomad_url}/v1/job/{job_id}/evaluations", timeout=5).json()
    blocked = [e for e in evals if e["Status"] == "blocked"]
    assert blocked
    assert blocked[0]["FailedTGAllocs"]["waha"]["ConstraintFiltered"] == {"${attr.nosuch} = x": 1}
    assert httpx.delete(f"{double.nomad_url}/v1/job/{job_id}?purge=true", timeout=5).status_code == 200


def test_deleting_an_unknown_job_is_a_200(double):
    resp = httpx.delete(f"{double.nomad_url}/v1/job/whago-waha-nobody?purge=true", timeout=5)
    assert resp.status_code == 200
    assert resp.json()["EvalID"]


def test_update_path_must_match_job_id(double, body):
    resp = post(double, body, path="/v1/job/whago-waha-someone-else")
    assert resp.status_code == 400
    assert "does not match" in resp.text
    ok = post(double, body, path=f"/v1/job/{body['Job']['ID']}")
    assert ok.status_code == 200
    assert httpx.delete(f"{double.nomad_url}/v1/job/{body['Job']['ID']}?purge=true", timeout=5).status_code == 200


def test_register_request_wrapper_is_strict_too(double, body):
    resp = post(double, {"job": body["Job"]})  # wrong casing of the wrapper key
    assert resp.status_code == 400
