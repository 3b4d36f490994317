"""Which stack pairs are a migration at all (components/migration/pair.py): no-ops, collisions,
and what clients would lose (model names, context, capacity) — each refused naming the key and
both values, in-process on inline stacks; the CLI's exit codes on the example stacks."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from components.cli import app
from components.migration.pair import check_pair
from components.spec import load_spec
from tests.support.stacks import example_stack

SMALL = {
    "tier": "small",
    "target": {"kind": "docker-host", "host": "gpu-1.example.com", "deployDir": "/opt/tierscale/a"},
    "gpu": {"type": "l40s", "perNode": 4},
    "models": [{"id": "meta-llama/Llama-3.1-8B-Instruct", "name": "llama-8b", "replicas": 2, "maxModelLen": 16384}],
    "security": {"apiAuth": False},
}
MEDIUM = {
    "tier": "medium",
    "target": {"kind": "kubernetes", "context": "prod-gpu", "namespace": "inference", "gpuNodes": 4},
    "gpu": {"type": "h100-80gb", "perNode": 8},
    "models": [{"id": "meta-llama/Llama-3.1-8B-Instruct", "name": "llama-8b", "maxModelLen": 16384,
                "autoscaling": {"minReplicas": 2, "maxReplicas": 4}}],
    "security": {"apiAuth": False},
}


def _stack(base: dict, **changes):
    config = {**base, **changes}
    return load_spec(config, require_secrets=False)


def _model(base: dict, **changes) -> list[dict]:
    return [{**base["models"][0], **changes}]


def _errors(src, dst, **kw) -> list[str]:
    return [str(f.problem()) for f in check_pair("a", src, "b", dst, **kw).errors]


def test_the_same_stack_is_nothing_to_migrate():
    s = example_stack("small-dev")
    errors = [str(f.problem()) for f in check_pair("small-dev", s, "small-dev", s).errors]
    assert errors == ["--to: nothing to migrate: 'small-dev' is the source stack (--from 'small-dev'); to change a "
                      "stack in place, edit its file and `pulumi up --stack small-dev`"]


def test_an_identical_destination_is_nothing_to_migrate():
    # Only the SLO differs: that is a `pulumi up` of the source, not a migration.
    errors = _errors(_stack(SMALL), _stack(SMALL, slo={"ttftP99Ms": 800}))
    assert len(errors) == 1 and errors[0].startswith("--to: nothing to migrate: b has the same tier (small)")


def test_a_new_host_is_a_migration():
    dst = _stack(SMALL, target={**SMALL["target"], "host": "gpu-2.example.com"})
    assert check_pair("a", _stack(SMALL), "b", dst).errors == []


def test_two_stacks_in_one_namespace_collide():
    dst = _stack(MEDIUM, models=_model(MEDIUM, quantization="fp8"))
    errors = _errors(_stack(MEDIUM), dst)
    assert len(errors) == 1 and errors[0].startswith("target.namespace: b deploys to namespace 'inference' on kube "
                                                     "context prod-gpu")
    # Another namespace, or an in-place upgrade (Argo Rollouts, rolling), is fine.
    other = _stack(MEDIUM, models=_model(MEDIUM, quantization="fp8"), target={**MEDIUM["target"], "namespace": "next"})
    assert _errors(_stack(MEDIUM), other) == []
    assert _errors(_stack(MEDIUM), dst, in_place=True) == []


def test_two_stacks_on_one_host_port_collide():
    dst = _stack(SMALL, target={**SMALL["target"], "deployDir": "/opt/tierscale/b"}, models=_model(SMALL, replicas=1))
    errors = _errors(_stack(SMALL), dst)
    assert any(e.startswith("gateway.port: b and a need the same host ports: port 8000 on gpu-1.example.com")
               for e in errors), errors
    assert any(e.startswith("monitoring.enabled:") and "port 9090" in e for e in errors), errors
    same_dir = _stack(SMALL, models=_model(SMALL, replicas=1), gateway={"port": 8100}, monitoring={"enabled": False})
    assert any(e.startswith("target.deployDir: b and a both deploy to /opt/tierscale/a") for e in
               _errors(_stack(SMALL, monitoring={"enabled": False}), same_dir))


def test_a_model_name_the_source_serves_must_stay_or_be_accepted():
    src = example_stack("small-dev")
    dst = example_stack("medium-prod")
    errors = _errors(src, dst)
    assert errors == ["models: a answers to model 'Qwen/Qwen2.5-14B-Instruct-AWQ' (qwen-14b); b does not (it serves: "
                      "meta-llama/Llama-3.1-70B-Instruct, meta-llama/Llama-3.1-8B-Instruct): clients that send "
                      "'Qwen/Qwen2.5-14B-Instruct-AWQ' get 404 once traffic moves (pass --accept removed-model to "
                      "migrate anyway)"]
    accepted = check_pair("a", src, "b", dst, accept=("removed-model",))
    assert accepted.errors == [] and any(w.startswith("accepted (removed-model): models:") for w in accepted.warnings)


def test_a_gateway_alias_is_a_served_name():
    src = _stack(SMALL, gateway={"kind": "litellm", "aliases": {"gpt-4o-mini": "llama-8b"}})
    dst = _stack(SMALL, target={**SMALL["target"], "host": "gpu-2.example.com"}, gateway={"kind": "litellm"})
    errors = _errors(src, dst)
    assert len(errors) == 1 and errors[0].startswith("gateway.aliases: a answers to model 'gpt-4o-mini' (llama-8b)")


def test_a_shorter_context_names_both_values():
    dst = _stack(SMALL, target={**SMALL["target"], "host": "gpu-2.example.com"}, models=_model(SMALL, maxModelLen=8192))
    errors = _errors(_stack(SMALL), dst)
    assert errors == ["models[0].maxModelLen: b serves meta-llama/Llama-3.1-8B-Instruct with maxModelLen 8192, a with "
                      "16384 (models[0].maxModelLen): requests of 8193-16384 tokens that succeed today would fail with "
                      "HTTP 400 (pass --accept context to migrate anyway)"]
    assert _errors(_stack(SMALL), dst, accept=("context",)) == []


def test_a_destination_that_cannot_carry_the_source_load_is_refused():
    src = _stack(SMALL, models=_model(SMALL, replicas=4, expectedQps=30))
    dst = _stack(SMALL, target={**SMALL["target"], "host": "gpu-2.example.com"}, models=_model(SMALL, replicas=1))
    errors = _errors(src, dst)
    assert len(errors) == 1 and errors[0].startswith("models[0].replicas: b can carry at most 1 x ")
    assert "a is sized for 30 req/s (models[0].expectedQps or slo.expectedQps)" in errors[0]


def _cli(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.mark.parametrize("args, expect", [
    (("--from", "small-dev", "--to", "small-dev"), "--to: nothing to migrate: 'small-dev' is the source stack"),
    (("--from", "medium-prod", "--to", "medium-eks"), "models[0].maxModelLen: medium-eks serves"),
    (("--from", "small-dev", "--to", "medium-prod", "--accept", "everything"), "--accept: 'everything' is not allowed"),
])
def test_migrate_plan_refuses_with_exit_2(args, expect):
    result = _cli("migrate", "plan", *args)
    assert result.exit_code == 2 and expect in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "two-hour" not in result.stdout and result.stdout == ""


def test_migrate_run_refuses_a_no_op_before_anything_starts(tmp_path):
    traffic = tmp_path / "traffic.yaml"
    traffic.write_text("kind: route53\n")
    result = _cli("migrate", "run", "--from", "small-dev", "--to", "small-dev", "--traffic", str(traffic),
                  "--journal", str(tmp_path / "j.jsonl"))
    assert result.exit_code == 2 and "nothing to migrate" in result.stderr, result.stderr
    assert not (tmp_path / "j.jsonl").exists()
