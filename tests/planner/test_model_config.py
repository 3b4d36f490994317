"""Any model: facts from the model's own config.json (+ safetensors index), offline."""

from __future__ import annotations

import json

import pytest

from components.facts import hf_config, model_catalog
from components.planner import PlanRequest, plan
from tests.conftest import run_cli

LLAMA_8B = {"architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "intermediate_size": 14336,
            "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
            "max_position_embeddings": 131072, "vocab_size": 128256, "tie_word_embeddings": False,
            "torch_dtype": "bfloat16"}
# A model the catalog does not know: Mixtral-8x22B-shaped MoE, published as an FP8 checkpoint.
UNKNOWN_MOE = {"architectures": ["MixtralForCausalLM"], "hidden_size": 6144, "intermediate_size": 16384,
               "num_hidden_layers": 56, "num_attention_heads": 48, "num_key_value_heads": 8,
               "max_position_embeddings": 65536, "vocab_size": 32768, "num_local_experts": 8,
               "num_experts_per_tok": 2, "torch_dtype": "bfloat16",
               "quantization_config": {"quant_method": "fp8", "activation_scheme": "dynamic"}}


def write(tmp_path, config, index=None):
    (tmp_path / "config.json").write_text(json.dumps(config))
    if index is not None:
        (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    return tmp_path


def test_a_llama_config_gives_the_catalog_figures(tmp_path):
    _, facts = hf_config.load_model(str(write(tmp_path, LLAMA_8B) / "config.json"))
    known = model_catalog()["llama-3.1-8b"]
    assert facts.params_total == pytest.approx(known.params_total, rel=0.002)
    for name in ("layers", "hidden_size", "attention_heads", "kv_heads", "head_dim", "max_context", "vocab_size"):
        assert getattr(facts, name) == getattr(known, name), name


def test_the_safetensors_index_gives_the_exact_count(tmp_path):
    _, facts = hf_config.load_model(str(write(tmp_path, LLAMA_8B, {"metadata": {"total_size": 16_060_522_496}})))
    assert facts.params_total == 8_030_261_248


def test_plans_a_model_the_catalog_does_not_know(tmp_path):
    key, facts = hf_config.load_model(str(write(tmp_path, UNKNOWN_MOE)), model_id="example/Unknown-MoE-FP8")
    assert key == "unknown-moe-fp8" and facts.experts == 8 and facts.experts_per_token == 2
    assert facts.checkpoint_dtype("example/Unknown-MoE-FP8") == "fp8"
    assert 130e9 < facts.params_total < 150e9 and 35e9 < facts.params_active < 45e9
    p = plan(PlanRequest(model_key=key, model=facts, gpu_key="h100-80gb", max_model_len=8192, qps=5))
    assert p.fits and p.meets_slo and p.quantization == "fp8" and p.tensor_parallel >= 2


def test_cli_plans_from_a_local_config_offline(tmp_path):
    write(tmp_path, UNKNOWN_MOE)
    proc = run_cli("plan", "--model-config", str(tmp_path), "--model", "example/Unknown-MoE-FP8",
                   "--gpu", "h100-80gb", "--qps", "5", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["model"] == "unknown-moe-fp8" and data["quantization"] == "fp8"


def test_bad_config_exits_2_naming_the_option(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    proc = run_cli("plan", "--model-config", str(tmp_path / "config.json"))
    assert proc.returncode == 2 and "--model-config" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("plan", "--model-config", str(tmp_path / "missing.json"))
    assert proc.returncode == 2 and "--model-config" in proc.stderr
