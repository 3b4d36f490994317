"""What `vllm serve` is told about weights follows vLLM 0.32.0's rules (vllm_args.py cites them):
no --quantization for a pre-quantized checkpoint (a mismatch raises), fp8 named only for the
online conversion of 16-bit weights, --allow-deprecated-quantization for fbgemm_fp8."""

from __future__ import annotations

from components.serving.vllm_args import vllm_serve_args
from components.spec import load_spec


def args_for(model: dict, gpu=("h100-80gb", 8)) -> list[str]:
    stack = load_spec({
        "tier": "small", "target": {"kind": "docker-host"}, "gpu": {"type": gpu[0], "perNode": gpu[1]},
        "models": [{"replicas": 1, **model}], "security": {"apiAuth": False},
        "slo": {"availability": 99.0, "expectedQps": 0.1},
    }, require_secrets=False)
    return vllm_serve_args(stack.models[0])


def flag(args: list[str], name: str):
    return args[args.index(name) + 1] if name in args else None


def test_awq_checkpoint_gets_no_quantization_or_dtype_flag():
    args = args_for({"id": "Qwen/Qwen2.5-7B-Instruct-AWQ"})
    assert "--quantization" not in args and "--dtype" not in args
    assert args[0] == "Qwen/Qwen2.5-7B-Instruct-AWQ"


def test_block_fp8_checkpoint_is_detected_by_vllm():
    args = args_for({"id": "Qwen/Qwen3-8B-FP8"})
    assert "--quantization" not in args and "--allow-deprecated-quantization" not in args


def test_fbgemm_fp8_checkpoint_needs_the_deprecated_flag():
    args = args_for({"id": "meta-llama/Llama-3.1-405B-Instruct-FP8", "tensorParallel": 8, "maxModelLen": 8192})
    assert "--allow-deprecated-quantization" in args and "--quantization" not in args


def test_online_fp8_from_bf16_names_the_method():
    args = args_for({"id": "meta-llama/Llama-3.1-8B-Instruct", "quantization": "fp8"})
    assert flag(args, "--quantization") == "fp8" and "--dtype" not in args


def test_bf16_checkpoint_sets_the_dtype():
    args = args_for({"id": "meta-llama/Llama-3.1-8B-Instruct"})
    assert flag(args, "--dtype") == "bfloat16" and "--quantization" not in args


def test_mxfp4_checkpoint_is_detected():
    args = args_for({"id": "openai/gpt-oss-20b"})
    assert "--quantization" not in args and "--dtype" not in args
