"""The resource graph each example stack registers under Pulumi's mock runtime."""

from __future__ import annotations

from collections import Counter

import pytest
import yaml

from components.render import render_stack
from tests.conftest import run_cli
from tests.support.stacks import EXAMPLE_STACKS


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("render")
    return {name: render_stack(name, out / name) for name in ("small-dev", "medium-prod", "medium-eks", "baremetal-lab")}


def by_type(result, typ):
    return [r for r in result.resources if r.type == typ]


def test_every_child_is_parented_to_a_tierscale_component(rendered):
    for name, result in rendered.items():
        components = [r for r in result.resources if r.type.startswith("tierscale:")]
        root = next(r for r in components if r.name == name)
        urns = {r.urn for r in components}
        for r in result.resources:
            if r is not root:
                assert r.parent in urns, f"{name}: {r.type} {r.name} is not parented to a tierscale component"
        assert "pulumi:pulumi:Stack" in root.parent


def test_baremetal_lab_graph(rendered):
    result = rendered["baremetal-lab"]
    counts = Counter(r.type for r in result.resources)
    # inventory.yml + group_vars written, then site.yml, then verify.yml
    assert counts == {"tierscale:baremetal:BaremetalNodes": 1, "command:local:Command": 5}
    site = [r for r in result.resources if r.name == "baremetal-lab-site"][0]
    verify = [r for r in result.resources if r.name == "baremetal-lab-verify"][0]
    assert "ansible-playbook" in site.inputs["create"] and site.inputs["create"].endswith(" site.yml")
    assert verify.inputs["create"].endswith(" verify.yml") and site.urn in verify.dependencies
    # The vault lives outside build/ and is passed to every playbook run when it exists.
    assert 'VAULT="$HOME/.config/tierscale/baremetal-lab/vault.yml"' in site.inputs["create"]
    assert '-e @$VAULT' in site.inputs["create"] and '-e @$VAULT' in verify.inputs["create"]
    inventory = yaml.safe_load((result.out_dir / "ansible/inventory.yml").read_text())
    gpu_nodes = inventory["all"]["children"]["gpu_nodes"]["hosts"]
    assert set(gpu_nodes) == {"gpu-h100-01", "gpu-h100-02", "gpu-l40s-01"}
    assert set(inventory["all"]["children"]["nvswitch_nodes"]["hosts"]) == {"gpu-h100-01", "gpu-h100-02"}


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_validate_strict_runs_every_validator_and_passes(stack, tmp_path):
    proc = run_cli("validate", "--strict", "--stack", stack, "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FAIL" not in proc.stdout
    assert "pass" in proc.stdout


def test_generated_project_config_and_reference_are_current():
    proc = run_cli("schema", "--check")
    assert proc.returncode == 0, proc.stderr
