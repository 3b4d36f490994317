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

# vLLM's --quantization value per spec quantization. bf16/fp16 are dtypes, not quantization
# methods; fp8 and mxfp4 checkpoints are detected from their config, but naming fp8 also
# lets vLLM quantize a 16-bit checkpoint on the fly.
_QUANTIZATION_FLAG = {"fp8": "fp8", "awq": "awq_marlin", "gptq": "gptq_marlin"}
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
    if model.quantization in _QUANTIZATION_FLAG:
        args += ["--quantization", _QUANTIZATION_FLAG[model.quantization]]
    # int8 (W8A8 compressed-tensors) and mxfp4 checkpoints are detected from their config.
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
