"""Pulumi stack names that are not DNS labels (`Prod.EU`, `Team_A`) still render objects that
Compose and Kubernetes accept: every tier names them from components.stack_names.stack_slug."""

from __future__ import annotations

import shutil

import yaml

from components import paths
from components.stack_names import stack_slug
from components.validate import registry
from tests.conftest import run_cli


def test_slug_examples():
    assert stack_slug("Prod") == "prod"
    assert stack_slug("prod.eu") == "prod-eu"
    assert stack_slug("Team_A.Prod") == "team-a-prod"
    assert stack_slug("...") == "stack"
    assert len(stack_slug("x" * 90)) <= 40


def test_small_stack_named_prod_eu_renders_a_valid_compose_project(tmp_path):
    shutil.copy(paths.STACKS_DIR / "Pulumi.small-dev.yaml", tmp_path / "Pulumi.Prod.EU.yaml")
    proc = run_cli("render", "--stack", "Prod.EU", "--stacks-dir", str(tmp_path), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    compose = yaml.safe_load((tmp_path / "out" / "compose" / "compose.yaml").read_text())
    assert compose["name"] == "tierscale-prod-eu"
    outcome = registry.compose_config(tmp_path / "out")
    assert outcome.ok, outcome.detail


def test_medium_gitops_stack_named_team_a_renders_dns_names(tmp_path):
    stack = yaml.safe_load((paths.STACKS_DIR / "Pulumi.medium-prod.yaml").read_text())
    stack["config"]["tierscale:platform"] = {"gitops": {"repoUrl": "https://git.example.com/infra.git"}}
    (tmp_path / "Pulumi.Team_A.yaml").write_text(yaml.safe_dump(stack))
    proc = run_cli("render", "--stack", "Team_A", "--stacks-dir", str(tmp_path), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    names = [yaml.safe_load(f.read_text())["metadata"]["name"] for f in (tmp_path / "out").rglob("*.yaml")
             if f.parent.name in ("kubernetes", "gitops")]
    assert "tierscale-team-a" in names
    outcome = registry.kubernetes_builtin(tmp_path / "out")
    assert outcome.ok, outcome.detail
