"""Issue 22 wired on Kubernetes: a model's `kvCache` reaches its pods (memory, volumes, the L4
claim) on Deployments and LeaderWorkerSets, `platform.routing.inferencePool` makes the model
router send each model's requests to the internal Gateway with X-Gateway-Model-Name (run for
real: the router's nginx.conf in front of a recording stand-in for the Gateway), and bad values
are refused at resolution (exit 2, the key named, nothing rendered)."""

from __future__ import annotations

import json
import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import yaml

from components import paths
from components.medium import inference_pool, router
from components.render import render_stack
from components.serving import kv_cache
from components.validate import registry
from tests.medium.test_router import AUTH, KEY, _local
from tests.support.in_process import run_in_process
from tests.support.processes import Nginx, wait_http

KV = {"cpuOffloadGb": 40, "disk": {"sizeGb": 500, "storageClass": "local-nvme"},
      "remote": {"kind": "sharedFilesystem", "sizeGb": 2000, "storageClass": "efs-sc"}}


def _models_with_kv(stack: str, kv: dict) -> str:
    config = yaml.safe_load((paths.STACKS_DIR / f"Pulumi.{stack}.yaml").read_text())["config"]
    return json.dumps([{**m, "kvCache": kv} for m in config["tierscale:models"]])


@pytest.fixture(scope="module")
def pooled(tmp_path_factory):
    """medium-prod (two single-node models) with every KV tier and KV-aware routing."""
    return render_stack("medium-prod", tmp_path_factory.mktemp("kv") / "out", extra_config={
        "tierscale:models": _models_with_kv("medium-prod", KV),
        "tierscale:platform": json.dumps({"routing": {"inferencePool": {}}})})


@pytest.fixture(scope="module")
def multinode(tmp_path_factory):
    """medium-405b (LeaderWorkerSet, 2 nodes per replica) with every KV tier."""
    return render_stack("medium-405b", tmp_path_factory.mktemp("kv405") / "out",
                        extra_config={"tierscale:models": _models_with_kv("medium-405b", KV)})


def _docs(out):
    docs = []
    for f in sorted((out / "kubernetes").rglob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(f.read_text()) if isinstance(d, dict)]
    return docs


def _gib(quantity: str) -> int:
    assert quantity.endswith("Gi"), quantity
    return int(quantity[:-2])


def _pods(doc):
    if doc["kind"] == "Deployment":
        return [doc["spec"]["template"]["spec"]]
    lws = doc["spec"]["leaderWorkerTemplate"]
    return [lws["leaderTemplate"]["spec"], lws["workerTemplate"]["spec"]]


