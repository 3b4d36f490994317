"""Resolved stacks for tests: the example stacks, or a small config written inline."""

from __future__ import annotations

from typing import Any

from components import paths
from components.spec import ResolvedStack, load_spec
from components.spec.stack_file import load_stack


# Every example stack in stacks/: each must render, validate (--strict) and exit cleanly.
EXAMPLE_STACKS = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in paths.STACKS_DIR.glob("Pulumi.*.yaml"))


def example_stack(name: str) -> ResolvedStack:
    return load_stack(name)


def small_stack(**overrides: Any) -> ResolvedStack:
    """One 8B model with three replicas on a 4-GPU host, nginx gateway."""
    config: dict[str, Any] = {
        "tier": "small",
        "target": {"kind": "docker-host", "host": "localhost"},
        "gpu": {"type": "l40s", "perNode": 4},
        "models": [{"id": "meta-llama/Llama-3.1-8B-Instruct", "name": "llama-8b", "replicas": 3}],
    }
    config.update(overrides)
    return load_spec(config, require_secrets=False)
