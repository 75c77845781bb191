"""A pytest plugin recording which test runs which line of the mutated modules (``-p tests.mutation.covplugin``).

Loaded by ``python -m tests.mutation coverage`` over the whole suite: coverage.py measures only the
target modules, with the test's node id as the dynamic context for its setup, call and teardown, so
each mutant can then run exactly the tests that execute its line (``-x``, fastest first) instead of
a fixed list of files — "caught by the whole suite" at a fraction of its cost. Code that runs in a
subprocess a test starts (``whago serve``, the crash test) is not seen here: the runner falls back
to the module's mapped test files for lines no in-process test executes.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import coverage
import pytest

from tests.mutation.targets import TARGETS

ROOT = Path(__file__).resolve().parents[2]
_state: dict = {}


def pytest_configure(config: pytest.Config) -> None:
    out = os.environ.get("WHAGO_MUTATION_MAP")
    if not out:
        return
    cov = coverage.Coverage(
        data_file=None,  # in memory: read back at the end of the session
        include=[str(ROOT / module) for module in TARGETS],
        config_file=False,
    )
    cov.start()
    _state.update(cov=cov, out=Path(out), durations={}, failed=set())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    cov = _state.get("cov")
    if cov is None:
        yield
        return
    cov.switch_context(item.nodeid)
    started = time.monotonic()
    yield
    _state["durations"][item.nodeid] = round(time.monotonic() - started, 3)
    cov.switch_context("")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # a test that fails (or errors) on the unmutated code would "kill" every mutant it runs
    if _state and report.failed:
        _state["failed"].add(report.nodeid)


def pytest_unconfigure(config: pytest.Config) -> None:
    cov = _state.pop("cov", None)
    if cov is None:
        return
    cov.stop()
    data = cov.get_data()
    lines: dict[str, dict[str, list[str]]] = {}
    for module in TARGETS:
        by_line = data.contexts_by_lineno(str(ROOT / module))
        lines[module] = {str(n): sorted(c for c in ctxs if c) for n, ctxs in by_line.items() if any(ctxs)}
    _state["out"].write_text(
        json.dumps(
            {"lines": lines, "durations": _state["durations"], "failed": sorted(_state["failed"])},
            separators=(",", ":"),
        )
    )
