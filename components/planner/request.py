"""Build a PlanRequest from command-line style inputs, with errors that name the option."""

from __future__ import annotations

from typing import Optional

from components.facts import gpu_catalog, model_catalog, resolve_model
from components.planner.memory import BYTES_PER_PARAM
from components.planner.plan import PlanRequest
from components.suggestions import suggestion


class PlanInputError(ValueError):
    pass


def build_request(model: str, gpu: str, quantization: Optional[str], max_model_len: int, qps: float,
                  prompt_tokens: int, output_tokens: int, ttft_ms: float, tpot_ms: float,
                  availability: float, gpu_memory_utilization: float, concurrency: int = 1,
                  price_per_hour: Optional[float] = None) -> PlanRequest:
    found = resolve_model(model)
    if found is None:
        choices = list(model_catalog()) + [r for f in model_catalog().values() for r in f.hf_repos]
        raise PlanInputError(f"--model: {model!r} is not in the catalog{suggestion(model, choices)}; known: {', '.join(model_catalog())}")
    key, facts = found
    if gpu not in gpu_catalog():
        raise PlanInputError(f"--gpu: {gpu!r} is not known{suggestion(gpu, gpu_catalog())}; known: {', '.join(gpu_catalog())}")
    quant = quantization or facts.native_dtype
    if quant not in BYTES_PER_PARAM:
        raise PlanInputError(f"--quantization: {quant!r} is not allowed{suggestion(quant, BYTES_PER_PARAM)}; allowed: {', '.join(BYTES_PER_PARAM)}")
    if max_model_len > facts.max_context:
        raise PlanInputError(f"--max-model-len: {max_model_len} exceeds {key}'s context of {facts.max_context}")
    checks = [("--max-model-len", max_model_len > 0), ("--qps", qps >= 0), ("--prompt-tokens", prompt_tokens > 0),
              ("--output-tokens", output_tokens > 0), ("--ttft-ms", ttft_ms > 0), ("--tpot-ms", tpot_ms > 0),
              ("--availability", 0 < availability <= 100), ("--gpu-memory-utilization", 0 < gpu_memory_utilization <= 1),
              ("--concurrency", concurrency >= 1)]
    for option, ok in checks:
        if not ok:
            raise PlanInputError(f"{option}: out of range")
    return PlanRequest(
        model_key=key, model=facts, gpu_key=gpu, quantization=quant, max_model_len=max_model_len, qps=qps,
        prompt_tokens=prompt_tokens, output_tokens=output_tokens, ttft_slo_ms=ttft_ms, tpot_slo_ms=tpot_ms,
        availability_pct=availability, gpu_memory_utilization=gpu_memory_utilization, min_sequences=concurrency,
        price_per_instance_hour=price_per_hour,
    )