def _check_kv_pods(result, kind):
    docs = _docs(result.out_dir)
    claims = {d["metadata"]["name"]: d for d in docs if d["kind"] == "PersistentVolumeClaim"}
    workloads = [d for d in docs if d["kind"] == kind and d["metadata"]["labels"].get("app.kubernetes.io/component") == "vllm"]
    assert len(workloads) == len(result.stack.models) >= 1
    for doc, m in zip(workloads, result.stack.models):
        extra = kv_cache.memory_gib(m.spec.kv_cache, m.nodes_per_replica)
        assert extra == -(-40 // m.nodes_per_replica)
        for pod in _pods(doc):
            (c,) = pod["containers"]
            res = c["resources"]
            assert _gib(res["requests"]["memory"]) == 32 * m.gpus_per_node + extra
            assert _gib(res["limits"]["memory"]) == 64 * m.gpus_per_node + extra
            vols = {v["name"]: v for v in pod["volumes"]}
            mounts = {v["name"]: v["mountPath"] for v in c["volumeMounts"]}
            assert mounts[kv_cache.DISK_VOLUME] == kv_cache.LOCAL_MOUNT
            assert mounts[kv_cache.SHARED_VOLUME] == kv_cache.SHARED_MOUNT
            spec = vols[kv_cache.DISK_VOLUME]["ephemeral"]["volumeClaimTemplate"]["spec"]
            assert spec["resources"]["requests"]["storage"] == "500Gi" and spec["storageClassName"] == "local-nvme"
            claim = claims[vols[kv_cache.SHARED_VOLUME]["persistentVolumeClaim"]["claimName"]]
            assert claim["spec"]["accessModes"] == ["ReadWriteMany"] and claim["spec"]["storageClassName"] == "efs-sc"
            assert claim["metadata"]["namespace"] == doc["metadata"]["namespace"]
        # The flags point vLLM's fs tiers at exactly the mounted paths.
        args = _pods(doc)[0]["containers"][0]["args"]
        config = json.loads(args[args.index("--kv-transfer-config") + 1])
        roots = [t["root_dir"] for t in config["kv_connector_extra_config"]["secondary_tiers"]]
        assert roots == [kv_cache.LOCAL_MOUNT, kv_cache.SHARED_MOUNT]


def test_deployments_get_the_kv_memory_volumes_and_claim(pooled):
    _check_kv_pods(pooled, "Deployment")


def test_leader_worker_sets_get_them_on_every_node(multinode):
    _check_kv_pods(multinode, "LeaderWorkerSet")


@pytest.mark.parametrize("which", ["pooled", "multinode"])
def test_validators_pass(request, which):
    result = request.getfixturevalue(which)
    for outcome in registry.validate_rendered(result.stack, result.out_dir):
        assert outcome.ok, f"{outcome.name}: {outcome.detail}"


def test_kubernetes_validate_fails_a_broken_kv_volume(pooled, tmp_path):
    """The validators see the KV volume: a claim template without its spec is refused."""
    out = tmp_path / "out"
    shutil.copytree(pooled.out_dir, out)
    (path,) = list((out / "kubernetes").glob("*deployment-*-vllm-llama-8b.yaml"))
    doc = yaml.safe_load(path.read_text())
    vol = next(v for v in doc["spec"]["template"]["spec"]["volumes"] if v["name"] == kv_cache.DISK_VOLUME)
    vol["ephemeral"]["volumeClaimTemplate"]["spec"]["accessModes"] = "ReadWriteOnce"  # not a list
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert not registry.kubernetes_builtin(out).ok


# --- KV-aware routing through the model router ----------------------------------------------


def _router_conf(result) -> str:
    (cm,) = [d for d in _docs(result.out_dir) if d["kind"] == "ConfigMap" and d["metadata"]["name"] == router.ROUTER_NAME]
    return cm["data"]["nginx.conf"]


def test_router_upstreams_are_the_internal_gateway_with_the_model_header(pooled):
    stack = pooled.stack
    conf = _router_conf(pooled)
    gateway = inference_pool.gateway_address(stack)
    assert gateway == "inference-gateway-internal.gateway-system.svc.cluster.local:80"
    assert "svc.cluster.local:8000" not in conf  # no model Service is an upstream any more
    for m in stack.models:
        up = re.search(rf"upstream vllm_{m.name.replace('-', '_')} \{{(.*?)\}}", conf, re.S).group(1)
        assert re.findall(r"server (\S+)", up) == [gateway]
        for loc in (f"location @vllm_{m.name.replace('-', '_')} {{",
                    f"location = /_tierscale/models/vllm_{m.name.replace('-', '_')} {{"):
            block = conf.split(loc, 1)[1].split("}", 1)[0]
            assert f'proxy_set_header X-Gateway-Model-Name "{m.name}";' in block, loc
    # The router stays the only way in; its egress reaches the internal Gateway's namespace.
    policies = {d["metadata"]["name"]: d for d in _docs(pooled.out_dir) if d["kind"] == "NetworkPolicy"}
    egress = policies["allow-model-router-egress-to-inference-gateway"]["spec"]
    assert egress["podSelector"] == {"matchLabels": router.selector()}
    assert egress["egress"] == [{"to": [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "gateway-system"}}}]}]
    ingress = [d for d in _docs(pooled.out_dir) if d["kind"] == "Ingress"]
    assert [p["backend"]["service"]["name"] for d in ingress for r in d["spec"]["rules"]
            for p in r["http"]["paths"]] == [router.ROUTER_NAME]


def test_a_changed_template_fails_the_render_not_the_cluster(pooled):
    stack = pooled.stack
    servers, _ = router.upstreams(stack, "inference")
    conf = router.nginx_conf(stack.__class__(**{**stack.__dict__, "spec": stack.spec.model_copy(update={
        "platform": stack.spec.platform.model_copy(update={"routing": stack.spec.platform.routing.model_copy(
            update={"inference_pool": None})})})}), "inference", servers)
    with pytest.raises(ValueError, match="pool header"):
        router.with_model_headers(conf.replace("location @vllm_llama_8b {", "location @renamed {"), stack, servers)
    with pytest.raises(ValueError, match="not to one model's upstreams"):
        router.with_model_headers(conf.replace("proxy_pass http://vllm_llama_8b$uri", "proxy_pass http://other$uri"),
                                  stack, servers)
    # Every location that proxies for a model got the header once: request, /v1/models, probe.
    header_conf = router.with_model_headers(conf, stack, servers)
    for m in stack.models:
        assert header_conf.count(f'proxy_set_header X-Gateway-Model-Name "{m.name}";') == 3


