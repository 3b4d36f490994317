"""The tier registry: one `Tier` per tier, the only dispatch on the tier, so a new tier is one
entry, not an edit to every `if tier == ...`.

A `Tier` names its code as "module:function" strings, imported only when used (the spec never
imports tier code). The roles, and the order `components.spec.rules.resolve` runs them in:

  targets     the `target.kind` values the tier accepts
  section     the stack section only this tier reads (None: none)
  fleet       (StackSpec, models or None) -> placement.Fleet: the nodes placement may use
              (components/spec/fleet.py; chosen by `target.kind`, see fleet_for)
  checks      (StackSpec) -> list[Problem]: the tier's own rules on the spec alone (ports,
              cloud facts, topology ...), before the models resolve
  risks       (StackSpec) -> list[Problem]: legal but likely wrong (warnings; fatal under
              `validate --strict`); None: the tier has none
  resolved    (StackSpec, list[ResolvedModel]) -> list[Problem]: rules that need the resolved
              and placed models (the planner's figures), run once after resolution and
              placement succeeded; None: the tier has none
  deploy      (stack_name, ResolvedStack, secret) -> ComponentResource: builds the component
              and exports its outputs; `pulumi up` and `tierscale render` both run it
  validators  (ResolvedStack) -> list of validators for what the tier renders
  bench       (stack_name, ResolvedStack) -> str: the URL `tierscale bench` sends requests to

and, as data the shared rules read instead of testing the tier's name:

  gateways    the `gateway.kind` values the tier renders
  autoscales  whether `models[].autoscaling` applies (KEDA on the cluster)
  one_host    the whole fleet is one host (advice names other tiers, not more nodes)

tests/test_tiers.py is the contract every entry must pass (each role imports and has the
signature above, targets are disjoint, sections exist in the spec).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, fields
from typing import Any, Callable, Optional

# Roles every tier provides / may leave out (None).
REQUIRED_ROLES = ("fleet", "checks", "deploy", "validators", "bench")
OPTIONAL_ROLES = ("risks", "resolved")


@dataclass(frozen=True)
class Tier:
    name: str
    targets: tuple[str, ...]
    section: Optional[str]
    summary: str
    fleet: str
    checks: str
    deploy: str
    validators: str
    bench: str
    risks: Optional[str] = None
    resolved: Optional[str] = None
    gateways: tuple[str, ...] = ("nginx",)
    autoscales: bool = False
    one_host: bool = False
    # The nginx gateway holds one upstream server per replica (the Compose gateway), so it can
    # pin a session or prompt prefix to a replica (models[].routing.affinity); the Kubernetes
    # router holds one Service per model and bare metal has no gateway.
    replica_upstreams: bool = False

    def function(self, role: str) -> Callable[..., Any]:
        ref = getattr(self, role)
        if ref is None:
            raise LookupError(f"tier {self.name!r} has no {role!r}")
        module, _, attr = ref.partition(":")
        return getattr(importlib.import_module(module), attr)

    def call(self, role: str, *args: Any) -> list:
        """An optional list-returning role (risks, resolved): [] when the tier has none."""
        return [] if getattr(self, role) is None else self.function(role)(*args)

    @classmethod
    def roles(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if f.name in REQUIRED_ROLES + OPTIONAL_ROLES)


# The former name of the entry type.
TierEntry = Tier

TIERS: dict[str, Tier] = {
    "small": Tier(
        "small", ("docker-host",), None, "Docker Compose on one GPU host",
        fleet="components.spec.fleet:small_fleet", checks="components.small.checks:problems", deploy="components.small.deploy:deploy",
        validators="components.small.checks:validators", bench="components.bench.command:_small_endpoint",
        gateways=("nginx", "litellm"), one_host=True, replica_upstreams=True),
    "medium": Tier(
        "medium", ("kubernetes", "eks"), "platform", "one Kubernetes cluster (existing or new EKS)",
        fleet="components.spec.fleet:medium_fleet", checks="components.medium.checks:problems", deploy="components.medium.deploy:deploy",
        validators="components.medium.checks:validators", bench="components.bench.command:_medium_endpoint",
        risks="components.medium.checks:risks", autoscales=True),
    "baremetal": Tier(
        "baremetal", ("baremetal",), None, "bare-metal nodes bootstrapped with Ansible",
        fleet="components.spec.fleet:baremetal_fleet", checks="components.baremetal.checks:problems", deploy="components.baremetal.deploy:deploy",
        validators="components.baremetal.checks:validators", bench="components.bench.command:_baremetal_endpoint",
        risks="components.baremetal.checks:risks"),
    "large": Tier(
        "large", ("multi-region",), "large", "regional Kubernetes clusters behind global traffic management",
        fleet="components.spec.fleet:large_fleet", checks="components.large.checks:problems", deploy="components.large.deploy:deploy",
        validators="components.large.checks:validators", bench="components.bench.command:_large_endpoint",
        risks="components.large.checks:risks", resolved="components.large.checks:resolved_problems"),
}


def tier(name: str) -> Tier:
    return TIERS[name]


def tier_of_target(kind: str) -> Tier:
    """The tier that accepts `target.kind` (targets are disjoint: tests/test_tiers.py)."""
    return next(t for t in TIERS.values() if kind in t.targets)
