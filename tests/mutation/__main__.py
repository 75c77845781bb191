"""``python -m tests.mutation {coverage,run,list}`` — mutation testing of the modules in targets.py.

``coverage`` runs the whole suite once with tests/mutation/covplugin.py and writes which test
executes which line of the target modules (``tests/mutation/.coverage-map.json``). ``run`` then
plants one mutant at a time and runs, with ``-x`` and fastest first, the tests that can see it:

- a mutant inside a function body: the tests that execute any of its lines;
- a mutant in a module-level constant (SQL, Lua, limits): the tests that execute the functions
  naming that constant; anything else at module level (signatures, defaults, decorators): every
  test that executes the module;
- a line no in-process test executes (code that only runs in a subprocess a test starts): the
  module's mapped test files (targets.py).

So "caught" means caught by the whole suite, short of tests that only reach the line through a
subprocess and are not in the mapped files. Without a coverage map every mutant runs the mapped
files. ``--jobs N`` runs N mutants at once, each in its own copy of the tree with its own test
database and Redis db (the working tree is never modified). Exit status 0 whatever the score.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tests.mutation.mutants import Mutant, mutants_for
from tests.mutation.targets import TARGETS

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
EQUIVALENT = HERE / "equivalent.json"
COVERAGE_MAP = HERE / ".coverage-map.json"
# third-party pytest plugins the suite does not need: importing them costs ~4 s per mutant
PYTEST_ARGS = ["-q", "-p", "no:cacheprovider", "-p", "no:faker", "-p", "no:hypothesispytest"]
PYTEST_ARGS += ["-p", "no:schemathesis", "-p", "no:platformdirs"]
BASE_DB = "postgresql://postgres@127.0.0.1:5432/whago_mutation_{n}"
BASE_REDIS = "redis://127.0.0.1:6379/{db}"
FIRST_REDIS_DB = 11  # 11..14: the suite's default is 15


# --- coverage map ------------------------------------------------------------------------------


def collect_coverage(out: Path, tests: list[str]) -> int:
    """The whole suite, or (``tests`` given) only those tests merged into the existing map."""
    target = out.with_suffix(".part.json") if tests else out
    env = {**os.environ, "WHAGO_MUTATION_MAP": str(target), "PYTHONDONTWRITEBYTECODE": "1"}
    started = time.monotonic()
    code = subprocess.call(
        [sys.executable, "-m", "pytest", *PYTEST_ARGS, "-p", "tests.mutation.covplugin", *(tests or ["tests"])],
        cwd=ROOT,
        env=env,
    )
    if not target.exists():
        print("no coverage map written", file=sys.stderr)
        return 1
    data = json.loads(target.read_text())
    if tests:  # merged into the map there is (the first partial run starts one)
        data = _merge(json.loads(out.read_text()), data) if out.exists() else data
        out.write_text(json.dumps(data, separators=(",", ":")))
        target.unlink()
    took = time.monotonic() - started
    print(f"coverage map: {out} ({len(data['durations'])} tests, {took:.0f} s, failed: {data['failed'] or 'none'})")
    return 0 if code in (0, 1) else code


def _merge(whole: dict, part: dict) -> dict:
    """``part``'s tests replace their earlier entries (new tests are added, changed ones re-measured)."""
    # every test of a file that ran again is replaced: one deleted or renamed since is dropped
    files = {t.split("::", 1)[0] for t in part["durations"]}
    ran = {t for t in whole["durations"] if t.split("::", 1)[0] in files} | set(part["durations"])
    for t in ran - set(part["durations"]):
        del whole["durations"][t]
    for module, lines in whole["lines"].items():
        for n in list(lines):
            lines[n] = [t for t in lines[n] if t not in ran]
        for n, tests in part["lines"].get(module, {}).items():
            lines[n] = sorted({*lines.get(n, []), *tests})
    whole["durations"].update(part["durations"])
    whole["failed"] = sorted((set(whole["failed"]) - ran) | set(part["failed"]))
    return whole


