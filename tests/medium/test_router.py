"""The Kubernetes model router: one base URL for every model and the only way in. Its
manifests are rendered with every medium stack and pass the medium validators; the Ingress /
HTTPRoute send every path to it (no route to a vLLM Service); its NetworkPolicies open exactly
controller -> router -> vLLM; the accepted keys' digests come from a Secret mounted read-only;
and the nginx.conf + njs script from its ConfigMap, run for real on 127.0.0.1 against stub
replicas, authenticates, routes by the body's model like the Compose gateway (same template,
same script), and splits a model with a canary by its weight."""

from __future__ import annotations

import re
import subprocess

import httpx
import jsonschema
import pytest
import yaml

from components import paths
from components.medium import network, router
from components.medium.options import Canary, ServingOptions
from components.serving import model_router
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
                          ("Secret", router.AUTH_SECRET),
                          ("NetworkPolicy", "allow-gateway-to-model-router"),
                          ("NetworkPolicy", "allow-model-router-egress-to-vllm"),
                          ("NetworkPolicy", "allow-model-router-to-vllm")}
    config = found[("ConfigMap", r)]["data"]
    # The one njs script of every tier, verbatim, and the shared template.
    assert config["model_router.js"] == model_router.router_js()
    conf = config["nginx.conf"]
    assert "templates/gateway/nginx.conf.j2" in conf and "least_conn;" in conf
    # The keys' digests are included from the Secret's mount, never in the ConfigMap.
    assert re.search(rf"include {re.escape(router.AUTH_DIR)}/[^;]*;", conf)
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
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert re.fullmatch(r"[0-9a-f]{64}", annotations["tierscale.dev/config-sha256"])
    # The auth include: a Secret volume, read-only, only in the router pods; a new key set
    # rolls them (Pulumi mode; GitOps manifests cannot depend on a secret).
    (mount,) = [v for v in c["volumeMounts"] if v["name"] == "auth"]
    assert mount == {"name": "auth", "mountPath": router.AUTH_DIR, "readOnly": True}
    (volume,) = [v for v in pod["volumes"] if v["name"] == "auth"]
    assert volume["secret"]["secretName"] == router.AUTH_SECRET and "optional" not in volume["secret"]
    assert pod["securityContext"]["fsGroup"] == c["securityContext"]["runAsGroup"]
    if result.stack.platform.gitops is None:
        assert re.fullmatch(r"[0-9a-f]{64}", annotations[router.AUTH_CHECKSUM_ANNOTATION])
    else:
        assert router.AUTH_CHECKSUM_ANNOTATION not in annotations
    secret = found[("Secret", router.AUTH_SECRET)]
    # The Secret is Pulumi's (its content derives from a secret), never in gitops/.
    assert not any(f.parent.name == "gitops" and d["kind"] == "Secret" for f, d in docs(result))
    assert secret["stringData"] == {} or set(secret["stringData"]) == {router.AUTH_KEY}


def test_the_auth_secret_holds_digests_and_a_new_key_rolls_the_router(medium):
    """The Secret's content is model_router.auth_include of the apiKey: the key's SHA-256, not
    the key; the pod annotation is the include's digest, so it changes with the key."""
    key_a, key_b = "sk-" + "a" * 40, "sk-" + "b" * 40
    data_a, data_b = router.auth_secret_data([key_a]), router.auth_secret_data([key_b])
    assert set(data_a) == {router.AUTH_KEY}
    assert key_a not in data_a[router.AUTH_KEY] and model_router.key_digest(key_a) in data_a[router.AUTH_KEY]
    assert router.auth_checksum(data_a[router.AUTH_KEY]) != router.auth_checksum(data_b[router.AUTH_KEY])


@pytest.mark.parametrize("name", ["medium-prod", "medium-gitops"])
def test_router_manifests_are_rendered_for_the_validators(medium, name):
    # kubernetes-validate, the CRD schemas and checkov run on these files with every other
    # manifest: tests/render/test_example_stacks.py (medium-prod) and
    # tests/medium/test_validators.py (medium-gitops).
    files = [f.name for f, doc in docs(medium[name]) if doc["metadata"]["name"].startswith(("tierscale-model-router", "allow-gateway-to-model-router", "allow-model-router"))]
    assert len(files) == 8  # with the auth Secret


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


def test_ingress_and_httproute_send_every_path_to_the_router(medium):
    """Issue 18 item 1: no `/<model>/` prefix straight to a vLLM Service; the router is the only
    backend of the entry point."""
    stack = medium["medium-prod"].stack
    (ingress,) = [d for _, d in docs(medium["medium-prod"]) if d["kind"] == "Ingress"]
    backends = {(p["path"], p["pathType"], p["backend"]["service"]["name"])
                for r in ingress["spec"]["rules"] for p in r["http"]["paths"]}
    assert backends == {("/", "Prefix", router.ROUTER_NAME)}
    assert "nginx.ingress.kubernetes.io/rewrite-target" not in ingress["metadata"]["annotations"]
    https = stack.spec.platform.model_copy(update={"routing": stack.spec.platform.routing.model_copy(
        update={"kind": "httproute", "gateway_name": "gw"})})
    route_stack = type(stack)(**{**stack.__dict__, "spec": stack.spec.model_copy(update={"platform": https})})
    route = network.http_route(route_stack, "llm")
    assert [(r["matches"], r["backendRefs"]) for r in route["spec"]["rules"]] == [
        ([{"path": {"type": "PathPrefix", "value": "/"}}], [{"name": router.ROUTER_NAME, "port": 8000}])]
    schema = paths.schemas_dir() / "crds" / "gateway.networking.k8s.io" / "httproute_v1.json"
    import json
    jsonschema.Draft7Validator(json.loads(schema.read_text())).validate(route)


