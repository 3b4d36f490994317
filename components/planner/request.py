"""Build a PlanRequest from command-line style inputs, with errors that name the option.

Every numeric input must be finite and within a sane range (`--qps inf`, `nan`, a negative
price, QPS above 10,000,000 are rejected), and the quantization must be one the model can be
served in (search.quantization_problem): each error names the option, and the CLI exits 2.
"""

from __future__ import annotations

import json
import math
from typing import Optional

from pydantic import ValidationError

from components.facts import ModelFacts, gpu_catalog, model_catalog, resolve_model
from components.planner import parallelism, search
from components.planner.memory import BYTES_PER_PARAM, KV_DTYPE_BYTES
from components.planner.plan import PlanRequest
from components.suggestions import suggestion

MAX_QPS = 10_000_000
MAX_SLO_MS = 3_600_000
MAX_PRICE_PER_HOUR = 10_000
MAX_TOKENS = 10_000_000
MAX_NUM_SEQS = 4096
MAX_TOP = 50


class PlanInputError(ValueError):
    pass


def _number(option: str, value: Optional[float], low: float, high: float, low_open: bool = False) -> None:
    if value is None:
        return
    if not math.isfinite(value):
        raise PlanInputError(f"{option}: {value} is not a finite number")
    if value < low or (low_open and value == low) or value > high:
        bound = f"> {low:g}" if low_open else f">= {low:g}"
        raise PlanInputError(f"{option}: {value:g} is out of range (must be {bound} and <= {high:,.10g})")


