"""Property-based: whatever the config, the loader returns a spec or raises SpecError."""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.spec import SpecError, load_spec

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 100000), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["small", "medium", "nginx", "h100-80gb", "llama-3.1-8b", "docker-host", "kubernetes", "baremetal"]))
keys = st.one_of(st.text(max_size=10), st.sampled_from(
    ["tier", "target", "gpu", "models", "gateway", "kind", "type", "perNode", "id", "tensorParallel",
     "pipelineParallel", "replicas", "maxModelLen", "autoscaling", "minReplicas", "maxReplicas", "hosts", "custom",
     "apiKey", "hfToken", "security", "tls", "slo", "quantization"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)), max_leaves=20)

VALID = {
    "tier": "small",
    "target": {"kind": "docker-host"},
    "gpu": {"type": "l40s", "perNode": 4},
    "models": [{"id": "qwen2.5-7b", "replicas": 2}],
    "security": {"apiAuth": False},
}


def _load(config, secrets):
    try:
        load_spec(config, secrets)
    except SpecError as error:
        assert error.problems and all(str(p) for p in error.problems)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(keys, values, max_size=8), st.sets(keys, max_size=3))
def test_arbitrary_config_never_raises_anything_but_spec_error(config, secrets):
    _load(config, secrets)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["tier", "target", "gpu", "models", "security"]), st.lists(st.one_of(keys, st.integers(0, 3)), max_size=3), values)
def test_mutating_a_valid_config_never_raises_anything_but_spec_error(top, path, value):
    config = copy.deepcopy(VALID)
    node = config
    parent_key = top
    for part in path:
        child = node.get(parent_key) if isinstance(node, dict) else (node[parent_key] if isinstance(node, list) and isinstance(parent_key, int) and parent_key < len(node) else None)
        if not isinstance(child, (dict, list)):
            break
        node, parent_key = child, part
    if isinstance(node, dict):
        node[parent_key] = value
    elif isinstance(node, list) and isinstance(parent_key, int) and parent_key < len(node):
        node[parent_key] = value
    _load(config, set())
