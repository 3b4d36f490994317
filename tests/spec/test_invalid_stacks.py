"""Invalid stack files: each one fails with exit code 2, names the key, prints no traceback.

The one-thing-broken cases live in the corpus (broken_stacks.yaml, test_broken_stacks.py);
these are the file-level behaviours around them.
"""

from __future__ import annotations

import copy

import yaml

from tests.support.in_process import run_in_process as run_cli

BASE = {
    "tierscale:tier": "small",
    "tierscale:target": {"kind": "docker-host", "host": "localhost"},
    "tierscale:gpu": {"type": "l40s", "perNode": 4},
    "tierscale:models": [{"id": "Qwen/Qwen2.5-7B-Instruct", "replicas": 2}],
    "tierscale:security": {"apiAuth": False},
}


def write_stack(tmp_path, cfg) -> None:
    (tmp_path / "Pulumi.case.yaml").write_text(yaml.safe_dump({"config": cfg}, sort_keys=False))


def test_all_problems_are_reported_at_once(tmp_path):
    cfg = copy.deepcopy(BASE)
    cfg["tierscale:models"] = [
        {"id": "qwen2.5-7b", "tensorParallel": 3, "replicas": 1},
        {"id": "acme/unknown", "replicas": 1},
    ]
    cfg["tierscale:tier"] = "medium"
    write_stack(tmp_path, cfg)
    proc = run_cli("validate", "--stack", "case", "--stacks-dir", str(tmp_path), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    for expected in ("target.kind:", "models[0].tensorParallel:", "models[1].id:"):
        assert expected in proc.stderr
    assert "3 problems" in proc.stderr


def test_missing_stack_file_names_the_stacks(tmp_path):
    proc = run_cli("render", "--stack", "small-dve")
    assert proc.returncode == 2
    assert "did you mean 'small-dev'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_invalid_yaml_names_the_line(tmp_path):
    (tmp_path / "Pulumi.case.yaml").write_text("config:\n  tierscale:tier: [small\n")
    proc = run_cli("render", "--stack", "case", "--stacks-dir", str(tmp_path))
    assert proc.returncode == 2
    assert "line 3, column 1: not valid YAML" in proc.stderr
    assert "Traceback" not in proc.stderr
