"""`tierscale plan` through the real CLI: new options, and bad input exits 2 naming the option."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli

BASE = ("plan", "--model", "llama-3.1-8b", "--gpu", "h100-80gb")


@pytest.mark.parametrize("args,option", [
    (("--qps", "inf"), "--qps"),
    (("--qps", "nan"), "--qps"),
    (("--qps", "-1"), "--qps"),
    (("--qps", "20000000"), "--qps"),
    (("--price-per-hour", "-5"), "--price-per-hour"),
    (("--price-per-hour", "0"), "--price-per-hour"),
    (("--price-per-hour", "inf"), "--price-per-hour"),
    (("--ttft-ms", "nan"), "--ttft-ms"),
    (("--tpot-ms", "0"), "--tpot-ms"),
    (("--availability", "100.5"), "--availability"),
    (("--gpu-memory-utilization", "1.5"), "--gpu-memory-utilization"),
    (("--quantization", "awq"), "--quantization"),
    (("--quantization", "int8"), "--quantization"),
    (("--quantization", "mxfp4"), "--quantization"),
    (("--quantization", "q4"), "--quantization"),
    (("--tensor-parallel", "3"), "--tensor-parallel"),
    (("--pipeline-parallel", "2"), "--pipeline-parallel"),
    (("--max-num-seqs", "0"), "--max-num-seqs"),
    (("--max-model-len", "600"), "--max-model-len"),
    (("--top", "-1"), "--top"),
])
def test_bad_input_exits_2_naming_the_option(args, option):
    proc = run_cli(*BASE, *args)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert option in proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr


def test_fp8_on_ampere_plans_weight_only_and_says_so():
    proc = run_cli("plan", "--model", "llama-3.1-70b", "--gpu", "a100-80gb", "--quantization", "fp8", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["quantization"] == "fp8" and any("weight-only" in n for n in data["notes"])


def test_awq_without_a_checkpoint_is_rejected_naming_the_option():
    proc = run_cli("plan", "--model", "llama-3.1-70b", "--gpu", "a100-80gb", "--quantization", "awq")
    assert proc.returncode == 2 and "--quantization" in proc.stderr and "Traceback" not in proc.stderr


def test_custom_json_errors_name_the_option():
    for text in ("{not json", "[1]", '{"layers": 2}'):
        proc = run_cli("plan", "--gpu", "h100-80gb", "--custom-json", text)
        assert proc.returncode == 2 and "--custom-json" in proc.stderr, proc.stderr


def test_gpu_any_with_top_alternatives_json():
    proc = run_cli("plan", "--model", "llama-3.1-70b", "--gpu", "any", "--qps", "800", "--top", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["meets_slo"] and len(data["alternatives"]) == 3
    assert all(a["why_not_chosen"] for a in data["alternatives"])
    assert data["price_as_of"] and data["cost_per_hour_usd"]


def test_tensor_parallel_override_evaluates_one_configuration():
    proc = run_cli("plan", "--model", "llama-3.1-70b", "--gpu", "h100-80gb", "--quantization", "bf16",
                   "--qps", "800", "--tensor-parallel", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["tensor_parallel"] == 2 and data["alternatives"] == []


def test_custom_model_inline():
    model = {"paramsTotal": 8.03e9, "layers": 32, "hiddenSize": 4096, "attentionHeads": 32, "kvHeads": 8,
             "headDim": 128, "maxContext": 131072, "vocabSize": 128256}
    proc = run_cli("plan", "--gpu", "h100-80gb", "--custom-json", json.dumps(model), "--qps", "100", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["model"] == "custom"


def test_table_output_shows_price_date_tier_reason_and_alternatives():
    proc = run_cli("plan", "--model", "llama-3.1-70b", "--gpu", "h100-80gb", "--quantization", "bf16", "--qps", "800")
    assert proc.returncode == 0, proc.stderr
    assert "2025-01" in proc.stdout and "alternatives" in proc.stdout and "tier " in proc.stdout


def test_stack_comparison():
    proc = run_cli("plan", "--stack", "small-dev", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert isinstance(doc, dict) and doc["stack"] == "small-dev"  # one object, like every --json
    rows = doc["models"]
    assert rows and {"configured", "optimum", "warnings"} <= set(rows[0])


def test_unknown_stack_exits_2():
    proc = run_cli("plan", "--stack", "no-such-stack")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