@dataclass
class Selector:
    """Chooses the tests for a mutant from the coverage map (or the mapped files without one)."""

    module: str
    source: str
    lines: dict[int, list[str]]  # line -> tests executing it (at run time, not at import)
    durations: dict[str, float]
    failed: set[str]
    others: dict[str, str]  # the other target modules' sources (where a queries module's SQL runs)
    all_lines: dict[str, dict[int, list[str]]]

    @classmethod
    def load(cls, module: str, source: str, cmap: dict | None) -> Selector:
        if cmap is None:
            return cls(module, source, {}, {}, set(), {}, {})
        all_lines = {m: {int(n): t for n, t in ls.items()} for m, ls in cmap["lines"].items()}
        others = {m: (ROOT / m).read_text() for m in TARGETS if m != module}
        return cls(module, source, all_lines.get(module, {}), cmap["durations"], set(cmap["failed"]), others, all_lines)

    def _covering(self, first: int, last: int) -> set[str]:
        found: set[str] = set()
        for n in range(first, last + 1):
            found.update(self.lines.get(n, ()))
        return found

    def _functions(self) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
        tree = ast.parse(self.source)
        return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]

    def _body_span(self, fn: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[int, int]:
        return fn.body[0].lineno, fn.end_lineno or fn.body[-1].lineno

    def select(self, mutant: Mutant) -> tuple[str, list[str]]:
        mapped = [t for t in TARGETS[self.module] if (ROOT / t).exists()]
        if not self.all_lines:
            return "mapped files", mapped
        last = mutant.line + self.source.count("\n", mutant.start, mutant.end)
        functions = self._functions()
        inside = [f for f in functions if self._body_span(f)[0] <= mutant.line <= self._body_span(f)[1]]
        if inside:
            # coverage sees one line of a multi-line expression: take the enclosing statement's
            chosen, how = self._covering(*self._statement_span(inside[-1], mutant.line, last)), "covering"
        else:
            names = self._constant_names(mutant.line)
            users = [
                f for f in functions if names and any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(f))
            ]
            chosen, how = set(), "module"
            for f in users:
                chosen |= self._covering(*self._body_span(f))
            if not users and names:  # a queries module's statement: the functions elsewhere that run it
                chosen = self._users_elsewhere(names)
            if chosen:
                how = "users of the constant"
            else:
                chosen = {t for tests in self.lines.values() for t in tests}
        chosen -= self.failed
        if not chosen:
            return "mapped files (not run in-process)", mapped
        # then the module's own test files, whole: some check it without running the line (a
        # test reading the module's source or constants), and coverage cannot see that
        rest = [
            t for t in self._ordered({t for t in self.durations if t.split("::", 1)[0] in mapped}) if t not in chosen
        ]
        return how, self._ordered(chosen) + rest

    def _ordered(self, tests: set[str]) -> list[str]:
        """Cheapest file first, each file's tests together in their own order: a file's module-scoped
        fixtures (servers, seeded worlds) are then set up once per mutant, not once per test."""
        order = {t: i for i, t in enumerate(self.durations)}  # the suite's own order
        files: dict[str, list[str]] = {}
        for t in sorted(tests, key=lambda t: order.get(t, len(order))):
            files.setdefault(t.split("::", 1)[0], []).append(t)
        cost = {f: sum(self.durations.get(t, 60.0) for t in ts) for f, ts in files.items()}
        return [t for f in sorted(files, key=lambda f: (cost[f], f)) for t in files[f]]

    def _statement_span(self, fn: ast.AST, first: int, last: int) -> tuple[int, int]:
        """The innermost statement holding lines first..last (a compound statement's header only)."""
        span = (first, last)
        for node in ast.walk(fn):
            if not isinstance(node, ast.stmt) or node is fn:
                continue
            end = node.end_lineno or node.lineno
            body = getattr(node, "body", None)
            if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
                end = body[0].lineno - 1  # if/for/with/while: the header, not the block
            if node.lineno <= first and last <= end and (end - node.lineno) < (span[1] - span[0] or 10**9):
                span = (node.lineno, end)
        return span

    def _users_elsewhere(self, names: set[str]) -> set[str]:
        found: set[str] = set()
        for module, source in self.others.items():
            lines = self.all_lines.get(module, {})
            for fn in ast.walk(ast.parse(source)):
                if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                named = {n.attr for n in ast.walk(fn) if isinstance(n, ast.Attribute)}
                named |= {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)}
                if names & named:
                    first, end = self._body_span(fn)
                    for n in range(first, end + 1):
                        found.update(lines.get(n, ()))
        return found

    def _constant_names(self, line: int) -> set[str]:
        for node in ast.parse(self.source).body:
            if isinstance(node, ast.Assign | ast.AnnAssign) and node.lineno <= line <= (node.end_lineno or node.lineno):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                return {t.id for t in targets if isinstance(t, ast.Name)}
        return set()

    def budget(self, tests: list[str]) -> float:
        """Timeout: three times what the selected tests took on the clean code, plus start-up."""
        total = 0.0
        for t in tests:
            if t in self.durations:
                total += self.durations[t]
            else:  # a file: the tests in it
                total += sum(d for n, d in self.durations.items() if n.startswith(t + "::")) or 60.0
        return 3 * total + 30


