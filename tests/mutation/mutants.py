"""Mutant generation: one small change at a time, as a (start, end, replacement) edit of the source.

Python code is mutated through its ast (positions from the parser, replacement text from
``ast.unparse``), so everything outside the changed span stays byte for byte. Script strings (SQL,
and the Lua run in Redis) are mutated as text: comparison operators, AND/OR, a dropped WHERE term,
ASC/DESC, NULL tests, EXISTS, greatest/least and quoted status literals.
"""

from __future__ import annotations

import ast
import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    path: str
    line: int
    kind: str  # "py" or "sql"
    change: str  # human-readable: what was replaced by what
    start: int  # offsets into the source text
    end: int
    replacement: str

    def apply(self, source: str) -> str:
        return source[: self.start] + self.replacement + source[self.end :]

    @property
    def key(self) -> str:
        """Stable across unrelated edits (no line number): used to list equivalent mutants."""
        return f"{self.path} {self.change}"


_CMP_SWAP: dict[type, type] = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_BIN_SWAP: dict[type, type] = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.FloorDiv: ast.Mult}
# normalising calls whose removal is a plausible bug (input not trimmed / not case-folded)
_DROPPABLE_CALLS = {"strip", "lower", "upper", "casefold"}
_SCRIPT_HINT = re.compile(r"\b(SELECT|UPDATE|INSERT|DELETE|WHERE)\b|redis\.call")
_IDENT = re.compile(r"^[a-z][a-z0-9_.\-]{0,39}$")


def _short(text: str, limit: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Offsets:
    def __init__(self, source: str) -> None:
        self.starts = [0]
        for line in source.splitlines(keepends=True):
            self.starts.append(self.starts[-1] + len(line))
        self.source = source
        self._bytes = [line.encode() for line in source.splitlines(keepends=True)]

    def at(self, lineno: int, col: int) -> int:
        # ast columns are UTF-8 byte offsets
        line = self._bytes[lineno - 1]
        return self.starts[lineno - 1] + len(line[:col].decode())

    def span(self, node: ast.AST) -> tuple[int, int]:
        return self.at(node.lineno, node.col_offset), self.at(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined, arg-type]


def _skipped_nodes(tree: ast.Module) -> set[int]:
    """Nodes not worth mutating: docstrings, annotations, logging calls, ``__future__``."""
    skip: set[int] = set()

    def mark(node: ast.AST) -> None:
        for sub in ast.walk(node):
            skip.add(id(sub))

    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            first = body[0].value
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                mark(body[0])
        if isinstance(node, ast.AnnAssign):
            mark(node.annotation)
        if isinstance(node, ast.arg) and node.annotation is not None:
            mark(node.annotation)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns is not None:
            mark(node.returns)
        if isinstance(node, ast.ImportFrom | ast.Import):
            mark(node)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "logger"
        ) or (isinstance(node, ast.Call) and ast.unparse(node.func) == "logging.getLogger"):
            mark(node)
        # messages of errors and exceptions: text for people, not behaviour
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            for arg in node.exc.args:
                mark(arg)
    return skip


def _python_mutants(path: str, source: str, tree: ast.Module, off: _Offsets) -> Iterator[Mutant]:
    skip = _skipped_nodes(tree)

    def edit(node: ast.AST, new: ast.AST, change: str) -> Mutant:
        start, end = off.span(node)
        text = ast.unparse(new)
        if "\n" in source[start:end] or isinstance(new, ast.BoolOp | ast.Compare | ast.BinOp):
            text = f"({text})"
        return Mutant(path, node.lineno, "py", change, start, end, text)  # type: ignore[attr-defined]

    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                swap = _CMP_SWAP.get(type(op))
                if swap is None:
                    continue
                new = copy.deepcopy(node)
                new.ops[i] = swap()
                yield edit(node, new, f"{_short(ast.unparse(node))} -> {_short(ast.unparse(new))}")
        elif isinstance(node, ast.BoolOp):
            new = copy.deepcopy(node)
            new.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
            yield edit(node, new, f"{_short(ast.unparse(node))} -> {_short(ast.unparse(new))}")
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            yield edit(node, node.operand, f"{_short(ast.unparse(node))} -> drop `not`")
        elif isinstance(node, ast.BinOp) and type(node.op) in _BIN_SWAP:
            new = copy.deepcopy(node)
            new.op = _BIN_SWAP[type(node.op)]()
            yield edit(node, new, f"{_short(ast.unparse(node))} -> {_short(ast.unparse(new))}")
        elif isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool):
                yield edit(node, ast.Constant(not value), f"{value} -> {not value}")
            elif isinstance(value, int | float):
                yield edit(node, ast.Constant(value + 1), f"{value!r} -> {value + 1!r}")
            elif isinstance(value, str) and _SCRIPT_HINT.search(value):
                start, end = off.span(node)
                yield from _script_mutants(path, source, start, end, node.lineno)
            elif isinstance(value, str) and _IDENT.match(value):
                yield edit(node, ast.Constant(value + "_x"), f"{value!r} -> {value + '_x'!r}")
        elif isinstance(node, ast.JoinedStr):
            text = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
            if _SCRIPT_HINT.search(text):
                start, end = off.span(node)
                yield from _script_mutants(path, source, start, end, node.lineno)
                for sub in ast.walk(node):
                    skip.add(id(sub))
        elif isinstance(node, ast.Return) and node.value is not None:
            if not (isinstance(node.value, ast.Constant) and node.value.value is None):
                yield edit(node, ast.Return(ast.Constant(None)), f"{_short(ast.unparse(node))} -> return None")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _DROPPABLE_CALLS
            and not node.args
        ):
            yield edit(node, node.func.value, f"{_short(ast.unparse(node))} -> drop .{node.func.attr}()")
        if (
            isinstance(node, ast.Expr | ast.Raise | ast.AugAssign | ast.Delete)
            and id(getattr(node, "value", node)) not in skip
        ):
            start, end = off.span(node)
            yield Mutant(path, node.lineno, "py", f"remove `{_short(ast.unparse(node))}`", start, end, "pass")


