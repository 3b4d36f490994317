"""Invariants of the large tier: failover time vs topology, N+1, spot share vs load time, model
buckets, canary routing, and every region's manifests through the validators."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess

import pytest
import yaml

from components import paths
from components.large import facts, regional, sizing
from components.medium import router
from components.spec import SpecError
from components.render import render_stack
from components.validate.registry import validate_rendered


def docs(result, region, kind):
    out = []
    for folder in ("kubernetes", "gitops"):
        for f in sorted((result.out_dir / region / folder).glob("*.yaml")):
            d = yaml.safe_load(f.read_text())
            if d["kind"] == kind:
                out.append(d)
    return out


def test_failover_time_meets_the_topology_rto(large):
    for name in large:
        spec = large[name].stack.spec
        f = sizing.failover(spec.large.global_traffic, spec.large.topology)
        assert f.meets_rto and f.rto_s == facts.topology(spec.large.topology).rto_s
        report = large[name].outputs["large"]["failover"]
        assert report["totalS"] == f.total_s <= report["rtoS"]
    prod = large["large-prod"].outputs["large"]["failover"]
    assert (prod["healthCheckS"], prod["dnsTtlS"], prod["totalS"]) == (20, 10, 30)


def _refused(tmp_path, config) -> list:
    with pytest.raises(SpecError) as err:
        render_stack("large-prod", tmp_path / "out", extra_config=config)
    return err.value.problems


def test_route53_with_60s_ttl_cannot_meet_30s_and_says_what_would(tmp_path):
    stack = yaml.safe_load(open("stacks/Pulumi.large-prod.yaml"))["config"]["tierscale:large"]
    stack["globalTraffic"]["ttlS"] = 60
    problems = _refused(tmp_path, {"tierscale:large": json.dumps(stack)})
    p = next(p for p in problems if p.path == "large.globalTraffic.ttlS")
    assert "80 s" in p.message and "30 s RTO" in p.message
    assert "ttlS <= 10" in p.message and "globalAccelerator" in p.message


def test_n_plus_one_holds_and_a_short_fleet_is_refused(large, tmp_path):
    for n in large["large-prod"].outputs["large"]["nPlusOne"].values():
        assert n["holds"] and n["withoutLargestQps"] >= n["peakQps"]
    target = yaml.safe_load(open("stacks/Pulumi.large-prod.yaml"))["config"]["tierscale:target"]
    for region in target["regions"][1:]:
        for m in region["models"]:
            if m["name"] == "llama-8b":
                m["minReplicas"] = m["maxReplicas"] = 1
    problems = _refused(tmp_path, {"tierscale:target": json.dumps(target)})
    p = next(p for p in problems if "N+1" in p.message)
    assert p.path == "target.regions[0].models" and "llama-8b" in p.message and "add >=" in p.message


def test_spot_only_where_load_fits_the_notice_or_the_floor_covers(large, tmp_path):
    result = large["large-prod"]
    models = {m.name: m for m in result.stack.models}
    notice = facts.spot_notice_s()
    for region in result.stack.spec.target.regions:
        verdicts = result.outputs["large"]["spot"][region.name]
        floor_gpus = sizing.floor_nodes(result.stack.spec, region, models) * result.stack.spec.gpu.per_node
        pools = docs(result, region.name, "NodePool")
        if region.cluster != "eks":
            assert not pools and not any(v["spot"] for v in verdicts.values())
            continue
        for name, v in verdicts.items():
            assert v["spot"] == (models[name].startup_budget_s <= notice or floor_gpus >= sizing.min_gpus(region, models))
        on_demand = next(p for p in pools if p["metadata"]["name"] == "gpu-on-demand")
        spot = next(p for p in pools if p["metadata"]["name"] == "gpu-spot")
        assert int(on_demand["spec"]["limits"]["nvidia.com/gpu"]) == floor_gpus >= sizing.min_gpus(region, models)
        assert on_demand["spec"]["weight"] > spot["spec"]["weight"]
        for p in pools:
            assert p["spec"]["disruption"]["consolidationPolicy"] == "WhenEmpty"
            assert p["spec"]["template"]["spec"]["taints"][0]["key"] == "nvidia.com/gpu"
    target = yaml.safe_load(open("stacks/Pulumi.large-prod.yaml"))["config"]["tierscale:target"]
    target["regions"][0]["onDemandFloorNodes"] = 1
    problems = _refused(tmp_path, {"tierscale:target": json.dumps(target)})
    assert any(p.path == "target.regions[0].onDemandFloorNodes" and "notice" in p.message for p in problems), problems


def test_model_buckets_are_versioned_encrypted_private_and_replicated(large):
    result = large["large-prod"]
    of = lambda t: [r for r in result.resources if r.type == t]  # noqa: E731
    buckets = of("aws:s3/bucket:Bucket")
    assert len(buckets) == 2  # the two EKS regions; the IDC loads from Hugging Face
    for b in buckets:
        bid = f"{b.name}-id"
        assert any(v.inputs["bucket"] == bid and v.inputs["versioningConfiguration"]["status"] == "Enabled"
                   for v in of("aws:s3/bucketVersioning:BucketVersioning"))
        assert any(e.inputs["bucket"] == bid for e in of(
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"))
        pab = next(p for p in of("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock") if p.inputs["bucket"] == bid)
        assert all(pab.inputs[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                                   "restrictPublicBuckets"))
    replication = of("aws:s3/bucketReplicationConfig:BucketReplicationConfig")
    assert len(replication) == 1
    rule = replication[0].inputs["rules"][0]
    assert rule["destination"]["replicationTime"] == {"status": "Enabled", "time": {"minutes": 15}}
    assert rule["destination"]["metrics"]["status"] == "Enabled"


def test_vllm_streams_from_the_regional_bucket_and_cold_start_is_reported(large):
    result = large["large-prod"]
    for region, bucket in (("us-east-1", "large-prod-us-east-1-models"), ("eu-west-1", "large-prod-eu-west-1-models")):
        for d in docs(result, region, "Deployment"):
            if not d["metadata"]["name"].startswith("vllm-"):
                continue
            c = next(c for c in d["spec"]["template"]["spec"]["containers"] if c["name"] == "vllm")
            assert c["args"][0].startswith(f"s3://{bucket}/models/") and "runai_streamer" in c["args"]
            assert d["spec"]["template"]["spec"]["serviceAccountName"] == "tierscale-model-reader"
            assert d["spec"]["template"]["metadata"]["labels"]["region"] == region
    for d in docs(result, "idc-fra", "Deployment"):
        if d["metadata"]["name"].startswith("vllm-"):
            assert not d["spec"]["template"]["spec"]["containers"][0]["args"][0].startswith("s3://")
    for name, c in result.outputs["large"]["coldStart"].items():
        assert c["coldStartS"] < c["startupBudgetS"], name


def _router_conf(result, region) -> str:
    (cm,) = [d for d in docs(result, region, "ConfigMap") if d["metadata"]["name"] == router.ROUTER_NAME]
    return cm["data"]["nginx.conf"]


def test_canary_serves_its_own_revision(large):
    """Issue 20 item 2: the canary Deployment runs its own revision: its own S3 prefix with the
    streamer (EKS regions), `--revision` from Hugging Face (the existing cluster); the stable
    Deployment keeps the stable weights."""
    prod = large["large-prod"]
    (c,) = prod.stack.spec.large.canary.models
    model = prod.stack.model(c.name)

    def vllm(region, name):
        (d,) = [d for d in docs(prod, region, "Deployment") if d["metadata"]["name"] == name]
        return d, next(x for x in d["spec"]["template"]["spec"]["containers"] if x["name"] == "vllm")

    for region, bucket in (("us-east-1", "large-prod-us-east-1-models"), ("eu-west-1", "large-prod-eu-west-1-models")):
        _, stable = vllm(region, f"vllm-{c.name}")
        canary_doc, canary = vllm(region, f"vllm-{c.name}-canary")
        assert stable["args"][0] == f"s3://{bucket}/models/{model.hf_repo}"
        assert canary["args"][0] == f"s3://{bucket}/models/{model.hf_repo}/{c.revision}"
        assert "--revision" not in canary["args"] and "runai_streamer" in canary["args"]
        assert canary_doc["spec"]["replicas"] == c.replicas
        # Everything else is the stable model's: same served name, same engine arguments.
        assert canary["args"][1:] == stable["args"][1:]
    _, stable = vllm("idc-fra", f"vllm-{c.name}")
    _, canary = vllm("idc-fra", f"vllm-{c.name}-canary")
    assert canary["args"][0] == stable["args"][0] == model.hf_repo
    k = canary["args"].index("--revision")
    assert canary["args"][k + 1] == c.revision and "--revision" not in stable["args"]


def test_router_splits_body_routed_traffic_and_routes_only_to_the_router(large):
    """Every region's entry point sends every path to the model router (no per-model prefix);
    the router's upstream for the canaried model holds both Services at 95:5 (the live split is
    measured in tests/medium/test_router.py); with `canary.routing: virtualservice` the router
    sends to the stable Service and Istio splits (and retries only what never reached vLLM)."""
    prod = large["large-prod"]
    (c,) = prod.stack.spec.large.canary.models
    for region in prod.stack.spec.target.regions:
        ns = sizing.namespace(region)
        (route,) = docs(prod, region.name, "HTTPRoute")
        assert [r["backendRefs"] for r in route["spec"]["rules"]] == [[{"name": router.ROUTER_NAME, "port": 8000}]]
        assert region.gateway.hostname in route["spec"]["hostnames"]
        conf = _router_conf(prod, region.name)
        assert f"server {router.service_address(c.name, ns)} weight={100 - c.weight} " in conf
        assert f"server {router.service_address(c.name + '-canary', ns)} weight={c.weight} " in conf
    ga = large["large-ga"]
    conf = _router_conf(ga, "use1")
    assert "-canary" not in conf
    vs = docs(ga, "use1", "VirtualService")[0]
    http = vs["spec"]["http"][0]
    assert [r["weight"] for r in http["route"]] == [95, 5]
    assert http["route"][1]["destination"]["host"].startswith("vllm-llama-8b-canary.")
    assert http["retries"]["retryOn"] == "connect-failure,refused-stream" and "perTryTimeout" not in http["retries"]


def _series_labels(pod_labels: dict, ns: str, endpoint: dict) -> dict:
    """The labels Prometheus puts on a scraped series: the operator's `namespace`, then the
    ServiceMonitor's relabelings (action replace: sourceLabels joined by ';', default regex
    (.*), replacement $1; an empty result drops the label)."""
    meta = {f"__meta_kubernetes_pod_label_{''.join(ch if ch.isalnum() else '_' for ch in k)}": v
            for k, v in pod_labels.items()}
    out = {"namespace": ns}
    for r in endpoint["relabelings"]:
        assert r.get("action", "replace") == "replace"
        value = r["replacement"] if "sourceLabels" not in r else ";".join(meta.get(s, "") for s in r["sourceLabels"])
        if value:
            out[r["targetLabel"]] = value
        else:
            out.pop(r["targetLabel"], None)
    return out


def _selects(selector: str, labels: dict) -> bool:
    import re
    return all(labels.get(k) == v for k, v in re.findall(r'(\w+)="([^"]*)"', selector))


def test_the_gates_can_compare_canary_with_stable(large):
    """The migration gates' canary/stable selectors (components/migration/rollouts.selectors:
    namespace, model, track) pick exactly the canary's and the stable pods' series, through each
    Deployment's pod labels and its ServiceMonitor's relabelings; each series carries its region."""
    from components.migration import gates, rollouts

    prod = large["large-prod"]
    (c,) = prod.stack.spec.large.canary.models
    for region in prod.stack.spec.target.regions:
        ns = sizing.namespace(region)
        canary_sel, stable_sel = rollouts.selectors(ns, c.name)
        monitors = {d["metadata"]["name"]: d for d in docs(prod, region.name, "ServiceMonitor")}
        series = {}
        for name in (f"vllm-{c.name}", f"vllm-{c.name}-canary"):
            (d,) = [d for d in docs(prod, region.name, "Deployment") if d["metadata"]["name"] == name]
            sm = monitors[name]
            assert sm["spec"]["selector"]["matchLabels"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
            series[name] = _series_labels(d["spec"]["template"]["metadata"]["labels"], ns, sm["spec"]["endpoints"][0])
            assert series[name]["region"] == region.name
        canary, stable = series[f"vllm-{c.name}-canary"], series[f"vllm-{c.name}"]
        assert _selects(canary_sel, canary) and not _selects(canary_sel, stable)
        assert _selects(stable_sel, stable) and not _selects(stable_sel, canary)
        gate_list = regional.canary_gates(regional.region_stack(prod.stack, region),
                                          regional.serving_options(region, regional.region_stack(prod.stack, region),
                                                                   None, "models", prod.stack.spec.large.canary))[c.name]
        assert [g.name for g in gate_list] == [g.name for g in gates.gates(canary_sel, stable_sel, 500, 100)]
        assert any(canary_sel in g.promql and stable_sel in g.promql for g in gate_list)
        rules = prod.out_dir / region.name / "canary/gates.rules.yaml"
        proc = subprocess.run([shutil.which("promtool") or "/usr/bin/promtool", "check", "rules", str(rules)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_region_label_on_every_series(large):
    for region in ("us-east-1", "eu-west-1", "idc-fra"):
        for sm in docs(large["large-prod"], region, "ServiceMonitor"):
            assert {"action": "replace", "targetLabel": "region", "replacement": region} in \
                sm["spec"]["endpoints"][0]["relabelings"]
        values = yaml.safe_load((large["large-prod"].out_dir / region / "helm/kps.values.yaml").read_text())
        assert values["prometheus"]["prometheusSpec"]["externalLabels"]["region"] == region


# large-prod itself passes every validator per region in tests/render/test_example_stacks.py
# (`validate --strict`); here the Global Accelerator variant.
@pytest.mark.parametrize("name", ["large-ga"])
def test_every_validator_passes_for_every_region(large, name):
    outcomes = validate_rendered(large[name].stack, large[name].out_dir)
    assert len(outcomes) >= 5  # kubernetes-validate, CRD schemas, Helm values keys, checkov, metric names, ...
    for o in outcomes:
        assert o.ok, f"{o.name}: {o.detail}"


def test_regions_may_share_a_namespace(tmp_path):
    """Issue 20 item 5: an ApplicationSet deploys the same namespace to every cluster; regional
    objects are named by region, so every region may use it."""
    regions = yaml.safe_load((paths.STACKS_DIR / "Pulumi.large-prod.yaml").read_text())["config"]["tierscale:target"]
    for r in regions["regions"]:
        r["namespace"] = "inference"
    result = render_stack("large-prod", tmp_path / "same-ns", extra_config={"tierscale:target": json.dumps(regions)})
    names = [r.name for r in result.resources if r.type.startswith("kubernetes:")]
    assert len(names) == len(set(names))
    for region in regions["regions"]:
        (route,) = docs(result, region["name"], "HTTPRoute")
        assert route["metadata"]["namespace"] == "inference"



# --- spec-level rules, loaded in-process (no render) ------------------------------------------


def _load(overrides: dict):
    """large-prod's config with `overrides` (parsed values by key), through load_spec."""
    from components.spec.loader import load_spec
    from components.spec.pulumi_config import parse_value
    from components.spec.stack_file import read_stack

    config = read_stack("large-prod")
    values = {k.split(":", 1)[1]: parse_value(v) for k, v in config.values.items() if k.startswith("tierscale:")}
    values.update(overrides)
    return load_spec(values, {k.split(":", 1)[1] for k in config.secret_keys}, source="test", require_secrets=False)


