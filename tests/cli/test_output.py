"""Output at 80 columns wraps instead of cutting (no ellipsis), a command to copy is never split,
and `render` prints a summary (GPUs, cost, endpoints, failover) with a next step."""

from __future__ import annotations

import shlex
from types import SimpleNamespace

import pytest

from tests.cli.conftest import one_json_document

LONG = "/var/lib/tierscale/build/a-rather-long-stack-name/compose/prometheus/prometheus.yml"


def _next_line(stdout: str) -> str:
    lines = [line for line in stdout.splitlines() if line.startswith("next: ")]
    assert len(lines) == 1, stdout
    return lines[0][len("next: "):]


def test_validate_table_folds_long_details_at_80_columns(tierscale, monkeypatch, tmp_path):
    import components.validate as validate
    from components.validate import Outcome

    detail = f"SUCCESS: {LONG} is valid prometheus config file syntax " + "and more words " * 30 + "THE-END"
    monkeypatch.setattr(validate, "validate_rendered",
                        lambda stack, out: [Outcome("promtool check config (a long validator name)", True, detail)])
    proc = tierscale("validate", "--stack", "small-dev", "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert "…" not in proc.stdout, proc.stdout
    assert all(len(line) <= 80 for line in proc.stdout.splitlines())
    cells = "".join(line.split("│")[3] for line in proc.stdout.splitlines() if line.count("│") == 4)
    assert LONG in cells.replace(" ", "") and "THE-END" in cells  # folded, never cut


def test_inventory_next_command_is_one_line(tierscale, monkeypatch, tmp_path):
    monkeypatch.setenv("COLUMNS", "40")
    proc = tierscale("inventory", "--stack", "baremetal-lab", "--out", str(tmp_path / "ansible"))
    assert proc.returncode == 0, proc.stderr
    words = shlex.split(_next_line(proc.stdout))
    assert words[-1] == "verify.yml" and words.count("ansible-playbook") == 2
    assert str((tmp_path / "ansible" / "inventory.yml").resolve()) in words  # absolute: the command cds first


def test_shared_tables_fold_headers_and_cells_at_80_columns():
    from rich.console import Console

    from components.cli_options import table

    t = table("t", "$/hour on-demand", "GPU type", "detail")
    t.add_row("12.34", "h200-141gb-sxm", LONG)
    console = Console(width=80, record=True, file=open("/dev/null", "w"))
    console.print(t)
    text = console.export_text()
    assert "…" not in text and LONG in "".join(text.replace("│", "").split())


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    from tests.support.in_process import run_in_process

    out = tmp_path_factory.mktemp("render") / "small-dev"
    mp = pytest.MonkeyPatch()
    mp.setenv("COLUMNS", "80")
    try:
        text = run_in_process("render", "--stack", "small-dev", "--out", str(out))
        verbose = run_in_process("render", "--stack", "small-dev", "--out", str(out), "--verbose")
        as_json = run_in_process("render", "--stack", "small-dev", "--out", str(out), "--json")
    finally:
        mp.undo()
    return SimpleNamespace(out=out, text=text, verbose=verbose, json=as_json)


def test_render_prints_a_summary_not_the_resource_list(rendered):
    proc = rendered.text
    assert proc.returncode == 0, proc.stderr
    doc = one_json_document(rendered.json)
    assert f"{doc['resources']} resources" in proc.stdout
    assert "GPUs: 4 x l40s" in proc.stdout and doc["gpus"] == {"l40s": 4}
    assert f"${doc['cost']['per_hour_usd']:,.2f}/hour" in proc.stdout and doc["cost"]["per_year_usd"] > 0
    assert "endpoints: http://localhost:8000/v1" in proc.stdout
    assert not any(kind in proc.stdout for kind in doc["resources_by_type"])  # details only with --verbose
    assert all(kind in rendered.verbose.stdout for kind in doc["resources_by_type"])
    assert "…" not in proc.stdout + rendered.verbose.stdout


def test_render_cost_is_the_planners_from_plan_json(rendered):
    import json

    doc = one_json_document(rendered.json)
    plans = json.loads((rendered.out / "plan.json").read_text())
    assert doc["cost"]["per_hour_usd"] == round(sum(p["plan"]["cost_per_hour_usd"] for p in plans.values()), 2)


def test_render_ends_with_the_next_step(rendered):
    words = shlex.split(_next_line(rendered.text.stdout))
    assert words == ["tierscale", "validate", "--stack", "small-dev", "--out", str(rendered.out)]
    assert one_json_document(rendered.json)["next"] == words


def test_render_summary_states_the_failover_time_of_a_large_stack():
    from components.cli_summary import text_lines

    doc = {"stack": "g", "tier": "large", "resources": 300, "files": 200, "out_dir": "build/g", "gpus": {"h100-80gb": 96},
           "gpus_at_max_replicas": {"h100-80gb": 96}, "cost": None, "endpoints": ["https://llm.example.com/v1"],
           "hosts": [], "failover": {"total_s": 40, "health_check_s": 30, "dns_ttl_s": 10, "rto_s": 60,
                                     "meets_rto": True, "via": "route53"}}
    assert "failover: 40 s = detection 30 s + DNS TTL 10 s via route53 (meets the RTO of 60 s)" in text_lines(doc)


def test_failover_comes_from_the_large_stack_output():
    from components.cli_summary import _failover

    result = SimpleNamespace(outputs={"large": {"failover": {"healthCheckS": 10, "dnsTtlS": 0, "totalS": 10, "rtoS": 30,
                                                             "meetsRto": True, "via": "globalAccelerator"}}})
    assert _failover(result)["total_s"] == 10 and _failover(result)["via"] == "globalAccelerator"
    assert _failover(SimpleNamespace(outputs={"tier": "small"})) is None


def test_validate_that_passes_ends_with_pulumi_up(tierscale, monkeypatch, tmp_path):
    import components.validate as validate
    from components.validate import Outcome

    monkeypatch.setattr(validate, "validate_rendered", lambda stack, out: [Outcome("x", True, "ok")])
    proc = tierscale("validate", "--stack", "small-dev", "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert shlex.split(_next_line(proc.stdout)) == ["pulumi", "up", "--stack", "small-dev"]
    monkeypatch.setattr(validate, "validate_rendered", lambda stack, out: [Outcome("x", False, "bad")])
    proc = tierscale("validate", "--stack", "small-dev", "--out", str(tmp_path / "out"))
    assert proc.returncode == 1 and "next:" not in proc.stdout  # nothing to deploy after a failure
