"""`--json` means one thing everywhere: a flag (no value) on every command that prints one JSON object
on stdout and nothing else there (docs/reference/cli-conventions.md)."""

from __future__ import annotations

import pytest
import yaml

from tests.cli.conftest import command_paths, one_json_document

# Commands that do not follow the convention yet (strict xfails: an entry must go once its command is
# fixed). Empty: every command has the --json flag (plan/bench/migrate run/up/down: test_json_commands.py).
PENDING: dict[tuple[str, ...], str] = {}


def _json_params():
    for path, cmd in command_paths():
        marks = [pytest.mark.xfail(strict=True, reason=PENDING[path])] if path in PENDING else []
        yield pytest.param(path, cmd, id=" ".join(path), marks=marks)


@pytest.mark.parametrize("path,cmd", list(_json_params()))
def test_every_command_has_a_json_flag(path, cmd):
    options = {opt: p for p in cmd.params for opt in getattr(p, "opts", [])}
    assert "--json" in options, f"tierscale {' '.join(path)} has no --json"
    assert options["--json"].is_flag, f"tierscale {' '.join(path)} --json takes a value; it must be a flag"


def test_migrate_check_json(tierscale):
    proc = tierscale("migrate", "check", "--stack", "small-dev", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = one_json_document(proc)
    assert doc["stack"] == "small-dev" and doc["tier"] == "small" and doc["due"] is False
    assert doc["next_tier"] is None and doc["reasons"] and isinstance(doc["qps"], (int, float))


def test_migrate_check_json_when_a_move_is_due_exits_1_with_the_document(tierscale, tmp_path):
    config = {"config": {
        "tierscale:tier": "small", "tierscale:target": {"kind": "docker-host"},
        "tierscale:gpu": {"type": "h100-80gb", "perNode": 8},
        "tierscale:models": [{"id": "llama-3.1-8b", "name": "llama-8b", "replicas": 8, "expectedQps": 900}],
        "tierscale:security": {"apiAuth": False},
    }}
    (tmp_path / "Pulumi.busy.yaml").write_text(yaml.safe_dump(config))
    proc = tierscale("migrate", "check", "--stack", "busy", "--stacks-dir", str(tmp_path), "--json")
    assert proc.returncode == 1, proc.stderr
    doc = one_json_document(proc)
    assert doc["due"] is True and doc["next_tier"] == "medium"


def test_validate_json_reports_each_validator(tierscale, monkeypatch, tmp_path):
    import components.validate as validate
    from components.validate import Outcome

    outcomes = [Outcome("compose-spec schema", True, "compose.yaml valid"),
                Outcome("nginx -t", False, "nginx: [emerg] unknown directive \"foo\" in /x/nginx.conf:12")]
    monkeypatch.setattr(validate, "validate_rendered", lambda stack, out: outcomes)
    proc = tierscale("validate", "--stack", "small-dev", "--out", str(tmp_path / "out"), "--json")
    assert proc.returncode == 1, proc.stderr  # a validator failed: exit 1, the document still printed
    doc = one_json_document(proc)
    assert doc["ok"] is False and doc["failed"] == ["nginx -t"]
    assert doc["validators"] == [{"name": o.name, "ok": o.ok, "message": o.detail} for o in outcomes]
    assert isinstance(doc["warnings"], list) and isinstance(doc["notes"], list) and doc["strict"] is False


def test_validate_json_strict_counts_warnings(tierscale, monkeypatch, tmp_path):
    import components.validate as validate
    from components.validate import Outcome

    monkeypatch.setattr(validate, "validate_rendered", lambda stack, out: [Outcome("x", True, "ok")])
    # small-dev with a TTFT objective below what a 14B model on one L40S prefills in: a warning.
    from components import paths

    stack = tmp_path / "Pulumi.tight.yaml"
    stack.write_text((paths.STACKS_DIR / "Pulumi.small-dev.yaml").read_text().replace("ttftP99Ms: 600", "ttftP99Ms: 300"))
    proc = tierscale("validate", "--strict", "--stack", str(stack), "--out", str(tmp_path / "out"), "--json")
    doc = one_json_document(proc)
    # --strict fails on the warning.
    assert doc["warnings"] and doc["ok"] is False and proc.returncode == 1


def test_inventory_json(tierscale, tmp_path):
    proc = tierscale("inventory", "--stack", "baremetal-lab", "--out", str(tmp_path / "inv"), "--json")
    assert proc.returncode == 0, proc.stderr
    doc = one_json_document(proc)
    assert str(tmp_path / "inv" / "inventory.yml") in doc["files"]
    assert doc["next"].endswith("verify.yml") and "wrote" not in proc.stdout


def test_schema_json(tierscale):
    proc = tierscale("schema", "--check", "--json")
    doc = one_json_document(proc)
    assert doc["check"] is True and doc["written"] == [] and isinstance(doc["stale"], list)
    assert proc.returncode == (0 if doc["ok"] else 1) and doc["ok"] == (not doc["stale"])


def test_invalid_input_under_json_leaves_stdout_empty(tierscale):
    proc = tierscale("migrate", "check", "--stack", "small-dve", "--json")
    assert proc.returncode == 2 and proc.stdout == "" and "--stack" in proc.stderr
