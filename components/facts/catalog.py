"""Typed access to `models.yaml` and `gpus.yaml`.

The same `ModelFacts` type describes catalog entries and custom models written inline in a
stack (`models[i].custom`), so the planner never needs to know where facts came from.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal, Optional

from components import yaml12
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator
from pydantic.alias_generators import to_camel

_HERE = Path(__file__).parent

Dtype = Literal["fp16", "bf16", "fp8", "int8", "awq", "gptq", "mxfp4"]


class _Facts(BaseModel):
    # Stacks (`models[].custom`) use camelCase like every other stack key, strictly typed; the
    # catalog files use snake_case and are read by name (see _load).
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, validate_by_name=False, validate_by_alias=True,
        strict=True, allow_inf_nan=False,
    )


class Checkpoint(_Facts):
    """Where one published checkpoint of a model differs from the family's entry."""

    dtype: Optional[Dtype] = Field(
        default=None, description="Weight format of this checkpoint (its config.json quantization_config)."
    )
    max_context: Optional[PositiveInt] = Field(
        default=None, description="This checkpoint's max_position_embeddings."
    )
    quant_method: Optional[str] = Field(
        default=None, description="config.json quantization_config.quant_method, where it is not the dtype's name "
        "(e.g. fbgemm_fp8 for an fp8 checkpoint).",
    )
    source: str = Field(default="", description="The file these figures come from.")


class ModelFacts(_Facts):
    """Architecture facts of one model, as published in its config.json."""

    hf_repos: list[str] = Field(default_factory=list, description="Hugging Face repo ids of this model.")
    params_total: PositiveFloat = Field(description="Total parameters.")
    params_active: Optional[PositiveFloat] = Field(
        default=None, description="Parameters active per token (MoE); defaults to paramsTotal."
    )
    layers: PositiveInt = Field(description="num_hidden_layers")
    hidden_size: PositiveInt = Field(description="hidden_size")
    attention_heads: PositiveInt = Field(description="num_attention_heads")
    kv_heads: PositiveInt = Field(description="num_key_value_heads")
    head_dim: PositiveInt = Field(description="head_dim")
    max_context: PositiveInt = Field(description="max_position_embeddings")
    vocab_size: PositiveInt = Field(description="vocab_size")
    tied_embeddings: bool = Field(default=False, description="tie_word_embeddings")
    kv_cache: Literal["standard", "mla"] = Field(default="standard", description="KV cache layout.")
    kv_lora_rank: Optional[PositiveInt] = Field(default=None, description="MLA latent rank.")
    qk_rope_head_dim: Optional[PositiveInt] = Field(default=None, description="MLA rope part of the key.")
    native_dtype: Dtype = Field(default="bf16", description="dtype of the published checkpoint.")
    checkpoints: dict[str, Checkpoint] = Field(
        default_factory=dict,
        description="Per-repo differences (a pre-quantized AWQ/FP8 repo, a base repo's longer context).",
    )
    mtp_layers: int = Field(
        default=0, ge=0,
        description="num_nextn_predict_layers: multi-token-prediction layers shipped with the weights "
        "(needed for speculativeDecoding.method mtp).",
    )
    experts: Optional[PositiveInt] = Field(
        default=None, description="Routed experts per MoE layer (n_routed_experts / num_local_experts); "
        "none for dense models.",
    )
    experts_per_token: Optional[PositiveInt] = Field(
        default=None, description="Routed experts each token uses (num_experts_per_tok / experts_per_token).",
    )
    gated: bool = Field(default=False, description="The repo needs an accepted licence and an HF token.")
    source: str = Field(default="inline in the stack", description="Where these figures come from.")

    @model_validator(mode="after")
    def _check(self) -> "ModelFacts":
        if self.kv_cache == "mla" and (self.kv_lora_rank is None or self.qk_rope_head_dim is None):
            raise ValueError("kvCache 'mla' needs kvLoraRank and qkRopeHeadDim")
        if self.attention_heads % self.kv_heads:
            raise ValueError(
                f"attentionHeads ({self.attention_heads}) must be a multiple of kvHeads ({self.kv_heads})"
            )
        if self.params_active is not None and self.params_active > self.params_total:
            raise ValueError("paramsActive cannot exceed paramsTotal")
        if (self.experts is None) != (self.experts_per_token is None):
            raise ValueError("experts and expertsPerToken go together")
        if self.experts is not None and self.experts_per_token > self.experts:
            raise ValueError("expertsPerToken cannot exceed experts")
        stray = [repo for repo in self.checkpoints if repo not in self.hf_repos]
        if stray:
            raise ValueError(f"checkpoints {', '.join(stray)} are not listed in hfRepos")
        return self

    def checkpoint_dtype(self, repo: str) -> Dtype:
        """The weight format vLLM finds in `repo` (case-insensitive repo id)."""
        found = self._checkpoint(repo)
        return found.dtype if found and found.dtype else self.native_dtype

    def checkpoint_quant_method(self, repo: str) -> Optional[str]:
        """vLLM's name for the checkpoint's quantization method; None for 16-bit weights."""
        found = self._checkpoint(repo)
        if found and found.quant_method:
            return found.quant_method
        dtype = self.checkpoint_dtype(repo)
        return None if dtype in ("bf16", "fp16") else dtype

    def checkpoint_context(self, repo: str) -> int:
        found = self._checkpoint(repo)
        return found.max_context if found and found.max_context else self.max_context

    def repos_with_dtype(self, dtype: str) -> list[str]:
        """Published repos of this model whose weights are already in `dtype`."""
        return [r for r in self.hf_repos if self.checkpoint_dtype(r) == dtype]

    def _checkpoint(self, repo: str) -> Optional[Checkpoint]:
        wanted = repo.lower()
        return next((c for r, c in self.checkpoints.items() if r.lower() == wanted), None)

    @property
    def active_params(self) -> float:
        return self.params_active if self.params_active is not None else self.params_total

    @property
    def embedding_params(self) -> float:
        """Input embedding plus LM head; both stay 16-bit under weight quantization."""
        return self.vocab_size * self.hidden_size * (1 if self.tied_embeddings else 2)


