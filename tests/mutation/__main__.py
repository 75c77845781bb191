"""``python -m tests.mutation run [MODULE...] [--every K] [--timeout S] [--out FILE]``

``list MODULE`` prints the mutants without running anything. Each mutant is written into the
module in place (the original is kept in tests/mutation/.in-progress.json and put back after each
mutant, and at the next start if a run was killed), then the module's mapped test files run with
``-x`` under a per-mutant timeout, one at a time. Exit status 0 whatever the score: it measures.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from tests.mutation.mutants import Mutant, mutants_for
from tests.mutation.targets import TARGETS

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
IN_PROGRESS = HERE / ".in-progress.json"
EQUIVALENT = HERE / "equivalent.json"


def _restore_interrupted() -> None:
    if IN_PROGRESS.exists():
        saved = json.loads(IN_PROGRESS.read_text())
        (ROOT / saved["path"]).write_text(saved["source"])
        IN_PROGRESS.unlink()
        print(f"restored {saved['path']} left mutated by an interrupted run", file=sys.stderr)


def _drop_bytecode(path: Path) -> None:
    for pyc in (path.parent / "__pycache__").glob(f"{path.stem}.*.pyc"):
        pyc.unlink(missing_ok=True)


def _run_tests(tests: list[str], timeout: float) -> tuple[str, float]:
    """'killed' (a test failed), 'survived' (all passed), 'timeout' or 'error' (pytest itself broke)."""
    # this tree's app/ even when the venv's editable install points at another checkout
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the tests start servers: kill the whole group on timeout
    )
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return "timeout", time.monotonic() - started
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # leftovers (a server a test started)
        except ProcessLookupError:
            pass
    elapsed = time.monotonic() - started
    if code == 0:
        return "survived", elapsed
    if code == 1:
        return "killed", elapsed
    return "error", elapsed  # 2-5: interrupted, internal error, usage, nothing collected


def _module_mutants(module: str, every: int, sample: int | None = None) -> list[Mutant]:
    """All mutants, every K-th, or about ``sample`` of them evenly spaced (deterministic)."""
    source = (ROOT / module).read_text()
    found = mutants_for(module, source)
    if sample:
        every = max(1, -(-len(found) // sample))
    return found[::every] if every > 1 else found


def _equivalents() -> dict[str, str]:
    if not EQUIVALENT.exists():
        return {}
    return {e["mutant"]: e["reason"] for e in json.loads(EQUIVALENT.read_text())}


def run(modules: list[str], every: int, sample: int | None, timeout: float | None, out: Path) -> dict:
    _restore_interrupted()
    # `kill PID` must still put the module back (the finally below): SIGTERM becomes SystemExit
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    equivalent = _equivalents()
    report: dict = {"started": datetime.now(UTC).isoformat(), "every": every, "sample": sample, "modules": {}}
    for module in modules:
        tests = [t for t in TARGETS[module] if (ROOT / t).exists()]
        path = ROOT / module
        original = path.read_text()
        base, base_time = _run_tests(tests, timeout=1800)
        if base != "survived":
            print(f"{module}: its tests fail on the unmutated code ({base}); skipped", flush=True)
            report["modules"][module] = {"error": f"baseline {base}", "tests": tests}
            continue
        limit = timeout or max(60.0, 3 * base_time)
        generated = len(mutants_for(module, original))
        mutants = _module_mutants(module, every, sample)
        print(
            f"{module}: {len(mutants)} of {generated} mutants, tests {tests}"
            f" (clean run {base_time:.0f} s, timeout {limit:.0f} s)",
            flush=True,
        )
        results = []
        for n, mutant in enumerate(mutants, 1):
            mutated = mutant.apply(original)
            try:
                compile(mutated, module, "exec")
            except SyntaxError:
                results.append({"line": mutant.line, "change": mutant.change, "outcome": "invalid"})
                continue
            IN_PROGRESS.write_text(json.dumps({"path": module, "source": original}))
            try:
                path.write_text(mutated)
                _drop_bytecode(path)
                outcome, took = _run_tests(tests, limit)
            finally:
                path.write_text(original)
                _drop_bytecode(path)
                IN_PROGRESS.unlink(missing_ok=True)
            entry = {"line": mutant.line, "kind": mutant.kind, "change": mutant.change, "outcome": outcome}
            if outcome == "survived" and mutant.key in equivalent:
                entry["equivalent"] = equivalent[mutant.key]
            results.append(entry)
            print(
                f"  [{n}/{len(mutants)}] {outcome:8} {took:5.0f}s  {module}:{mutant.line}  {mutant.change}", flush=True
            )
        counted = [r for r in results if r["outcome"] in ("killed", "timeout", "survived")]
        caught = [r for r in counted if r["outcome"] != "survived"]
        equivalents = [r for r in counted if "equivalent" in r]
        score = len(caught) / len(counted) if counted else None
        adjusted = len(caught) / (len(counted) - len(equivalents)) if len(counted) > len(equivalents) else None
        report["modules"][module] = {
            "tests": tests,
            "generated": generated,
            "mutants": len(counted),
            "caught": len(caught),
            "equivalent": len(equivalents),
            "score": score,
            "score_without_equivalent": adjusted,
            "results": results,
        }
        out.write_text(json.dumps(report, indent=1))
    report["finished"] = datetime.now(UTC).isoformat()
    out.write_text(json.dumps(report, indent=1))
    _print_summary(report)
    return report


def _print_summary(report: dict) -> None:
    print("\nmodule                           run/generated caught score (without equivalent)")
    for module, m in report["modules"].items():
        if "error" in m:
            print(f"{module:32} {m['error']}")
            continue
        pct = f"{m['score']:.0%}" if m["score"] is not None else "-"
        adj = f"{m['score_without_equivalent']:.0%}" if m["score_without_equivalent"] is not None else "-"
        print(f"{module:32} {m['mutants']:4}/{m['generated']:<4} {m['caught']:6} {pct:>6}  ({adj})")
    for module, m in report["modules"].items():
        for r in m.get("results", []):
            if r["outcome"] == "survived":
                note = f"  [equivalent: {r['equivalent']}]" if "equivalent" in r else ""
                print(f"SURVIVED {module}:{r['line']}  {r['change']}{note}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.mutation")
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="run mutants against each module's mapped tests")
    run_p.add_argument("modules", nargs="*", help=f"default: all of {', '.join(TARGETS)}")
    run_p.add_argument("--every", type=int, default=1, help="deterministic sample: every K-th mutant")
    run_p.add_argument("--sample", type=int, default=None, help="about N mutants per module, evenly spaced")
    run_p.add_argument("--timeout", type=float, default=None, help="seconds per mutant (default 3x the clean run)")
    run_p.add_argument("--out", type=Path, default=HERE / "last-run.json")
    list_p = sub.add_parser("list", help="print the mutants of modules without running them")
    list_p.add_argument("modules", nargs="*")
    list_p.add_argument("--every", type=int, default=1)
    args = parser.parse_args()
    modules = args.modules or list(TARGETS)
    unknown = [m for m in modules if m not in TARGETS]
    if unknown:
        parser.error(f"no test map for {unknown}; add them to tests/mutation/targets.py")
    if args.command == "list":
        for module in modules:
            for m in _module_mutants(module, args.every):
                print(f"{module}:{m.line}  {m.change}")
        return
    run(modules, args.every, args.sample, args.timeout, args.out)


if __name__ == "__main__":
    main()
