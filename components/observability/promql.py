"""Metric names referenced by a PromQL expression, from promql-parser's AST."""

from __future__ import annotations

import promql_parser


def _walk(node, names: set[str]) -> None:
    if isinstance(node, promql_parser.VectorSelector):
        if node.name:
            names.add(node.name)
        for m in node.matchers.matchers:
            if m.name == "__name__":
                names.add(m.value)
        return
    for attr in ("expr", "lhs", "rhs", "param", "vector_selector"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, (str, int, float)):
            _walk(child, names)
    for arg in getattr(node, "args", None) or []:
        _walk(arg, names)


def referenced_metrics(expr: str) -> set[str]:
    """Raises ValueError if `expr` does not parse."""
    names: set[str] = set()
    _walk(promql_parser.parse(expr), names)
    return names
