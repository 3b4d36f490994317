"""The one builder of `vllm serve` arguments. Compose, Kubernetes and the systemd unit all
call `vllm_serve_args`, so a flag is added or changed in exactly one place.

Secrets are never arguments: the API key reaches vLLM as the VLLM_API_KEY environment variable
and the Hugging Face token as HF_TOKEN, each from the tier's secret store.
"""

from __future__ import annotations

import json

from components.serving import probes
from components.spec import ResolvedModel

API_KEY_ENV = "VLLM_API_KEY"
HF_TOKEN_ENV = "HF_TOKEN"
VLLM_PORT = 8000

# How vLLM 0.18.0 is told what to load (facts from its source, vllm-project/vllm@v0.18.0):
# - A pre-quantized checkpoint carries its method in config.json; vLLM detects it and picks the
#   fastest kernel (awq -> awq_marlin, gptq -> gptq_marlin from compute capability 7.5). Naming
#   any other --quantization raises "Quantization method specified in the model config ... does
#   not match" (vllm/config/model.py:946-955), so no flag is passed for them.
# - Deprecated methods (fbgemm_fp8, ptpc_fp8, experts_int8, fp_quant, petit_nvfp4, tpu_int8)
#   refuse to load without --allow-deprecated-quantization (model.py:964-977,
#   vllm/model_executor/layers/quantization/__init__.py:38-45).
# - From a 16-bit checkpoint, --quantization fp8 quantizes online (fp8.py:186-190); bf16/fp16 are
#   dtypes (--dtype), not quantization methods.
DEPRECATED_QUANTIZATION_METHODS = ("fbgemm_fp8", "ptpc_fp8", "experts_int8", "fp_quant", "petit_nvfp4", "tpu_int8")
_DTYPE_FLAG = {"fp16": "float16", "bf16": "bfloat16"}


def vllm_serve_args(model: ResolvedModel, port: int = VLLM_PORT) -> list[str]:
    """Arguments after `vllm serve` (the model is the first, positional)."""
    spec = model.spec
    args = [
        model.hf_repo,
        "--host", "0.0.0.0",
        "--port", str(port),
        "--served-model-name", model.served_model_name,
        "--tensor-parallel-size", str(model.tensor_parallel),
        "--pipeline-parallel-size", str(model.pipeline_parallel),
        "--max-model-len", str(model.max_model_len),
        "--max-num-seqs", str(spec.max_num_seqs),
        "--gpu-memory-utilization", f"{spec.gpu_memory_utilization:g}",
        "--shutdown-timeout", str(probes.VLLM_SHUTDOWN_TIMEOUT_S),
    ]
    if spec.revision:
        args += ["--revision", spec.revision]
    if model.quantization in _DTYPE_FLAG:
        args += ["--dtype", _DTYPE_FLAG[model.quantization]]
    elif model.quantization != model.checkpoint_dtype:
        args += ["--quantization", model.quantization]  # online conversion of 16-bit weights (fp8)
    if model.checkpoint_quant_method in DEPRECATED_QUANTIZATION_METHODS:
        args.append("--allow-deprecated-quantization")
    if spec.kv_cache_dtype != "auto":
        args += ["--kv-cache-dtype", spec.kv_cache_dtype]
    args.append("--enable-prefix-caching" if spec.enable_prefix_caching else "--no-enable-prefix-caching")
    if spec.speculative_decoding is not None:
        sd = spec.speculative_decoding
        config = {"method": sd.method, "num_speculative_tokens": sd.num_speculative_tokens}
        if sd.draft_model:
            config["model"] = sd.draft_model
        args += ["--speculative-config", json.dumps(config, separators=(",", ":"))]
    return args