# --- running -----------------------------------------------------------------------------------


class Workspaces:
    """N copies of the tree (never the working tree), each with its own test database and Redis db."""

    def __init__(self, jobs: int) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="whago-mutation-"))
        self.free: queue.Queue[int] = queue.Queue()
        self.roots: list[Path] = []
        ignore = shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.pyc", ".coverage-map.json", "last-run*.json")
        for n in range(jobs):
            root = self.base / f"w{n}" / ROOT.name
            shutil.copytree(ROOT, root, ignore=ignore)
            shared = ROOT.parent / "shared"
            if shared.exists():  # the official specs the doubles are checked against (tests/support/reference.py)
                (root.parent / "shared").symlink_to(shared)
            self.roots.append(root)
            self.free.put(n)

    def env(self, n: int) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONDONTWRITEBYTECODE": "1",
            # this copy's app/ and tests/, not the editable install's checkout
            "PYTHONPATH": str(self.roots[n]),
            "WHAGO_TEST_DATABASE_URL": BASE_DB.format(n=n),
            "WHAGO_TEST_REDIS_URL": BASE_REDIS.format(db=FIRST_REDIS_DB + n),
        }

    def cleanup(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


def _pytest(root: Path, env: dict[str, str], tests: list[str], timeout: float) -> tuple[str, float]:
    """'killed' (a test failed), 'survived' (all passed), 'timeout' or 'error' (pytest itself broke)."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-x", *PYTEST_ARGS, *tests],
        cwd=root,
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
    found = mutants_for(module, (ROOT / module).read_text())
    if sample:
        every = max(1, -(-len(found) // sample))
    return found[::every] if every > 1 else found


def _equivalents() -> list[dict]:
    return json.loads(EQUIVALENT.read_text()) if EQUIVALENT.exists() else []


def _equivalent_reason(known: list[dict], mutant: Mutant, source: str) -> str | None:
    """An entry names the mutant (module and change) and, where the change is not unique in the
    module, the mutated line's text (``at``): both stable across unrelated edits, unlike numbers."""
    line = source.splitlines()[mutant.line - 1].strip()
    for entry in known:
        module, _, change = entry["mutant"].partition(" ")
        if change != mutant.change or module not in ("*", mutant.path):
            continue  # "*": any module
        if entry.get("at", line) == line and re.fullmatch(entry.get("at_regex", ".*"), line):
            return entry["reason"]
    return None


def _ident(module: str, text: str, change: str) -> str:
    # the mutated line's text, not its number: a report stays comparable after edits elsewhere
    return f"{module} {text} {change}"


def _line_text(source: str, line: int) -> str:
    return source.splitlines()[line - 1].strip()


def _survivors(report: Path) -> set[str]:
    data = json.loads(report.read_text())
    return {
        _ident(module, r["text"], r["change"])
        for module, m in data["modules"].items()
        for r in m.get("results", [])
        if r["outcome"] == "survived"
    }


def run(modules: list[str], args: argparse.Namespace) -> dict:
    cmap = json.loads(COVERAGE_MAP.read_text()) if COVERAGE_MAP.exists() and not args.files_only else None
    if cmap is None:
        print("no coverage map (python -m tests.mutation coverage): each mutant runs its module's mapped files")
    only = _survivors(args.only_survivors_of) if args.only_survivors_of else None
    previous = json.loads(args.only_survivors_of.read_text()) if args.only_survivors_of else None
    equivalent = _equivalents()
    report: dict = {
        "started": datetime.now(UTC).isoformat(),
        "every": args.every,
        "sample": args.sample,
        "coverage_map": cmap is not None,
        "only_survivors_of": str(args.only_survivors_of) if args.only_survivors_of else None,
        "modules": {},
    }
    spaces = Workspaces(args.jobs)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `kill PID` still removes the copies
    lock = threading.Lock()
    try:
        for module in modules:
            original = (ROOT / module).read_text()
            selector = Selector.load(module, original, cmap)
            generated = len(mutants_for(module, original))
            mutants = _module_mutants(module, args.every, args.sample)
            carried: list[dict] = []
            if only is not None:
                # the earlier run's survivors among all of today's mutants (not re-sampled: the
                # module may have changed); its other outcomes are carried over as they were
                earlier = previous["modules"].get(module, {}).get("results", []) if previous else []
                carried = [dict(r, carried=True) for r in earlier if r["outcome"] != "survived"]
                everything = mutants_for(module, original)
                mutants = [m for m in everything if _ident(module, _line_text(original, m.line), m.change) in only]
                found = {_ident(module, _line_text(original, m.line), m.change) for m in mutants}
                # a survivor listed as equivalent since is carried over as such, not run again
                for m in [m for m in mutants if _equivalent_reason(equivalent, m, original)]:
                    mutants.remove(m)
                    carried.append(
                        {
                            "line": m.line,
                            "text": _line_text(original, m.line),
                            "kind": m.kind,
                            "change": m.change,
                            "outcome": "survived",
                            "equivalent": _equivalent_reason(equivalent, m, original),
                            "carried": True,
                        }
                    )
                for r in earlier:
                    if r["outcome"] == "survived" and _ident(module, r["text"], r["change"]) not in found:
                        # the code it mutated is gone: no longer a mutant of this module
                        carried.append(dict(r, outcome="gone", carried=True))
            print(f"{module}: {len(mutants)} of {generated} mutants, {args.jobs} at once", flush=True)
            results: list[dict] = []
            done = [0]

            def one(
                mutant: Mutant,
                module: str = module,
                original: str = original,
                selector: Selector = selector,
                total: int = len(mutants),
                results: list[dict] = results,
                done: list[int] = done,
            ) -> None:
                mutated = mutant.apply(original)
                entry = {
                    "line": mutant.line,
                    "text": _line_text(original, mutant.line),
                    "kind": mutant.kind,
                    "change": mutant.change,
                }
                try:
                    compile(mutated, module, "exec")
                except SyntaxError:
                    entry["outcome"] = "invalid"
                    with lock:
                        results.append(entry)
                    return
                how, tests = selector.select(mutant)
                n = spaces.free.get()
                target = spaces.roots[n] / module
                try:
                    target.write_text(mutated)
                    outcome, took = _pytest(
                        spaces.roots[n], spaces.env(n), tests, args.timeout or selector.budget(tests)
                    )
                finally:
                    target.write_text(original)
                    spaces.free.put(n)
                entry.update(outcome=outcome, tests=len(tests), selection=how, seconds=round(took, 1))
                reason = _equivalent_reason(equivalent, mutant, original) if outcome == "survived" else None
                if reason:
                    entry["equivalent"] = reason
                with lock:
                    results.append(entry)
                    done[0] += 1
                    print(
                        f"  [{done[0]}/{total}] {outcome:8} {took:5.0f}s {len(tests):4} tests ({how})"
                        f"  {module}:{mutant.line}  {mutant.change}",
                        flush=True,
                    )

            with ThreadPoolExecutor(max_workers=args.jobs) as pool:
                list(pool.map(one, mutants))
            results = sorted(carried + results, key=lambda r: (r["line"], r["change"]))
            report["modules"][module] = _score(module, generated, results)
            args.out.write_text(json.dumps(report, indent=1))
    finally:
        spaces.cleanup()
    report["finished"] = datetime.now(UTC).isoformat()
    args.out.write_text(json.dumps(report, indent=1))
    _print_summary(report)
    return report


def _score(module: str, generated: int, results: list[dict]) -> dict:
    counted = [r for r in results if r["outcome"] in ("killed", "timeout", "survived")]
    caught = [r for r in counted if r["outcome"] != "survived"]
    equivalents = [r for r in counted if "equivalent" in r]
    real = len(counted) - len(equivalents)
    return {
        "tests": TARGETS[module],
        "generated": generated,
        "mutants": len(counted),
        "caught": len(caught),
        "equivalent": len(equivalents),
        "errors": len([r for r in results if r["outcome"] == "error"]),
        "score": len(caught) / len(counted) if counted else None,
        "score_without_equivalent": len(caught) / real if real else None,
        "results": results,
    }


def _print_summary(report: dict) -> None:
    print("\nmodule                           run/generated caught score (without equivalent)")
    for module, m in report["modules"].items():
        pct = f"{m['score']:.0%}" if m["score"] is not None else "-"
        adj = f"{m['score_without_equivalent']:.0%}" if m["score_without_equivalent"] is not None else "-"
        print(f"{module:32} {m['mutants']:4}/{m['generated']:<4} {m['caught']:6} {pct:>6}  ({adj})")
    for module, m in report["modules"].items():
        for r in m.get("results", []):
            if r["outcome"] in ("survived", "error"):
                note = f"  [equivalent: {r['equivalent']}]" if "equivalent" in r else ""
                print(f"{r['outcome'].upper()} {module}:{r['line']}  {r['change']}{note}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.mutation")
    sub = parser.add_subparsers(dest="command", required=True)
    cov_p = sub.add_parser("coverage", help="run the whole suite once, recording which test runs which line")
    cov_p.add_argument("tests", nargs="*", help="only these tests, merged into the existing map (default: all)")
    cov_p.add_argument("--out", type=Path, default=COVERAGE_MAP)
    run_p = sub.add_parser("run", help="run mutants against the tests that execute them")
    run_p.add_argument("modules", nargs="*", help=f"default: all of {', '.join(TARGETS)}")
    run_p.add_argument("--jobs", type=int, default=2, help="mutants at once, each in its own copy (default 2)")
    run_p.add_argument("--every", type=int, default=1, help="deterministic sample: every K-th mutant")
    run_p.add_argument("--sample", type=int, default=None, help="about N mutants per module, evenly spaced")
    run_p.add_argument("--timeout", type=float, default=None, help="seconds per mutant (default 3x the clean run)")
    run_p.add_argument("--files-only", action="store_true", help="ignore the coverage map: mapped files only")
    run_p.add_argument(
        "--only-survivors-of", type=Path, default=None, help="re-run only the survivors of an earlier report"
    )
    run_p.add_argument("--out", type=Path, default=HERE / "last-run.json")
    list_p = sub.add_parser("list", help="print the mutants of modules without running them")
    list_p.add_argument("modules", nargs="*")
    list_p.add_argument("--every", type=int, default=1)
    args = parser.parse_args()
    if args.command == "coverage":
        sys.exit(collect_coverage(args.out, args.tests))
    modules = args.modules or list(TARGETS)
    unknown = [m for m in modules if m not in TARGETS]
    if unknown:
        parser.error(f"no test map for {unknown}; add them to tests/mutation/targets.py")
    if args.command == "list":
        for module in modules:
            for m in _module_mutants(module, args.every):
                print(f"{module}:{m.line}  {m.change}")
        return
    run(modules, args)


if __name__ == "__main__":
    main()
