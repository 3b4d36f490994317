"""KV-cache-aware routing (issue #22 item 1): the InferencePool, endpoint picker and HTTPRoute
rendered for a medium stack pass the real validators (kubernetes-validate, the CRD schemas,
checkov), and the pieces point at each other."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from components.medium import inference_pool
from components.render import render_stack
from components.validate import registry

# The pools work behind either entry point (the model router reaches them via the internal Gateway).
POOL = {"tierscale:platform": json.dumps({"routing": {"inferencePool": {}}})}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    return render_stack("medium-prod", tmp_path_factory.mktemp("pool") / "out", extra_config=POOL)


def _docs(out):
    docs = []
    for f in sorted((out / "kubernetes").rglob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(f.read_text()) if isinstance(d, dict)]
    return docs


def _kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def test_one_pool_and_picker_per_model_wired_together(rendered):
    docs = _docs(rendered.out_dir)
    models = rendered.stack.models
    pools = {d["metadata"]["name"]: d for d in _kind(docs, "InferencePool")}
    assert len(pools) == len(models) >= 1
    services = {d["metadata"]["name"]: d for d in _kind(docs, "Service")}
    deployments = {d["metadata"]["name"]: d for d in _kind(docs, "Deployment")}
    (route,) = [d for d in _kind(docs, "HTTPRoute") if d["metadata"]["name"] == inference_pool.ROUTE_NAME]
    for m in models:
        pool = pools[inference_pool.pool_name(m)]
        ref = pool["spec"]["endpointPickerRef"]
        svc = services[ref["name"]]
        assert ref["port"]["number"] in [p["port"] for p in svc["spec"]["ports"]]
        epp = deployments[ref["name"]]
        assert svc["spec"]["selector"].items() <= epp["spec"]["template"]["metadata"]["labels"].items()
        args = epp["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args[args.index("--pool-name") + 1] == pool["metadata"]["name"]
        # The pool selects the model's vLLM pods (the Deployment's pod labels).
        vllm = deployments.get(f"vllm-{m.name}")
        if vllm is not None:
            assert pool["spec"]["selector"]["matchLabels"].items() <= vllm["spec"]["template"]["metadata"]["labels"].items()
        (rule,) = [r for r in route["spec"]["rules"] if r["backendRefs"][0]["name"] == pool["metadata"]["name"]]
        assert rule["matches"][0]["headers"] == [{"type": "Exact", "name": "X-Gateway-Model-Name", "value": m.name}]
    # The pool route attaches to the internal Gateway, not the client-facing one.
    parent = route["spec"]["parentRefs"][0]
    assert parent["name"] == "inference-gateway-internal" != rendered.stack.platform.routing.gateway_name


def test_validators_pass(rendered):
    for check in (registry.kubernetes_builtin, registry.kubernetes_crds, registry.checkov):
        outcome = check(rendered.out_dir)
        assert outcome.ok, f"{outcome.name}: {outcome.detail}"


def test_crd_schema_fails_a_bad_pool(rendered, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(rendered.out_dir, out)
    for f in (out / "kubernetes").rglob("*.yaml"):
        docs = list(yaml.safe_load_all(f.read_text()))
        if any(isinstance(d, dict) and d.get("kind") == "InferencePool" for d in docs):
            for d in docs:
                if isinstance(d, dict) and d.get("kind") == "InferencePool":
                    d["spec"]["endpointPickerRef"]["failureMode"] = "Sometimes"
            f.write_text(yaml.safe_dump_all(docs, sort_keys=False))
            break
    assert not registry.kubernetes_crds(out).ok


def test_off_by_default_renders_nothing():
    stack_docs = render_stack.__module__  # noqa: F841 (import check only)
    from components.spec.model import RoutingSpec
    assert RoutingSpec().inference_pool is None


def test_refuses_the_client_facing_gateway():
    from components.spec.model import InferencePoolRouting, RoutingSpec

    class S:  # the fields problems() reads
        pass
    s = S()
    s.models = []  # no model asks for router affinity (that refusal: tests/medium/test_kv_wiring.py)
    s.platform = S()
    s.platform.routing = RoutingSpec.model_validate({"kind": "httproute", "inferencePool": {
        "gatewayName": "inference-gateway", "gatewayNamespace": "gateway-system"}})
    (msg,) = inference_pool.problems(s)
    assert msg.startswith("platform.routing.inferencePool.gatewayName") and "internal Gateway" in msg
    s.platform.routing = RoutingSpec.model_validate({"kind": "httproute", "inferencePool": {}})
    assert inference_pool.problems(s) == []
    assert isinstance(s.platform.routing.inference_pool, InferencePoolRouting)
