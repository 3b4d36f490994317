"""The tier registry: one entry per tier, so a new tier is one entry, not an edit to every
`if tier == ...`.

Each entry names (as "module:function", imported only when used, so the spec never imports
tier code):
  targets     the `target.kind` values the tier accepts
  section     the stack section only this tier reads (None: none)
  checks      (StackSpec) -> list[Problem]: the tier's own rules (ports, cloud facts ...)
  deploy      (stack_name, ResolvedStack, secret) -> ComponentResource: builds the component
              and exports its outputs; `pulumi up` and `tierscale render` both run it
  validators  (ResolvedStack) -> list of validators for what the tier renders
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Optional


@dataclass(frozen=True)
class TierEntry:
    name: str
    targets: tuple[str, ...]
    section: Optional[str]
    checks: str
    deploy: str
    validators: str
    summary: str

    def function(self, role: str) -> Callable[..., Any]:
        module, _, attr = getattr(self, role).partition(":")
        return getattr(importlib.import_module(module), attr)


TIERS: dict[str, TierEntry] = {
    "small": TierEntry(
        "small", ("docker-host",), None, "components.small.checks:problems",
        "components.small.deploy:deploy", "components.small.checks:validators",
        "Docker Compose on one GPU host"),
    "medium": TierEntry(
        "medium", ("kubernetes", "eks"), "platform", "components.medium.checks:problems",
        "components.medium.deploy:deploy", "components.medium.checks:validators",
        "one Kubernetes cluster (existing or new EKS)"),
    "baremetal": TierEntry(
        "baremetal", ("baremetal",), None, "components.baremetal.checks:problems",
        "components.baremetal.deploy:deploy", "components.baremetal.checks:validators",
        "bare-metal nodes bootstrapped with Ansible"),
    "large": TierEntry(
        "large", ("multi-region",), "large", "components.large.checks:problems",
        "components.large.deploy:deploy", "components.large.checks:validators",
        "regional Kubernetes clusters behind global traffic management"),
}


def tier(name: str) -> TierEntry:
    return TIERS[name]
