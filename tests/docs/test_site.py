"""The docs site builds strictly from the code, and the README stays a front page.

`mkdocs build --strict` fails on a page missing from the nav, a broken link or anchor, and on
any error of the hook that generates the reference pages (CLI, pins, alerts, Ansible role
variables, the stack JSON Schema) from the code.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MKDOCS = ROOT / ".venv-docs" / "bin" / "mkdocs"


def test_readme_is_a_front_page():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines; move detail to docs/"


def test_readme_links_resolve():
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if not t.startswith(("http://", "https://"))]
    assert local, "the README links into docs/"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, missing


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    run = subprocess.run([str(MKDOCS), "build", "--strict", "-d", str(out)], cwd=ROOT, capture_output=True,
                         text=True, env={"PATH": "/usr/bin:/bin", "NO_MKDOCS_2_WARNING": "1", "HOME": str(out)},
                         timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return out


def test_site_builds_strictly_with_generated_reference(site):
    cli = (site / "reference" / "generated" / "cli" / "index.html").read_text()
    for command in ("render", "validate", "plan", "bench", "migrate run"):
        assert f"tierscale {command}" in cli, command
    alerts = (site / "reference" / "generated" / "alerts" / "index.html").read_text()
    assert "VllmTtftP99High" in alerts


def test_generated_stack_schema_is_the_spec():
    from components.spec.model import StackSpec

    schema = json.loads((ROOT / "docs" / "reference" / "generated" / "stack.schema.json").read_text()) \
        if (ROOT / "docs" / "reference" / "generated" / "stack.schema.json").exists() else None
    if schema is None:
        subprocess.run([str(ROOT / "venv" / "bin" / "python"), "docs/hooks/reference.py"], cwd=ROOT, check=True)
        schema = json.loads((ROOT / "docs" / "reference" / "generated" / "stack.schema.json").read_text())
    assert schema == json.loads(json.dumps(StackSpec.model_json_schema(by_alias=True)))
    assert "tier" in schema["properties"]