def custom_model(text: str) -> ModelFacts:
    """A model described inline as JSON, with the catalog's (camelCase or snake_case) keys."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanInputError(f"--custom-json: not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(raw, dict):
        raise PlanInputError("--custom-json: must be a JSON object")
    raw.setdefault("source", "inline (--custom-json)")
    try:
        facts = ModelFacts.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PlanInputError(f"--custom-json: {where + ': ' if where else ''}{first['msg']}") from None
    for name in ("params_total", "params_active"):
        value = getattr(facts, name)
        if value is not None and not math.isfinite(value):
            raise PlanInputError(f"--custom-json: {name} must be finite")
    return facts


def build_request(model: Optional[str], gpu: str, quantization: Optional[str], max_model_len: int, qps: float,
                  prompt_tokens: int, output_tokens: int, ttft_ms: float, tpot_ms: float,
                  availability: Optional[float], gpu_memory_utilization: float, concurrency: int = 1,
                  price_per_hour: Optional[float] = None, *, custom_json: Optional[str] = None,
                  tensor_parallel: Optional[int] = None, pipeline_parallel: Optional[int] = None,
                  max_num_seqs: Optional[int] = None, top: int = 5, kv_cache_dtype: str = "auto",
                  max_gpus: Optional[int] = None, nodes: Optional[int] = None,
                  model_config: Optional[str] = None) -> PlanRequest:
    if model_config is not None and custom_json is not None:
        raise PlanInputError("--model-config: give either --model-config or --custom-json, not both")
    if model_config is not None:
        from components.facts import hf_config
        try:
            key, facts = hf_config.load_model(model_config, model_id=model)
        except hf_config.ModelConfigError as exc:
            raise PlanInputError(f"--model-config: {exc}") from None
    elif custom_json is not None:
        if model is not None:
            raise PlanInputError("--custom-json: give either --model or --custom-json, not both")
        key, facts = "custom", custom_model(custom_json)
    else:
        if model is None:
            raise PlanInputError("--model: required (a catalog id or Hugging Face repo id), or --model-config PATH (its config.json), or --custom-json")
        found = resolve_model(model)
        if found is None:
            choices = list(model_catalog()) + [r for f in model_catalog().values() for r in f.hf_repos]
            raise PlanInputError(f"--model: {model!r} is not in the catalog{suggestion(model, choices)}; known: "
                                 f"{', '.join(model_catalog())}; for any other model give its config.json: "
                                 "--model-config PATH (a file or a downloaded model directory)")
        key, facts = found
    if gpu != "any" and gpu not in gpu_catalog():
        raise PlanInputError(f"--gpu: {gpu!r} is not known{suggestion(gpu, gpu_catalog())}; known: any, {', '.join(gpu_catalog())}")
    gpu_facts = None if gpu == "any" else gpu_catalog()[gpu]

    _number("--qps", qps, 0, MAX_QPS)
    _number("--ttft-ms", ttft_ms, 0, MAX_SLO_MS, low_open=True)
    _number("--tpot-ms", tpot_ms, 0, MAX_SLO_MS, low_open=True)
    _number("--availability", availability, 0, 99.9999, low_open=True)
    _number("--gpu-memory-utilization", gpu_memory_utilization, 0, 1, low_open=True)
    _number("--price-per-hour", price_per_hour, 0, MAX_PRICE_PER_HOUR, low_open=True)
    _number("--max-model-len", max_model_len, 1, MAX_TOKENS)
    _number("--prompt-tokens", prompt_tokens, 1, MAX_TOKENS)
    _number("--output-tokens", output_tokens, 1, MAX_TOKENS)
    _number("--concurrency", concurrency, 1, 1_000_000)
    _number("--max-num-seqs", max_num_seqs, 1, MAX_NUM_SEQS)
    _number("--top", top, 0, MAX_TOP)
    _number("--max-gpus", max_gpus, 1, 1_000_000)
    _number("--nodes", nodes, 1, 100_000)
    if kv_cache_dtype not in KV_DTYPE_BYTES:
        raise PlanInputError(f"--kv-cache-dtype: {kv_cache_dtype!r} is not allowed; allowed: {', '.join(KV_DTYPE_BYTES)}")
    if max_model_len > facts.max_context:
        raise PlanInputError(f"--max-model-len: {max_model_len} exceeds {key}'s context of {facts.max_context}")
    if prompt_tokens + output_tokens > max_model_len:
        raise PlanInputError(f"--max-model-len: {max_model_len} is below --prompt-tokens + --output-tokens "
                             f"({prompt_tokens + output_tokens})")

    if quantization is not None:
        if quantization not in BYTES_PER_PARAM:
            raise PlanInputError(f"--quantization: {quantization!r} is not allowed{suggestion(quantization, BYTES_PER_PARAM)}; "
                                 f"allowed: {', '.join(BYTES_PER_PARAM)}")
        problem = search.quantization_problem(facts, quantization, gpu_facts, gpu)
        if problem:
            raise PlanInputError(f"--quantization: {problem}")

    if pipeline_parallel is not None and tensor_parallel is None:
        raise PlanInputError("--pipeline-parallel: needs --tensor-parallel (evaluating one configuration)")
    if tensor_parallel is not None:
        per_node = (gpu_facts.max_gpus_per_node if gpu_facts else max(g.max_gpus_per_node for g in gpu_catalog().values()))
        sizes = parallelism.valid_tensor_parallel_sizes(facts, per_node)
        if tensor_parallel not in sizes:
            raise PlanInputError(f"--tensor-parallel: {tensor_parallel} is not valid for {key} "
                                 f"(allowed: {', '.join(map(str, sizes))})")
        _number("--pipeline-parallel", pipeline_parallel, 1, min(parallelism.MAX_PIPELINE_STAGES, facts.layers))
    try:
        return PlanRequest(
            model_key=key, model=facts, gpu_key=gpu, quantization=quantization, max_model_len=max_model_len, qps=qps,
            prompt_tokens=prompt_tokens, output_tokens=output_tokens, ttft_slo_ms=ttft_ms, tpot_slo_ms=tpot_ms,
            availability_pct=availability, gpu_memory_utilization=gpu_memory_utilization, min_sequences=concurrency,
            price_per_instance_hour=price_per_hour, tensor_parallel=tensor_parallel, pipeline_parallel=pipeline_parallel,
            max_num_seqs=max_num_seqs, top=top, kv_cache_dtype=kv_cache_dtype, max_gpus=max_gpus, max_nodes=nodes,
        )
    except ValidationError as exc:  # a range the checks above missed: still name the field
        first = exc.errors()[0]
        raise PlanInputError(f"--{str(first['loc'][0]).replace('_', '-')}: {first['msg']}") from None
