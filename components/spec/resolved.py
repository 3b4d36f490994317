"""The spec after validation, with every planner-derived value filled in.

Tier components read only these types: one place decides defaults, every tier sees the same
numbers, and `render` prints them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from components.facts import GpuFacts, ModelFacts
from components.planner import Plan
from components.planner.placement import FleetPlacement, ReplicaPlacement
from components.spec.errors import Problem
from components.spec.model import ModelSpec, PlatformSpec, StackSpec  # noqa: F401


@dataclass(frozen=True)
class ResolvedModel:
    spec: ModelSpec
    catalog_key: str
    facts: ModelFacts
    name: str
    hf_repo: str
    served_model_name: str
    # What vLLM holds in memory, and what the checkpoint on the hub holds (they differ only for
    # an online conversion: fp8 from 16-bit weights, or a bf16<->fp16 cast).
    quantization: str
    checkpoint_dtype: str
    # vLLM's name for the checkpoint's quantization (None for 16-bit weights).
    checkpoint_quant_method: Optional[str]
    tensor_parallel: int
    pipeline_parallel: int
    max_model_len: int
    replicas: int
    min_replicas: int
    max_replicas: int
    plan: Plan
    # Seconds from container start to a healthy /health, scaled to the weights (see
    # components.planner.loading); every tier sizes its probes and grace periods from it.
    startup_budget_s: int
    # Which values were derived rather than set in the stack, for `render` to report.
    derived: dict[str, object] = field(default_factory=dict)
    # Where each replica runs (components.planner.placement): the nodes and GPU ids of every
    # rank group, leader first. Every tier renders from this; none re-derives it.
    placement: tuple[ReplicaPlacement, ...] = ()
    # The GPU type the replicas landed on (a mixed bare-metal fleet may differ from gpu.type).
    gpu_type: str = ""

    @property
    def expected_qps(self) -> float:
        """Requests/s this model is sized for (models[].expectedQps, else slo.expectedQps)."""
        return self.plan.qps

    @property
    def gpus_per_replica(self) -> int:
        return self.tensor_parallel * self.pipeline_parallel

    @property
    def nodes_per_replica(self) -> int:
        """1, or the nodes one replica spans (a LeaderWorkerSet group / leader+worker units)."""
        return len(self.placement[0].groups) if self.placement else 1

    @property
    def gpus_per_node(self) -> int:
        """GPUs each pod/unit of one replica uses (all of them for a single-node replica)."""
        return self.gpus_per_replica // self.nodes_per_replica

    @property
    def multi_node(self) -> bool:
        return self.nodes_per_replica > 1


@dataclass(frozen=True)
class ResolvedStack:
    spec: StackSpec
    gpu: GpuFacts
    models: list[ResolvedModel]
    secrets_present: frozenset[str]
    # Findings that would not stop a deployment but make it miss its SLO or capacity (the
    # planner's figures); printed by render/validate, fatal under `validate --strict`.
    warnings: list[Problem] = field(default_factory=list)
    # Informational (secrets rendered as placeholders offline); never fatal.
    notes: list[str] = field(default_factory=list)
    placement: Optional[FleetPlacement] = None

    def model(self, name: str) -> ResolvedModel:
        return next(m for m in self.models if m.name == name)

    @property
    def kubernetes_version(self) -> Optional[str]:
        """The Kubernetes minor version manifests are rendered and validated for."""
        return getattr(self.spec.target, "kubernetes_version", None)

    @property
    def platform(self) -> PlatformSpec:
        """The medium tier's platform section, defaults filled in."""
        return self.spec.platform

    @property
    def on_eks(self) -> bool:
        return self.spec.target.kind == "eks"

    @property
    def gpu_operator_installs_driver(self) -> bool:
        driver = self.platform.gpu_operator.driver
        return (not self.on_eks) if driver is None else driver

    @property
    def shared_model_cache(self) -> bool:
        shared = self.platform.model_cache.shared
        return (not self.on_eks) if shared is None else shared
