"""The monitoring files (nomad/monitoring/): the PromQL expressions they hold and the WHAGO series
those use."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

MONITORING = Path(__file__).resolve().parents[2] / "nomad" / "monitoring"
RULES = MONITORING / "whago-alerts.yml"
DASHBOARD = MONITORING / "whago-dashboard.json"

_SERIES = re.compile(r"\b(whago_[a-z0-9_]+)\b")


def expressions() -> dict[str, str]:
    """``{where: PromQL}`` for every alert rule and dashboard target."""
    found: dict[str, str] = {}
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            found[f"alert {rule['alert']}"] = rule["expr"]
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel["targets"]:
            found[f"panel {panel['title']} {target['refId']}"] = target["expr"]
    return found


def series_used() -> dict[str, set[str]]:
    """``{series name: {where…}}`` over every expression."""
    used: dict[str, set[str]] = {}
    for where, expr in expressions().items():
        for name in _SERIES.findall(expr):
            used.setdefault(name, set()).add(where)
    return used
