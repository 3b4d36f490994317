"""Invariants of the large tier: failover time vs topology, N+1, spot share vs load time, model
buckets, canary routing, and every region's manifests through the validators."""

from __future__ import annotations

import json

import pytest
import yaml

from components.large import facts, sizing
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


def test_canary_weights_and_retries(large):
    prod = large["large-prod"]
    for region in ("us-east-1", "eu-west-1"):
        route = docs(prod, region, "HTTPRoute")[0]
        refs = next(r["backendRefs"] for r in route["spec"]["rules"] if r["backendRefs"][0]["name"] == "vllm-llama-8b")
        assert [(r["name"], r["weight"]) for r in refs] == [("vllm-llama-8b", 95), ("vllm-llama-8b-canary", 5)]
    vs = docs(large["large-ga"], "use1", "VirtualService")[0]
    http = vs["spec"]["http"][0]
    assert [r["weight"] for r in http["route"]] == [95, 5]
    assert http["retries"]["retryOn"] == "connect-failure,refused-stream" and "perTryTimeout" not in http["retries"]


def test_region_label_on_every_series(large):
    for region in ("us-east-1", "eu-west-1", "idc-fra"):
        for sm in docs(large["large-prod"], region, "ServiceMonitor"):
            assert {"action": "replace", "targetLabel": "region", "replacement": region} in \
                sm["spec"]["endpoints"][0]["relabelings"]
        values = yaml.safe_load((large["large-prod"].out_dir / region / "helm/kps.values.yaml").read_text())
        assert values["prometheus"]["prometheusSpec"]["externalLabels"]["region"] == region


@pytest.mark.parametrize("name", ["large-prod", "large-ga"])
def test_every_validator_passes_for_every_region(large, name):
    outcomes = validate_rendered(large[name].stack, large[name].out_dir)
    assert len(outcomes) == 5
    for o in outcomes:
        assert o.ok, f"{o.name}: {o.detail}"
