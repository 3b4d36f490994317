"""Capacity/SLO warnings (components/spec/capacity.py): named keys, printed by render, fatal
only under `validate --strict`; the example stacks carry none."""

from __future__ import annotations

import pytest
import yaml

from components.spec import load_spec
from components.spec.stack_file import load_stack
from tests.conftest import run_cli
from tests.support.stacks import EXAMPLE_STACKS



def small(**overrides):
    config = {
        "tier": "small",
        "target": {"kind": "docker-host"},
        "gpu": {"type": "l40s", "perNode": 4},
        "models": [{"id": "meta-llama/Llama-3.1-8B-Instruct", "name": "llama-8b", "replicas": 1, "tensorParallel": 1}],
        "slo": {"expectedQps": 2, "availability": 99.0},
        "security": {"apiAuth": False},
    }
    config.update(overrides)
    return load_spec(config, require_secrets=False)


def keys(stack) -> list[str]:
    return [w.path for w in stack.warnings]


@pytest.mark.parametrize("name", EXAMPLE_STACKS)
def test_example_stacks_have_no_warnings(name):
    assert load_stack(name).warnings == []


def test_a_quiet_stack_has_no_warnings():
    assert small().warnings == []


def test_too_few_replicas_for_the_load_names_replicas():
    stack = small(slo={"expectedQps": 500, "availability": 99.0})
    (warning,) = [w for w in stack.warnings if w.path == "models[0].replicas"]
    assert "it expects 500 req/s (slo.expectedQps): needs >=" in warning.message
    per_model = small(models=[{"id": "llama-3.1-8b", "name": "llama-8b", "replicas": 1, "expectedQps": 400}])
    assert any("(models[0].expectedQps)" in w.message for w in per_model.warnings)


def test_one_replica_cannot_meet_high_availability():
    stack = small(models=[{"id": "llama-3.1-8b", "name": "llama-8b", "replicas": 1}],
                  slo={"expectedQps": 1, "availability": 99.9})
    assert any(w.path == "models[0].replicas" and "cannot meet slo.availability 99.9%" in w.message for w in stack.warnings)


def test_slo_below_the_physical_bound_names_the_slo_key():
    stack = small(slo={"expectedQps": 1, "availability": 99.0, "tpotP99Ms": 1, "ttftP99Ms": 1})
    assert {"slo.tpotP99Ms", "slo.ttftP99Ms"} <= set(keys(stack))


def test_autoscaling_maxima_beyond_the_cluster():
    stack = load_spec({
        "tier": "medium",
        "target": {"kind": "kubernetes", "gpuNodes": 1},
        "gpu": {"type": "h100-80gb", "perNode": 8},
        "models": [{"id": "llama-3.1-8b", "name": "llama-8b", "expectedQps": 1,
                    "autoscaling": {"minReplicas": 2, "maxReplicas": 12}}],
        "slo": {"availability": 99.0},
        "security": {"apiAuth": False},
    }, require_secrets=False)
    (warning,) = [w for w in stack.warnings if w.path == "models[0].autoscaling.maxReplicas"]
    assert "need 12 GPUs (llama-8b 12x1) but the cluster has 8" in warning.message


def test_costly_configuration_is_compared_with_the_optimum():
    stack = small(models=[{"id": "llama-3.1-8b", "name": "llama-8b", "replicas": 1, "tensorParallel": 4,
                           "expectedQps": 1}])
    assert any(w.path == "models[0]" and "the optimum" in w.message for w in stack.warnings)


def test_render_prints_warnings_and_validate_strict_fails(tmp_path):
    config = {"config": {
        "tierscale:tier": "small",
        "tierscale:target": {"kind": "docker-host"},
        "tierscale:gpu": {"type": "l40s", "perNode": 4},
        "tierscale:models": [{"id": "llama-3.1-8b", "name": "llama-8b", "replicas": 1}],
        "tierscale:slo": {"expectedQps": 100, "availability": 99.0},
        "tierscale:security": {"apiAuth": False},
        "tierscale:monitoring": {"enabled": False},
    }}
    (tmp_path / "Pulumi.case.yaml").write_text(yaml.safe_dump(config))
    args = ("--stack", "case", "--stacks-dir", str(tmp_path), "--out", str(tmp_path / "out"))
    plain = run_cli("validate", *args)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "warning: models[0].replicas:" in plain.stderr
    strict = run_cli("validate", "--strict", *args)
    assert strict.returncode == 1 and "--strict: " in strict.stderr
