"""The one builder of `vllm serve` arguments. Compose, Kubernetes and the systemd unit all
call `vllm_serve_args`, so a flag is added or changed in exactly one place.

Secrets are never arguments: the API key reaches vLLM as the VLLM_API_KEY environment variable
and the Hugging Face token as HF_TOKEN, each from the tier's secret store.
"""

from __future__ import annotations

import json

from components.serving import kv_cache, probes
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
    args += kv_cache.vllm_kv_args(spec.kv_cache)  # L2-L4 KV tiers (components/serving/kv_cache.py)
    if spec.speculative_decoding is not None:
        sd = spec.speculative_decoding
        config = {"method": sd.method, "num_speculative_tokens": sd.num_speculative_tokens}
        if sd.draft_model:
            config["model"] = sd.draft_model
        args += ["--speculative-config", json.dumps(config, separators=(",", ":"))]
    return args


# --- one replica across several nodes ------------------------------------------------------
#
# vLLM 0.18.0 has a native multi-node launcher (no Ray needed; Ray is not in the
# vllm/vllm-openai image per its wheel metadata). Every node of one replica runs the same
# `vllm serve` command with the same model and parallel sizes, plus (vllm-project/vllm@v0.18.0):
#   leader (node rank 0): --nnodes N --node-rank 0 --master-addr <leader address>
#   worker i (1..N-1):    --nnodes N --node-rank i --master-addr <leader address> --headless
# (docs/serving/parallelism_scaling.md:139-159; the flags: vllm/engine/arg_utils.py:816-819;
# --headless, "run in headless mode", no API server: vllm/entrypoints/openai/cli_args.py:331-336).
# nnodes > 1 forces the `mp` executor backend (vllm/config/parallel.py:768-769, 810-818), so no
# --distributed-executor-backend is passed. The leader listens for the workers on master_port
# (default 29501, vllm/config/parallel.py:239-250); it is passed explicitly so the firewall /
# NetworkPolicy and the command line name the same port.
# Only the leader serves the OpenAI API (and /health, /metrics) on `port`; workers have none.
MULTINODE_MASTER_PORT = 29501


def vllm_multinode_args(model: ResolvedModel, node_rank: int | str, master_addr: str, headless: bool,
                        master_port: int = MULTINODE_MASTER_PORT) -> list[str]:
    """The flags appended to `vllm_serve_args(model, port)` on each node of a multi-node replica.

    - `node_rank`: 0 on the leader, 1 .. model.nodes_per_replica-1 on the workers (pipeline
      stage order, as `model.placement[i].groups`). A string is passed through as is, for a
      value the platform expands at start: on Kubernetes "$(LWS_WORKER_INDEX)".
    - `master_addr`: the leader's address (IP or DNS name) every worker can reach; on
      Kubernetes "$(LWS_LEADER_ADDRESS)", on bare metal the leader host's address.
    - `headless`: True on workers (no API server), False on the leader.
    - `master_port`: the TCP port the leader listens on for the workers (open it between the
      nodes of the group).

    Usage: `["vllm", "serve", *vllm_serve_args(m, 8000), *vllm_multinode_args(m, 0, addr, False)]`.
    Returns [] for a single-node model (nothing to add). Raises ValueError for a leader that is
    headless, a worker that is not, or an integer rank outside 0 .. nodes-1.
    """
    nodes = model.nodes_per_replica
    if nodes <= 1:
        return []
    if isinstance(node_rank, int):
        if not 0 <= node_rank < nodes:
            raise ValueError(f"node_rank {node_rank} outside 0..{nodes - 1} for {model.name}")
        if headless != (node_rank != 0):
            raise ValueError(f"node rank {node_rank} of {model.name}: the leader (rank 0) serves the API, "
                             "every other rank runs headless")
    args = ["--nnodes", str(nodes), "--node-rank", str(node_rank),
            "--master-addr", master_addr, "--master-port", str(master_port)]
    if headless:
        args.append("--headless")
    return args