class _Gateway(BaseHTTPRequestHandler):
    """Stands in for the internal Gateway: records each request's X-Gateway-Model-Name and
    answers as the model's pool would."""

    seen: list = []

    def log_message(self, *args):  # quiet
        pass

    def _answer(self, body: dict, status: int = 200):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        model = self.headers.get("X-Gateway-Model-Name")
        self.seen.append(("GET", self.path, model))
        if model is None:  # the pool route matches only with the header: the Gateway's 404
            return self._answer({"detail": "no route"}, 404)
        if self.path == "/v1/models":
            return self._answer({"object": "list", "data": [{"id": self.server.served[model], "object": "model"}]})
        return self._answer({})

    def do_POST(self):
        model = self.headers.get("X-Gateway-Model-Name")
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append(("POST", self.path, model))
        if model is None:
            return self._answer({"detail": "no route"}, 404)
        self._answer({"model": body["model"], "pool": model, "object": "chat.completion", "choices": []})


def test_the_router_sends_each_model_to_its_pool(pooled, tmp_path):
    stack = pooled.stack
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    server.served = {m.name: m.served_model_name for m in stack.models}
    _Gateway.seen = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    (tmp_path / "model_router.js").write_text((paths.TEMPLATES_DIR / "gateway" / "model_router.js").read_text())
    conf, port, status_port = _local(_router_conf(pooled), tmp_path,
                                     {inference_pool.gateway_address(stack): f"127.0.0.1:{server.server_port}"})
    nginx = Nginx(conf, tmp_path).start()
    try:
        wait_http(f"http://127.0.0.1:{status_port}/gateway/health")
        url = f"http://127.0.0.1:{port}"
        for m in stack.models:
            # A client's own header never decides the pool: the router sets it from the body.
            resp = httpx.post(f"{url}/v1/chat/completions", timeout=30,
                              headers={**AUTH, "X-Gateway-Model-Name": "someone-elses-model"},
                              json={"model": m.served_model_name, "messages": [{"role": "user", "content": "hi"}]})
            assert resp.status_code == 200, resp.text
            assert resp.json()["pool"] == m.name
        listed = httpx.get(f"{url}/v1/models", headers=AUTH, timeout=30).json()
        assert sorted(d["id"] for d in listed["data"]) == sorted(m.served_model_name for m in stack.models)
        before = len(_Gateway.seen)
        # Without the key the router answers 401 itself: the Gateway never sees the request.
        assert httpx.post(f"{url}/v1/chat/completions", timeout=30, json={
            "model": stack.models[0].served_model_name, "messages": []}).status_code == 401
        assert len(_Gateway.seen) == before
        assert {s[2] for s in _Gateway.seen} == {m.name for m in stack.models}
    finally:
        nginx.stop()
        server.shutdown()


# --- refusals at resolution ---------------------------------------------------------------------


def _refused(tmp_path, config: dict):
    (tmp_path / "Pulumi.case.yaml").write_text(yaml.safe_dump({"config": config}, sort_keys=False))
    proc = run_in_process("render", "--stack", "case", "--stacks-dir", str(tmp_path), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()
    return proc.stderr


def _stack_config(name: str) -> dict:
    return yaml.safe_load((paths.STACKS_DIR / f"Pulumi.{name}.yaml").read_text())["config"]


def test_offload_the_nodes_do_not_have_exits_2_naming_the_key(tmp_path):
    config = _stack_config("medium-eks")
    config["tierscale:models"][0]["kvCache"] = {"cpuOffloadGb": 4000}
    err = _refused(tmp_path, config)
    assert "models[0].kvCache.cpuOffloadGb: 4000 GiB does not fit on p5.48xlarge" in err


def test_pool_on_the_client_facing_gateway_exits_2_naming_the_key(tmp_path):
    config = _stack_config("medium-eks")
    config["tierscale:platform"]["routing"]["inferencePool"] = {"gatewayName": "inference-gateway"}
    err = _refused(tmp_path, config)
    assert "platform.routing.inferencePool.gatewayName: must not be the client-facing Gateway" in err


def test_router_affinity_with_a_pool_exits_2_naming_the_key(tmp_path):
    config = _stack_config("medium-eks")
    config["tierscale:platform"]["routing"]["inferencePool"] = {}
    config["tierscale:models"][0]["routing"] = {"affinity": "prefix"}
    err = _refused(tmp_path, config)
    # Refused before resolution: the Kubernetes router holds one upstream per model, so affinity
    # never applies there (components/spec/rules.py), pool or not; the pool is the prefix-aware path.
    assert "models[0].routing.affinity: 'prefix' needs the small tier's nginx gateway" in err
    assert "platform.routing.inferencePool" in err
