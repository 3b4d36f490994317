"""Resolved stacks for tests: the example stacks, or a small config written inline."""

from __future__ import annotations

from typing import Any

from components.spec import ResolvedStack, load_spec
from components.spec.pulumi_config import parse_value
from components.spec.stack_file import read_stack


def example_stack(name: str) -> ResolvedStack:
    config = read_stack(name)
    values = {k.split(":", 1)[1]: parse_value(v) for k, v in config.values.items() if k.startswith("tierscale:")}
    return load_spec(values, {k.split(":", 1)[1] for k in config.secret_keys}, require_secrets=False)


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
