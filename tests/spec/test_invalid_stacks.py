"""Invalid stack files: each one fails with exit code 2, names the key, prints no traceback.

Every case starts from a valid small-tier stack and breaks one thing; the real `tierscale`
command renders it, exactly as a user would run it.
"""

from __future__ import annotations

import copy

import pytest
import yaml

from tests.conftest import run_cli

BASE = {
    "tierscale:tier": "small",
    "tierscale:target": {"kind": "docker-host", "host": "localhost"},
    "tierscale:gpu": {"type": "l40s", "perNode": 4},
    "tierscale:models": [{"id": "Qwen/Qwen2.5-7B-Instruct", "replicas": 2}],
    "tierscale:security": {"apiAuth": False},
}


def model(**changes):
    def mutate(cfg):
        cfg["tierscale:models"][0].update(changes)
    return mutate


def key(k, value):
    def mutate(cfg):
        cfg[k] = value
    return mutate


def drop(k):
    def mutate(cfg):
        del cfg[k]
    return mutate


# (case id, mutation, text the message must contain: the key path and what is wrong/allowed)
CASES = [
    ("unknown-top-key", key("tierscale:gatway", {"kind": "nginx"}), "gatway: unknown key (did you mean 'gateway'?)"),
    ("unknown-model-key", model(quantisation="fp8"), "models[0].quantisation: unknown key (did you mean 'quantization'?)"),
    ("unknown-nested-key", key("tierscale:gateway", {"kind": "nginx", "readTimeout": 5}), "gateway.readTimeout: unknown key (did you mean 'readTimeoutS'?)"),
    ("bad-tier", key("tierscale:tier", "tiny"), "tier: 'tiny' is not allowed"),
    ("missing-tier", drop("tierscale:tier"), "tier: required key is missing"),
    ("missing-models", drop("tierscale:models"), "models: required key is missing"),
    ("empty-models", key("tierscale:models", []), "models: list should have at least 1 item"),
    ("bad-target-kind", key("tierscale:target", {"kind": "docker"}), "target.kind: 'docker' is not allowed (did you mean 'docker-host'?)"),
    ("missing-target-kind", key("tierscale:target", {"host": "localhost"}), "target.kind: required key is missing"),
    ("tier-target-mismatch", key("tierscale:tier", "medium"), "target.kind: 'docker-host' does not match tier 'medium'"),
    ("bad-gpu-type", key("tierscale:gpu", {"type": "h100", "perNode": 8}), "gpu.type: 'h100' is not allowed (did you mean 'h100-80gb'?)"),
    ("gpu-count-zero", key("tierscale:gpu", {"type": "l40s", "perNode": 0}), "gpu.perNode: input should be greater than 0"),
    ("tp-not-power-of-two", model(tensorParallel=3), "models[0].tensorParallel: 3 is not a power of two dividing 4 GPUs per node"),
    ("tp-exceeds-node", model(tensorParallel=8), "models[0].tensorParallel: 8 is not a power of two dividing 4 GPUs per node"),
    ("tp-not-dividing-heads", lambda c: (c.update({"tierscale:gpu": {"type": "l40s", "perNode": 8}}), c["tierscale:models"][0].update(tensorParallel=8, replicas=1))[0], "models[0].tensorParallel: 8 does not divide the model's 28 attention heads"),
    ("max-model-len-too-long", model(maxModelLen=65536), "models[0].maxModelLen: 65536 exceeds the model's context of 32768"),
    ("max-model-len-negative", model(maxModelLen=-5), "models[0].maxModelLen: input should be greater than 0"),
    ("bad-quantization", model(quantization="int4"), "models[0].quantization: 'int4' is not allowed"),
    ("mxfp4-on-llama", model(quantization="mxfp4"), "models[0].quantization: mxfp4 is only served"),
    ("gpu-util-too-high", model(gpuMemoryUtilization=1.5), "models[0].gpuMemoryUtilization: input should be less than or equal to 0.98"),
    ("unknown-model-id", model(id="acme/SuperModel-9B"), "models[0].id: 'acme/SuperModel-9B' is not in the model catalog"),
    ("model-does-not-fit", model(id="meta-llama/Llama-3.1-70B-Instruct", tensorParallel=1, replicas=1), "models[0].tensorParallel: llama-3.1-70b bf16 at maxModelLen 8192 does not fit tensorParallel 1 x pipelineParallel 1 on l40s: needs tensorParallel >= 4"),
    ("too-many-replicas", model(replicas=5), "models: replicas need 5 GPUs"),
    ("autoscaling-on-small", model(autoscaling={"minReplicas": 1, "maxReplicas": 2}), "models[0].autoscaling: only the medium tier autoscales"),
    ("duplicate-names", key("tierscale:models", [{"id": "qwen2.5-7b", "replicas": 1}, {"id": "qwen2.5-7b", "replicas": 1}]), "models[1].name: 'qwen25-7b' is already used"),
    ("speculative-needs-draft", model(speculativeDecoding={"method": "eagle"}), "models[0].speculativeDecoding.draftModel: required"),
    ("gateway-kind", key("tierscale:gateway", {"kind": "envoy"}), "gateway.kind: 'envoy' is not allowed"),
    ("gateway-port-range", key("tierscale:gateway", {"port": 70000}), "gateway.port: input should be less than or equal to 65535"),
    ("fallback-unknown", key("tierscale:gateway", {"kind": "litellm", "fallbackModel": "qwen"}), "gateway.fallbackModel: 'qwen' is not a model name"),
    ("tls-needs-hostname", key("tierscale:security", {"apiAuth": False, "tls": {"enabled": True}}), "security.tls.hostname: required"),
    ("plaintext-api-key", key("tierscale:apiKey", "sk-plain"), "apiKey: must be a Pulumi secret"),
    ("models-not-a-list", key("tierscale:models", "qwen"), "models: input should be a valid list"),
    ("namespace-typo", key("tierscal:tier", "small"), "tierscal:tier: unknown namespace 'tierscal' (did you mean 'tierscale'?)"),
    ("unnamespaced-key", key("tier", "small"), "tier: config keys are namespaced"),
    ("custom-model-bad-heads", model(id="acme/Custom-7B", custom={"paramsTotal": 7e9, "layers": 32, "hiddenSize": 4096, "attentionHeads": 32, "kvHeads": 6, "headDim": 128, "maxContext": 8192, "vocabSize": 32000}), "models[0].custom: attentionHeads (32) must be a multiple of kvHeads (6)"),
]


def write_stack(tmp_path, cfg) -> None:
    (tmp_path / "Pulumi.case.yaml").write_text(yaml.safe_dump({"config": cfg}, sort_keys=False))


@pytest.mark.parametrize("case_id,mutate,expected", CASES, ids=[c[0] for c in CASES])
def test_invalid_stack_is_rejected_with_key_path(tmp_path, case_id, mutate, expected):
    cfg = copy.deepcopy(BASE)
    mutate(cfg)
    write_stack(tmp_path, cfg)
    proc = run_cli("render", "--stack", "case", "--stacks-dir", str(tmp_path), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert expected in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "out").exists(), "nothing may be rendered for an invalid stack"


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
