"""Product code never depends on the test tree (issue #23: `migrate run --driver local-stubs`
used to run a file from tests/). Checked on the syntax tree of every module under components/
and __main__.py (what `pip install` and `pulumi up` ship): no import of `tests`, and no path
built from a "tests" segment. benchmarks/ are development scripts and may reuse test harnesses.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _product_modules():
    yield ROOT / "__main__.py"
    yield from sorted((ROOT / "components").rglob("*.py"))


def _test_tree_uses(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name == "tests" or a.name.startswith("tests.")]
        elif isinstance(node, ast.ImportFrom) and node.module and (node.module == "tests" or node.module.startswith("tests.")):
            found.append(node.module)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            for side in (node.left, node.right):
                if isinstance(side, ast.Constant) and isinstance(side.value, str) and side.value.split("/")[0] == "tests":
                    found.append(f"path segment {side.value!r} (line {node.lineno})")
    return found


def test_product_code_never_uses_the_test_tree():
    offenders = {str(p.relative_to(ROOT)): uses for p in _product_modules()
                 if (uses := _test_tree_uses(ast.parse(p.read_text())))}
    assert not offenders, offenders


def test_the_check_sees_a_test_tree_path():
    assert _test_tree_uses(ast.parse('STUB = paths.REPO_ROOT / "tests" / "support" / "openai_stub.py"'))
    assert _test_tree_uses(ast.parse("from tests.support import processes"))
