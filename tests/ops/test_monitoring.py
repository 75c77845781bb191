"""nomad/monitoring/: the alert rules are valid Prometheus rules (promtool, when installed) and
cover the conditions operators must hear about; the dashboard is well-formed. That every series
they use is exported is checked against a real scrape in tests/ops/test_metrics.py."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml

from tests.support.monitoring import DASHBOARD, RULES, series_used


def test_rules_cover_the_conditions_operators_need():
    alerts = {rule["alert"]: rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]}
    wanted = {
        "whago_scheduler_requests_total": "placement",
        "whago_chips": "failed",
        "whago_proxy_free_slots": "",
        "whago_webhook_events_total": "invalid_signature",
        "whago_queue_depth": "",
        "whago_reconcile_drift_total": "",
        "whago_dependency_up": "",
    }
    exprs = " ".join(rule["expr"] for rule in alerts.values())
    for series, hint in wanted.items():
        assert series in exprs, series
        assert hint in exprs, hint
    for name, rule in alerts.items():
        assert rule["annotations"]["summary"], name
        assert rule["labels"]["severity"] in ("warning", "critical"), name


def test_dashboard_is_well_formed():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert all(panel["targets"] for panel in dashboard["panels"])
    assert len(series_used()) >= 12


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool not installed (Debian: apt-get install prometheus)"
)
def test_promtool_accepts_the_rules():
    result = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