# --- script (SQL, Lua) text mutations ---------------------------------------------------------

_WORD_SWAPS = [
    (r"\bAND\b", "OR"),
    (r"\bOR\b", "AND"),
    (r"\bDESC\b", "ASC"),
    (r"\bASC\b", "DESC"),
    (r"\bIS NOT NULL\b", "IS NULL"),
    (r"\bIS NULL\b", "IS NOT NULL"),
    (r"\bIS NOT DISTINCT FROM\b", "IS DISTINCT FROM"),
    (r"\bIS DISTINCT FROM\b", "IS NOT DISTINCT FROM"),
    (r"\bNOT EXISTS\b", "EXISTS"),
    (r"(?<!NOT )\bEXISTS\b", "NOT EXISTS"),
    (r"\bgreatest\(", "least("),
    (r"\bleast\(", "greatest("),
    (r"(?<![<>!=~-])<(?![=>])", "<="),
    (r"<=", "<"),
    (r"(?<![<>=-])>(?!=)", ">="),
    (r">=", ">"),
    (r"\s<>\s", " = "),
]
# `=` only where it compares (a condition), not in SET lists
_CONDITION_LINE = re.compile(r"\b(WHERE|AND|OR|ON|WHEN)\b")
_EQ = re.compile(r"(?<=[\w)\]]) = (?=[\w$'(])")
_STATUS_LITERAL = re.compile(r"'([a-z][a-z_]{2,30})'")
_TERM_END = re.compile(r"\s+(?:AND|OR|ORDER|RETURNING|LIMIT|FOR|GROUP)\b|\n|\)|\"|$")


def _term_end(text: str, pos: int) -> int:
    """End of the condition starting at ``pos`` (a parenthesised group or up to the next keyword)."""
    while pos < len(text) and text[pos] == " ":
        pos += 1
    if pos < len(text) and text[pos] == "(":
        depth = 0
        for i in range(pos, len(text)):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            if depth == 0:
                return i + 1
        return len(text)
    match = _TERM_END.search(text, pos)
    return match.start() if match else len(text)


def _comments(text: str) -> list[tuple[int, int]]:
    """Spans of ``--`` comments (SQL and Lua) outside quoted literals: a change there changes nothing."""
    spans, pos = [], 0
    for line in text.splitlines(keepends=True):
        quoted = False
        for i, ch in enumerate(line):
            if ch == "'":
                quoted = not quoted
            elif not quoted and line.startswith("--", i):
                spans.append((pos + i, pos + len(line)))
                break
        pos += len(line)
    return spans


def _script_mutants(path: str, source: str, start: int, end: int, first_line: int) -> Iterator[Mutant]:
    comments = _comments(source[start:end])
    for mutant in _script_mutants_all(path, source, start, end, first_line):
        if not any(a <= mutant.start - start < b for a, b in comments):
            yield mutant


def _script_mutants_all(path: str, source: str, start: int, end: int, first_line: int) -> Iterator[Mutant]:
    text = source[start:end]
    is_sql = "redis.call" not in text

    def make(a: int, b: int, replacement: str, change: str) -> Mutant:
        line = first_line + text.count("\n", 0, a)
        context = _short(text[max(0, text.rfind("\n", 0, a) + 1) : a] + "⟦" + text[a:b] + "⟧", 90)
        return Mutant(path, line, "sql", f"{change} in `{context.strip()}`", start + a, start + b, replacement)

    for pattern, replacement in _WORD_SWAPS:
        for m in re.finditer(pattern, text):
            yield make(m.start(), m.end(), replacement, f"{m.group().strip()} -> {replacement.strip()}")
    line_start = 0
    for line in text.splitlines(keepends=True):
        condition = _CONDITION_LINE.search(line)
        if condition:
            for m in _EQ.finditer(line, condition.end()):
                yield make(line_start + m.start(), line_start + m.end(), " <> ", "= -> <>")
        line_start += len(line)
    for m in re.finditer(r"\s+AND\b", text):  # drop the term after an AND
        yield make(m.start(), _term_end(text, m.end()), "", "drop `AND term`")
    for m in re.finditer(r"\bWHERE\b", text):  # drop the first term of a WHERE with several
        term_end = _term_end(text, m.end())
        follow = re.match(r"\s+AND\s+", text[term_end:])
        if follow:
            yield make(m.end(), term_end + follow.end(), " ", "drop first WHERE term")
    if is_sql:
        for m in _STATUS_LITERAL.finditer(text):
            yield make(m.start(1), m.end(1), m.group(1) + "_x", f"'{m.group(1)}' -> '{m.group(1)}_x'")


def mutants_for(path: str, source: str) -> list[Mutant]:
    tree = ast.parse(source)
    found = list(_python_mutants(path, source, tree, _Offsets(source)))
    # one order whatever ast.walk's order: by position, then by change text
    unique = {(m.start, m.end, m.replacement): m for m in found}
    return sorted(unique.values(), key=lambda m: (m.start, m.end, m.change))
