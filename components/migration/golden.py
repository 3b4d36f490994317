"""Golden-set consistency check for model upgrades (a new revision or quantization).

The same prompts go to the source and the destination with deterministic sampling
(temperature 0, a fixed seed); outputs are compared with the tolerance that the quantization
change allows (`golden_tolerances.yaml`, data): exact match for the same dtype, a token-overlap
threshold for 16-bit -> 8-bit (FP8/INT8) or 4-bit (AWQ/GPTQ/MXFP4).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Optional

import httpx
import yaml

TOLERANCES_FILE = Path(__file__).with_name("golden_tolerances.yaml")
SIXTEEN, EIGHT, FOUR = {"fp16", "bf16"}, {"fp8", "int8"}, {"awq", "gptq", "mxfp4"}


@dataclass(frozen=True)
class Tolerance:
    kind: str  # which row of golden_tolerances.yaml
    exact: bool = False
    min_overlap: float = 1.0
    min_each: float = 1.0


@cache
def _table() -> dict:
    return yaml.safe_load(TOLERANCES_FILE.read_text())


def tolerance(src_dtype: str, dst_dtype: str) -> Tolerance:
    if src_dtype == dst_dtype:
        kind = "same_dtype"
    elif {src_dtype, dst_dtype} <= SIXTEEN:
        kind = "cast"
    elif src_dtype in SIXTEEN and dst_dtype in EIGHT:
        kind = "to_8bit"
    elif src_dtype in SIXTEEN | EIGHT and dst_dtype in FOUR:
        kind = "to_4bit"
    else:
        kind = "other"
    row = _table()[kind]
    return Tolerance(kind, exact=bool(row.get("exact")), min_overlap=float(row.get("min_overlap", 1.0)),
                     min_each=float(row.get("min_each", row.get("min_overlap", 1.0))))


def token_overlap(a: str, b: str) -> float:
    """Shared tokens (as multisets of whitespace tokens) over the longer output's count."""
    ta, tb = a.split(), b.split()
    if not ta and not tb:
        return 1.0
    return sum((Counter(ta) & Counter(tb)).values()) / max(len(ta), len(tb))


@dataclass
class GoldenReport:
    tolerance: Tolerance
    overlaps: list[float] = field(default_factory=list)
    mismatches: list[dict] = field(default_factory=list)  # prompt, source, destination, overlap

    @property
    def mean_overlap(self) -> float:
        return sum(self.overlaps) / len(self.overlaps) if self.overlaps else 1.0

    @property
    def passed(self) -> bool:
        if self.tolerance.exact:
            return not self.mismatches
        return (self.mean_overlap >= self.tolerance.min_overlap
                and min(self.overlaps, default=1.0) >= self.tolerance.min_each)

    def describe(self) -> str:
        t = self.tolerance
        rule = "exact match" if t.exact else f"mean overlap >= {t.min_overlap:g}, each >= {t.min_each:g}"
        return (f"golden set ({t.kind}: {rule}): {len(self.overlaps)} prompts, {len(self.mismatches)} differ, "
                f"mean overlap {self.mean_overlap:.3f} -> {'pass' if self.passed else 'FAIL'}")


def complete(client: httpx.Client, model: str, prompt: str, max_tokens: int, seed: int) -> str:
    reply = client.post("/v1/chat/completions", json={
        "model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
        "temperature": 0, "top_p": 1, "seed": seed})
    reply.raise_for_status()
    return reply.json()["choices"][0]["message"]["content"]


def check(src_url: str, src_model: str, dst_url: str, dst_model: str, prompts: list[str], tol: Tolerance,
          max_tokens: int = 64, seed: int = 0, api_key: Optional[str] = None, timeout_s: float = 120) -> GoldenReport:
    """Send every prompt to both deployments (greedy, seeded) and compare the outputs."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    report = GoldenReport(tol)
    with httpx.Client(base_url=src_url, headers=headers, timeout=timeout_s) as a, \
            httpx.Client(base_url=dst_url, headers=headers, timeout=timeout_s) as b:
        for prompt in prompts:
            old, new = complete(a, src_model, prompt, max_tokens, seed), complete(b, dst_model, prompt, max_tokens, seed)
            overlap = token_overlap(old, new)
            report.overlaps.append(overlap)
            if old != new:
                report.mismatches.append({"prompt": prompt, "source": old, "destination": new, "overlap": overlap})
    return report