def _large_prod(key: str):
    return copy.deepcopy(yaml.safe_load((paths.STACKS_DIR / "Pulumi.large-prod.yaml").read_text())["config"][f"tierscale:{key}"])


def test_every_model_is_resolved_and_planned_once(monkeypatch):
    """Issue 20 item 7: resolution -> placement -> tier rules, each once. The large tier's
    capacity rules get the models the resolver resolved (before: every model twice)."""
    from components.planner import placement
    from components.spec import model_resolution, rules

    calls = {"resolve": 0, "plan": 0, "solve": 0}

    def counting(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(rules, "resolve_entry", counting("resolve", model_resolution.resolve_entry))
    monkeypatch.setattr(model_resolution, "plan", counting("plan", model_resolution.plan))
    monkeypatch.setattr(placement, "solve", counting("solve", placement.solve))
    stack = _load({})
    regions = len(stack.spec.target.regions)
    assert calls == {"resolve": len(stack.models), "plan": len(stack.models), "solve": 1 + regions}


def test_capacity_rules_still_refuse_a_short_region():
    """The moved capacity rule (components/large/checks.resolved_problems) still runs: one
    region's minReplicas beyond its own GPU nodes is refused naming that region's model."""
    target = _large_prod("target")
    target["regions"][1]["gpuNodes"] = 1
    with pytest.raises(SpecError) as err:
        _load({"target": target})
    assert any(p.path.startswith("target.regions[1]") for p in err.value.problems), err.value.problems


def test_global_accelerator_rto_names_the_load_balancer_health_check():
    large = _large_prod("large")
    large["globalTraffic"] = {"kind": "globalAccelerator", "hostedZoneId": "Z0123456789ABCDEFGHIJ",
                              "domain": "llm.example.com",
                              "loadBalancerHealthCheck": {"intervalS": 30, "unhealthyThreshold": 5}}
    large["topology"] = "global"
    with pytest.raises(SpecError) as err:
        _load({"large": large})
    (p,) = [p for p in err.value.problems if "RTO" in p.message]
    assert p.path == "large.globalTraffic.loadBalancerHealthCheck"
    assert "healthCheck intervalS" not in p.message and "loadBalancerHealthCheck intervalS 5" in p.message
    assert "30 s x 5" in p.message


def test_health_check_port_that_contradicts_tls_is_refused_by_the_large_checks():
    large = _large_prod("large")
    tls = yaml.safe_load((paths.STACKS_DIR / "Pulumi.large-prod.yaml").read_text())["config"].get("tierscale:security", {})
    port = 80 if (tls.get("tls") or {}).get("enabled") else 443
    large["globalTraffic"]["healthCheck"] = {**large["globalTraffic"].get("healthCheck", {}), "port": port}
    with pytest.raises(SpecError) as err:
        _load({"large": large})
    assert "large.globalTraffic.healthCheck.port" in [p.path for p in err.value.problems]


def test_router_canary_split_is_accepted_behind_an_ingress():
    """canary.routing httproute is the model router's weighted split (components/medium/router.py),
    which works behind an Ingress as well as an HTTPRoute."""
    large = _large_prod("large")
    large.setdefault("platform", {}).setdefault("routing", {})["kind"] = "ingress"
    large["canary"] = {**(large.get("canary") or {}), "routing": "httproute"}
    if not large["canary"].get("models"):
        large["canary"]["models"] = [{"name": "llama-8b", "revision": "abc123", "weight": 5}]
    security = _large_prod("security")
    security["tls"]["clusterIssuer"] = "letsencrypt"  # the Ingress' certificate (kubernetes_rules)
    stack = _load({"large": large, "security": security})
    assert stack.spec.large.platform.routing.kind == "ingress" and stack.spec.large.canary.routing == "httproute"
