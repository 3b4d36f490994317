"""CLI convention tests: every run goes through components.cli:main in this process
(tests/support/in_process.py), at a fixed terminal width unless a test sets another."""

from __future__ import annotations

import json

import pytest

from tests.support.in_process import run_in_process


@pytest.fixture
def tierscale(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("TIERSCALE_DEBUG", raising=False)
    return run_in_process


def one_json_document(proc) -> dict:
    """stdout of a --json run: exactly one JSON object and nothing else."""
    doc = json.loads(proc.stdout)  # raises on any extra text before or after the document
    assert isinstance(doc, dict), f"a --json run prints an object, not {type(doc).__name__}"
    return doc


def command_paths():
    """Every leaf command of the typer app, as the argv that reaches it (("migrate", "plan"), ...)."""
    import typer

    from components.cli import app

    root = typer.main.get_command(app)
    found = []

    def walk(cmd, path):
        if hasattr(cmd, "list_commands"):
            for name in cmd.list_commands(None):
                walk(cmd.get_command(None, name), path + (name,))
        else:
            found.append((path, cmd))

    walk(root, ())
    return found