class InstanceType(_Facts):
    type: str
    gpus: PositiveInt
    usd_per_hour: PositiveFloat


class Interconnect(_Facts):
    kind: str
    bandwidth_gbs: PositiveFloat


class GpuFacts(_Facts):
    name: str
    compute_capability: str = Field(description="CUDA compute capability, e.g. 8.0 (A100), 9.0 (H100), 10.0 (B200).")
    product_label: str = Field(description="Value of the nvidia.com/gpu.product node label.")
    memory_gib: PositiveFloat = Field(description="Marketed memory; shown, never planned with.")
    memory_mib_reported: PositiveInt = Field(description="Total memory NVML reports; vLLM's share is of this.")
    memory_bandwidth_gbs: PositiveFloat
    bf16_tflops: PositiveFloat
    fp8_tflops: Optional[PositiveFloat]
    int8_tops: PositiveFloat
    interconnect: Interconnect
    max_gpus_per_node: PositiveInt
    aws_instances: list[InstanceType]
    price_as_of: Optional[str] = None
    source: str

    @property
    def capability(self) -> tuple[int, int]:
        major, _, minor = self.compute_capability.partition(".")
        return int(major), int(minor or 0)

    @property
    def generation(self) -> str:
        """NVIDIA architecture by compute capability: ampere (8.0/8.6), ada (8.9), hopper (9.x), blackwell (10.x+)."""
        cc = self.capability
        if cc >= (10, 0):
            return "blackwell"
        if cc >= (9, 0):
            return "hopper"
        if cc >= (8, 9):
            return "ada"
        return "ampere"

    @property
    def memory_bytes(self) -> float:
        """What vLLM sees as the device's total memory (gpuMemoryUtilization is a share of it)."""
        return self.memory_mib_reported * 2**20


@cache
def model_catalog() -> dict[str, ModelFacts]:
    raw = yaml12.load((_HERE / "models.yaml").read_text())
    return {key: ModelFacts.model_validate(value, by_name=True, by_alias=False) for key, value in raw.items()}


@cache
def gpu_catalog() -> dict[str, GpuFacts]:
    raw = yaml12.load((_HERE / "gpus.yaml").read_text())
    return {key: GpuFacts.model_validate(value, by_name=True, by_alias=False) for key, value in raw.items()}


def gpu_types() -> tuple[str, ...]:
    """Every GPU type a stack may name: the keys of gpus.yaml, nothing else."""
    return tuple(gpu_catalog())


def resolve_model(model_id: str) -> Optional[tuple[str, ModelFacts]]:
    """Find a model by catalog key or Hugging Face repo id (case-insensitive)."""
    wanted = model_id.lower()
    for key, facts in model_catalog().items():
        if key == wanted or wanted in (repo.lower() for repo in facts.hf_repos):
            return key, facts
    return None
