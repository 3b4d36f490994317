"""Exit codes are documented once and shown everywhere: the module docstring, the docs page and the
help epilog of every command; each code means the same in every command."""

from __future__ import annotations

import re

import pytest

from components import cli, paths
from components.cli_options import EXIT_CODES, EXIT_CODES_EPILOG
from tests.cli.conftest import command_paths


def test_the_codes_are_0_1_2_3_70():
    assert sorted(EXIT_CODES) == [0, 1, 2, 3, 70]


def test_module_docstring_lists_every_code():
    for code in EXIT_CODES:
        assert re.search(rf"^\s*{code} ", cli.__doc__, re.M), f"components/cli.py docstring lacks exit code {code}"


def test_docs_page_lists_every_code():
    page = (paths.REPO_ROOT / "docs" / "reference" / "cli-conventions.md").read_text()
    for code, meaning in EXIT_CODES.items():
        assert f"| {code} | {meaning} |" in page, f"docs/reference/cli-conventions.md lacks exit code {code}"


@pytest.mark.parametrize("path", [p for p, _ in command_paths()], ids=" ".join)
def test_every_help_ends_with_the_exit_codes(path, tierscale, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # one line: the check reads the epilog, not rich's wrapping
    proc = tierscale(*path, "--help")
    assert proc.returncode == 0, proc.stderr
    assert EXIT_CODES_EPILOG in " ".join(proc.stdout.split()), proc.stdout[-600:]


def test_an_internal_error_exits_70_without_a_traceback(tierscale, monkeypatch):
    import components.migration.triggers as triggers

    def boom(_stack):
        raise RuntimeError("boom")

    monkeypatch.setattr(triggers, "check", boom)
    proc = tierscale("migrate", "check", "--stack", "small-dev")
    assert proc.returncode == 70 and "internal error: RuntimeError: boom" in proc.stderr
    assert "Traceback" not in proc.stderr
