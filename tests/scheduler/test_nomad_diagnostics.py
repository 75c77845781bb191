"""The pure readings behind the nomad adapter: no server needed."""

from __future__ import annotations

from app.scheduler.nomad.diagnostics import (
    NO_ALLOCATION,
    alloc_endpoint,
    allocation_view,
    matching_url,
    passing_endpoints,
    placement_failure,
    safe_origin,
)
from app.scheduler.nomad_job import CHECK_NAME

USER = "4f0e703e-ed95-4ee4-9d58-1b0d7f3a2c11"


def alloc(id: str, index: int, client: str = "running", desired: str = "run", **extra) -> dict:
    return {"ID": id, "CreateIndex": index, "ClientStatus": client, "DesiredStatus": desired, **extra}


def test_allocation_view_orders_newest_first_and_splits_running_from_live():
    view = allocation_view(
        [
            alloc("old", 1),
            alloc("gone", 5, client="complete", desired="stop"),
            alloc("new", 3, client="pending"),
            alloc("mid", 2),
        ]
    )
    assert [a["ID"] for a in view.running] == ["mid", "old"]
    assert [a["ID"] for a in view.live] == ["new", "mid", "old"]
    assert view.last_status == "pending"  # the newest one that is meant to run


def test_allocation_view_explains_why_nothing_runs():
    assert allocation_view([]).last_status == NO_ALLOCATION
    failed = alloc(
        "a",
        1,
        client="failed",
        desired="stop",
        TaskStates={
            "waha": {"Events": [{"Type": "Received"}, {"Type": "Driver Failure", "DisplayMessage": "manifest unknown"}]}
        },
    )
    view = allocation_view([failed])
    assert not view.running
    assert not view.live
    assert view.last_status == "failed (manifest unknown)"


def test_alloc_endpoint_reads_shared_ports_then_networks():
    shared = {
        "AllocatedResources": {
            "Shared": {
                "Ports": [
                    {"Label": "other", "Value": 1},
                    {"Label": "http", "Value": 23456, "HostIP": "10.0.0.5"},
                ]
            }
        }
    }
    assert alloc_endpoint(shared) == ("10.0.0.5", 23456)
    legacy = {
        "AllocatedResources": {
            "Shared": {
                "Networks": [
                    {"IP": "10.0.0.6", "DynamicPorts": [{"Label": "http", "Value": 30001}]},
                ]
            }
        }
    }
    assert alloc_endpoint(legacy) == ("10.0.0.6", 30001)
    assert alloc_endpoint({}) is None


def test_matching_url_needs_the_same_port_and_host():
    healthy = [("10.0.0.5", 23456), ("fd00::7", 40000)]
    assert matching_url(("10.0.0.5", 23456), healthy) == "http://10.0.0.5:23456"
    assert matching_url(("0.0.0.0", 23456), healthy) == "http://10.0.0.5:23456"  # bound to all
    assert matching_url(("10.0.0.9", 23456), healthy) is None  # a lingering old instance
    assert matching_url(("", 40000), healthy) == "http://[fd00::7]:40000"
    assert matching_url(("10.0.0.5", 1), healthy) is None


def entry(user: str = USER, checks: list[dict] | None = None, address: str = "10.0.0.5", port: int = 23456) -> dict:
    service = {"ID": "svc-1", "Address": address, "Port": port, "Meta": {"whago_user_id": user}}
    if checks is None:
        checks = [
            {"Name": "Serf Health Status", "ServiceID": "", "Status": "passing"},
            {"Name": CHECK_NAME, "ServiceID": "svc-1", "Status": "passing"},
        ]
    return {"Node": {"Address": "192.168.1.1"}, "Service": service, "Checks": checks}


def test_passing_endpoints_require_our_own_check_and_owner():
    assert passing_endpoints([entry()], USER) == [("10.0.0.5", 23456)]
    serf_only = entry(checks=[{"Name": "Serf Health Status", "ServiceID": "", "Status": "passing"}])
    assert passing_endpoints([serf_only], USER) == []  # nomad#7736 registration gap
    critical = entry(checks=[{"Name": CHECK_NAME, "ServiceID": "svc-1", "Status": "critical"}])
    assert passing_endpoints([critical], USER) == []
    assert passing_endpoints([entry(user="someone-else")], USER) == []
    assert passing_endpoints([entry(address="")], USER) == [("192.168.1.1", 23456)]  # node address
    assert passing_endpoints([entry(port=0)], USER) == []


def test_placement_failure_describes_the_failed_task_group():
    evals = [
        {
            "ID": "e1",
            "CreateIndex": 1,
            "Status": "complete",
            "FailedTGAllocs": {
                "waha": {
                    "NodesEvaluated": 2,
                    "DimensionExhausted": {"memory": 2},
                    "NodesAvailable": {"dc1": 2},
                }
            },
        },
        {"ID": "e2", "CreateIndex": 2, "Status": "blocked"},
    ]
    # the newest eval is the blocked follow-up; the failure is recorded on the one it blocks for
    evals[0]["BlockedEval"] = "e2"
    reason = placement_failure(evals)
    assert reason == "group 'waha': 2 node(s) evaluated; exhausted: memory (2)"


def test_placement_failure_other_cases():
    assert placement_failure([]) is None
    assert placement_failure([{"ID": "e", "Status": "complete"}]) is None
    assert placement_failure([{"ID": "e", "Status": "failed", "StatusDescription": "quota"}]) == "quota"
    none_available = {"ID": "e", "Status": "complete", "FailedTGAllocs": {"waha": {"NodesAvailable": {"dc1": 0}}}}
    assert "no nodes available in datacenters dc1" in placement_failure([none_available])


def test_safe_origin_drops_userinfo_and_path():
    assert safe_origin("https://user:s3cret@nomad.example:4646/v1?x=1") == "https://nomad.example:4646"
    assert safe_origin("http://127.0.0.1") == "http://127.0.0.1"
