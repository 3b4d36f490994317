"""The Kubernetes model router: one base URL for every model. Its manifests are rendered with
every medium stack and pass the medium validators; the Ingress / HTTPRoute send `/` to it and
keep the per-model prefixes; its NetworkPolicies open exactly controller -> router -> vLLM;
and the nginx.conf + njs script from its ConfigMap, run for real on 127.0.0.1 against stub
replicas, routes by the body's model like the Compose gateway (same template, same script)."""

from __future__ import annotations

import re
import subprocess

import httpx
import jsonschema
import pytest
import yaml

from components import paths
from components.medium import network, router
from components.serving import model_router
from components.validate import registry
from tests.support.processes import Nginx, free_port, start_stubs, wait_http

STACKS = ["medium-prod", "medium-eks", "medium-gitops", "medium-405b"]
KEY = "router-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def docs(result):
    return [(f, yaml.safe_load(f.read_text())) for d in ("kubernetes", "gitops")
            for f in sorted((result.out_dir / d).glob("*.yaml"))]


def router_docs(result) -> dict[tuple[str, str], dict]:
    out = {}
    for _, doc in docs(result):
        if doc["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "model-router" or \
                doc["metadata"]["name"].startswith(("allow-gateway-to-model-router", "allow-model-router")):
            out[(doc["kind"], doc["metadata"]["name"])] = doc
    return out


@pytest.mark.parametrize("name", STACKS)
def test_every_medium_stack_renders_the_router(medium, name):
    result = medium[name]
    found = router_docs(result)
    r = router.ROUTER_NAME
    assert set(found) == {("ConfigMap", r), ("Deployment", r), ("Service", r), ("PodDisruptionBudget", r),
                          ("NetworkPolicy", "allow-gateway-to-model-router"),
                          ("NetworkPolicy", "allow-model-router-egress-to-vllm"),
                          ("NetworkPolicy", "allow-model-router-to-vllm")}
    config = found[("ConfigMap", r)]["data"]
    # The one njs script of every tier, verbatim, and the shared template.
    assert config["model_router.js"] == model_router.router_js()
    conf = config["nginx.conf"]
    assert "templates/gateway/nginx.conf.j2" in conf and "least_conn;" in conf
    ns = result.stack.spec.target.namespace
    for m in result.stack.models:
        assert f"server vllm-{m.name}.{ns}.svc.cluster.local:8000 " in conf
        assert f'"{m.served_model_name}":"{model_router.upstream_name(m.name)}"' in conf
    deployment = found[("Deployment", r)]
    pod = deployment["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["image"].startswith("nginx:") and c["command"][:3] == ["nginx", "-c", "/etc/nginx/tierscale/nginx.conf"]
    assert c["securityContext"]["readOnlyRootFilesystem"] and c["securityContext"]["runAsNonRoot"]
    assert deployment["spec"]["replicas"] >= 2
    assert found[("PodDisruptionBudget", r)]["spec"]["minAvailable"] == 1
    assert found[("Service", r)]["spec"]["ports"][0]["port"] == 8000
    # A changed config changes the pod template, so the router pods roll.
    assert re.fullmatch(r"[0-9a-f]{64}", deployment["spec"]["template"]["metadata"]["annotations"]["tierscale.dev/config-sha256"])


@pytest.mark.parametrize("name", ["medium-prod", "medium-gitops"])
def test_router_manifests_pass_the_medium_validators(medium, name):
    out = medium[name].out_dir
    files = [f.name for f, doc in docs(medium[name]) if doc["metadata"]["name"].startswith(("tierscale-model-router", "allow-gateway-to-model-router", "allow-model-router"))]
    assert len(files) == 7
    for check in (registry.kubernetes_builtin, registry.checkov):
        outcome = check(out)
        assert outcome.ok, f"{outcome.name}: {outcome.detail}"


def test_network_policies_open_controller_to_router_to_vllm(medium):
    result = medium["medium-prod"]
    found = router_docs(result)
    controller = result.stack.platform.routing.controller_namespace
    into_router = found[("NetworkPolicy", "allow-gateway-to-model-router")]["spec"]
    assert into_router["podSelector"] == {"matchLabels": router.selector()}
    assert into_router["ingress"] == [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": controller}}}],
                                       "ports": [{"protocol": "TCP", "port": 8000}]}]
    out_of_router = found[("NetworkPolicy", "allow-model-router-egress-to-vllm")]["spec"]
    assert out_of_router["policyTypes"] == ["Egress"]
    assert out_of_router["egress"][0]["to"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/component": "vllm"}}}]
    into_vllm = found[("NetworkPolicy", "allow-model-router-to-vllm")]["spec"]
    assert into_vllm["podSelector"] == {"matchLabels": {"app.kubernetes.io/component": "vllm"}}
    assert into_vllm["ingress"][0]["from"] == [{"podSelector": {"matchLabels": router.selector()}}]
    # The namespace is still default-deny.
    policies = {d["metadata"]["name"]: d for _, d in docs(result) if d["kind"] == "NetworkPolicy"}
    assert policies["default-deny"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_ingress_and_httproute_send_the_root_to_the_router_and_keep_prefixes(medium):
    stack = medium["medium-prod"].stack
    (ingress,) = [d for _, d in docs(medium["medium-prod"]) if d["kind"] == "Ingress"]
    paths_ = {p["path"]: p["backend"]["service"]["name"] for p in ingress["spec"]["rules"][0]["http"]["paths"]}
    assert paths_["/()(.*)"] == router.ROUTER_NAME
    for m in stack.models:
        assert paths_[f"/{m.name}(/|$)(.*)"] == f"vllm-{m.name}"
    https = stack.spec.platform.model_copy(update={"routing": stack.spec.platform.routing.model_copy(
        update={"kind": "httproute", "gateway_name": "gw"})})
    route_stack = type(stack)(**{**stack.__dict__, "spec": stack.spec.model_copy(update={"platform": https})})
    route = network.http_route(route_stack, "llm")
    root = [r for r in route["spec"]["rules"] if r["matches"][0]["path"]["value"] == "/"]
    assert root[0]["backendRefs"] == [{"name": router.ROUTER_NAME, "port": 8000}]
    assert {r["matches"][0]["path"]["value"] for r in route["spec"]["rules"]} == {"/"} | {f"/{m.name}/" for m in stack.models}
    schema = paths.schemas_dir() / "crds" / "gateway.networking.k8s.io" / "httproute_v1.json"
    import json
    jsonschema.Draft7Validator(json.loads(schema.read_text())).validate(route)


def _local(conf: str, work, servers: dict[str, str]) -> tuple[str, int, int]:
    """The ConfigMap's nginx.conf with only addresses and paths changed for 127.0.0.1."""
    for service, address in servers.items():
        conf, n = re.subn(rf"server {re.escape(service)} ", f"server {address} ", conf)
        assert n == 1, service
    port, status_port = free_port(), free_port()
    conf = re.sub(r"listen 8000;", f"listen 127.0.0.1:{port};", conf)
    conf = re.sub(r"listen 8081;", f"listen 127.0.0.1:{status_port};", conf)
    conf = conf.replace("/etc/nginx/tierscale/model_router.js", str(work / "model_router.js"))
    conf = conf.replace("pid /tmp/nginx.pid", f"pid {work}/nginx.pid").replace("error_log stderr", f"error_log {work}/logs/error.log")
    conf = conf.replace("access_log /dev/stdout", f"access_log {work}/logs/access.log")
    conf = re.sub(r"(_temp_path) /tmp/", rf"\1 {work}/tmp/", conf)
    return conf, port, status_port


def test_the_router_config_passes_nginx_t(medium, tmp_path):
    result = medium["medium-prod"]
    config = router_docs(result)[("ConfigMap", router.ROUTER_NAME)]["data"]
    (tmp_path / "model_router.js").write_text(config["model_router.js"])
    (tmp_path / "logs").mkdir()
    (tmp_path / "tmp").mkdir()
    ns = result.stack.spec.target.namespace
    conf, _, _ = _local(config["nginx.conf"], tmp_path,
                        {router.service_address(m.name, ns): f"127.0.0.1:{free_port()}" for m in result.stack.models})
    (tmp_path / "nginx.conf").write_text(conf)
    proc = subprocess.run(["nginx", "-t", "-q", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"),
                           "-e", str(tmp_path / "logs/error.log")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_the_router_config_routes_by_body_model(medium, tmp_path):
    result = medium["medium-prod"]
    stack = result.stack
    ns = stack.spec.target.namespace
    config = router_docs(result)[("ConfigMap", router.ROUTER_NAME)]["data"]
    stubs = {m.name: start_stubs(1, api_key=KEY, model=m.served_model_name)[0] for m in stack.models}
    (tmp_path / "model_router.js").write_text(config["model_router.js"])
    conf, port, status_port = _local(config["nginx.conf"], tmp_path,
                                     {router.service_address(m.name, ns): stubs[m.name].address for m in stack.models})
    nginx = Nginx(conf, tmp_path).start()
    try:
        wait_http(f"http://127.0.0.1:{status_port}/gateway/health")
        url = f"http://127.0.0.1:{port}"
        for m in stack.models:
            resp = httpx.post(f"{url}/v1/chat/completions", headers=AUTH, timeout=30, json={
                "model": m.served_model_name, "max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]})
            assert resp.status_code == 200 and resp.json()["model"] == m.served_model_name
        listed = httpx.get(f"{url}/v1/models", headers=AUTH, timeout=30).json()
        assert listed["object"] == "list"
        assert [d["id"] for d in listed["data"]] == [m.served_model_name for m in stack.models]
        unknown = httpx.post(f"{url}/v1/chat/completions", headers=AUTH, timeout=30, json={"model": "gpt-4o", "messages": []})
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
        assert httpx.get(f"{url}/v1/models", timeout=30).status_code == 401
    finally:
        nginx.stop()
        for s in stubs.values():
            s.kill()