def _local(conf: str, work, servers: dict[str, str], keys: tuple[str, ...] = (KEY,)) -> tuple[str, int, int]:
    """The ConfigMap's nginx.conf with only addresses and paths changed for 127.0.0.1, and the
    auth Secret's content (for `keys`) where the Secret would be mounted."""
    for service, address in servers.items():
        assert f"server {service} " in conf, service
        conf = conf.replace(service, address)  # upstream servers, probe upstreams, proxy_pass
    port, status_port = free_port(), free_port()
    conf = re.sub(r"listen 8000;", f"listen 127.0.0.1:{port};", conf)
    conf = re.sub(r"listen 8081;", f"listen 127.0.0.1:{status_port};", conf)
    conf = conf.replace("/etc/nginx/tierscale/model_router.js", str(work / "model_router.js"))
    (work / router.AUTH_KEY).write_text(router.auth_secret_data(list(keys))[router.AUTH_KEY])
    conf, n = re.subn(rf"include {re.escape(router.AUTH_DIR)}/[^;]*;", f"include {work / router.AUTH_KEY};", conf)
    assert n == 1
    conf = conf.replace("pid /tmp/nginx.pid", f"pid {work}/nginx.pid").replace("error_log stderr", f"error_log {work}/logs/error.log")
    conf = conf.replace("access_log /dev/stdout", f"access_log {work}/logs/access.log")
    conf = re.sub(r"(_temp_path) /tmp/", rf"\1 {work}/tmp/", conf)
    assert "svc.cluster.local" not in conf
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
        assert unknown.status_code == 404 and "gpt-4o" in unknown.text  # the gateway's own OpenAI-style 404
        assert httpx.get(f"{url}/v1/models", timeout=30).status_code == 401
        # The router itself refuses a missing or wrong key: no replica sees the request.
        before = {n: s.stats()["requests"] for n, s in stubs.items()}
        body = {"model": stack.models[0].served_model_name, "messages": [{"role": "user", "content": "hi"}]}
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            assert httpx.post(f"{url}/v1/chat/completions", headers=headers, json=body, timeout=30).status_code == 401
        assert {n: s.stats()["requests"] for n, s in stubs.items()} == before
    finally:
        nginx.stop()
        for s in stubs.values():
            s.kill()


def test_the_router_splits_body_routed_traffic_by_the_canary_weight(medium, tmp_path):
    """Issue 20 item 2: ordinary OpenAI requests (`/v1/chat/completions`, `model` in the body)
    reach the canary's Service for `weight`% of requests. The rendered router config, run on
    127.0.0.1 in front of a stable and a canary stub: 400 requests at weight 5 must give the
    canary a share inside the binomial 4-sigma band [3, 37] around 20 (nginx's smooth weighted
    round robin gives exactly 20; without weights least_conn gives about 200)."""
    stack = medium["medium-prod"].stack
    ns = stack.spec.target.namespace
    m = stack.models[-1]
    options = ServingOptions(canaries=(Canary(m.name, "rev-2", 5, 1),))
    conf = router.nginx_conf(stack, ns, options=options)
    assert f"server {router.service_address(m.name, ns)} weight=95 " in conf
    assert f"server {router.service_address(m.name + '-canary', ns)} weight=5 " in conf
    stable, canary = start_stubs(2, api_key=KEY, model=m.served_model_name)
    others = {o.name: start_stubs(1, api_key=KEY, model=o.served_model_name)[0] for o in stack.models if o is not m}
    addresses = {router.service_address(m.name, ns): stable.address,
                 router.service_address(m.name + "-canary", ns): canary.address,
                 **{router.service_address(n, ns): s.address for n, s in others.items()}}
    (tmp_path / "model_router.js").write_text(model_router.router_js())
    local, port, status_port = _local(conf, tmp_path, addresses)
    nginx = Nginx(local, tmp_path).start()
    n = 400
    try:
        wait_http(f"http://127.0.0.1:{status_port}/gateway/health")
        body = {"model": m.served_model_name, "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=AUTH, timeout=30) as client:
            codes = [client.post("/v1/chat/completions", json=body).status_code for _ in range(n)]
        assert codes.count(200) == n
        hits = {"stable": stable.stats()["requests"], "canary": canary.stats()["requests"]}
        assert hits["stable"] + hits["canary"] >= n
        share = hits["canary"]
        print(f"canary split: {hits} of {n} body-routed requests at weight 5")
        assert 3 <= share <= 37, hits
    finally:
        nginx.stop()
        for s in (stable, canary, *others.values()):
            s.kill()
