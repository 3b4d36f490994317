"""The spec after validation, with every planner-derived value filled in.

Tier components read only these types: one place decides defaults, every tier sees the same
numbers, and `render` prints them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from components.facts import GpuFacts, ModelFacts
from components.planner import Plan
from components.spec.model import ModelSpec, PlatformSpec, StackSpec  # noqa: F401


@dataclass(frozen=True)
class ResolvedModel:
    spec: ModelSpec
    catalog_key: str
    facts: ModelFacts
    name: str
    hf_repo: str
    served_model_name: str
    quantization: str
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

    @property
    def gpus_per_replica(self) -> int:
        return self.tensor_parallel * self.pipeline_parallel


@dataclass(frozen=True)
class ResolvedStack:
    spec: StackSpec
    gpu: GpuFacts
    models: list[ResolvedModel]
    secrets_present: frozenset[str]
    warnings: list[str] = field(default_factory=list)

    def model(self, name: str) -> ResolvedModel:
        return next(m for m in self.models if m.name == name)

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
