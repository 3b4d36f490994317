"""`tierscale:large:LargeTier` resource graphs under Pulumi's mocks: regional providers, records
and health checks, ordering after each cluster, nothing global on a region's provider."""

from __future__ import annotations

import pytest

from components.large import karpenter


def of_type(result, typ):
    return [r for r in result.resources if r.type == typ]


def by_urn(result):
    return {r.urn: r for r in result.resources}


def closure(result, resource) -> set[str]:
    urns = by_urn(result)
    seen, todo = set(), list(resource.dependencies)
    while todo:
        urn = todo.pop()
        if urn not in seen:
            seen.add(urn)
            todo += urns[urn].dependencies if urn in urns else []
    return seen


def ancestors(result, resource) -> list:
    urns, out, r = by_urn(result), [], resource
    while r.parent in urns:
        r = urns[r.parent]
        out.append(r)
    return out


def spoke_of(result, resource):
    return next((a.name for a in ancestors(result, resource) if a.type == "tierscale:large:RegionSpoke"), None)


def provider_urn(r) -> str:
    return r.provider.rsplit("::", 1)[0] if r.provider else ""


@pytest.mark.parametrize("name", ["large-prod", "large-ga"])
def test_each_regional_resource_uses_its_own_regions_provider(large, name):
    result = large[name]
    spokes = {r.name: r for r in of_type(result, "tierscale:large:RegionSpoke")}
    assert len(spokes) == 3
    aws_providers = {r.urn: r for r in of_type(result, "pulumi:providers:aws")}
    k8s_providers = {r.urn: r for r in of_type(result, "pulumi:providers:kubernetes")}
    regions = {s: r for s, r in ((f"large-prod-{reg.name}", reg) for reg in result.stack.spec.target.regions)}
    checked = 0
    for r in result.resources:
        spoke = spoke_of(result, r)
        if spoke is None:
            continue
        if r.type.startswith("aws:"):
            provider = aws_providers[provider_urn(r)]
            assert provider.inputs["region"] == regions[spoke].aws_region, f"{r.name} uses {provider.name}"
            assert spoke_of(result, provider) == spoke
            checked += 1
        elif r.type.startswith("kubernetes:"):
            assert spoke_of(result, k8s_providers[provider_urn(r)]) == spoke, f"{r.name} on another region's cluster"
            checked += 1
    assert checked > 100


@pytest.mark.parametrize("name", ["large-prod", "large-ga"])
def test_nothing_global_depends_on_a_regions_provider(large, name):
    result = large[name]
    hub = next(r for r in result.resources if r.type == "tierscale:large:GlobalTraffic")
    hub_provider = next(r for r in of_type(result, "pulumi:providers:aws") if r.parent == hub.urn)
    kind = result.stack.spec.large.global_traffic.kind
    assert hub_provider.inputs["region"] == ("us-east-1" if kind == "route53" else "us-west-2")
    hub_resources = [r for r in result.resources if r.parent == hub.urn and r.type.startswith("aws:")]
    assert hub_resources
    for r in hub_resources:
        assert provider_urn(r) == hub_provider.urn, f"{r.type} {r.name}"
        assert all(spoke_of(result, by_urn(result)[d]) is None for d in closure(result, r) if d in by_urn(result)), r.name


def test_route53_records_point_at_their_region_and_its_health_check(large):
    result = large["large-prod"]
    spec = result.stack.spec
    checks = {r.inputs["tags"]["tierscale:region"]: r for r in of_type(result, "aws:route53/healthCheck:HealthCheck")}
    records = of_type(result, "aws:route53/record:Record")
    alarms = of_type(result, "aws:cloudwatch/metricAlarm:MetricAlarm")
    assert len(checks) == len(records) == len(alarms) == 3
    hc = spec.large.global_traffic.health_check
    for region in spec.target.regions:
        check = checks[region.name]
        assert check.inputs["type"] == "HTTPS" and check.inputs["fqdn"] == region.gateway.hostname
        assert check.inputs["resourcePath"] in ("/gateway/ready", "/gateway/health")
        assert check.inputs["requestInterval"] == hc.interval_s
        assert check.inputs["failureThreshold"] == hc.failure_threshold
        record = next(r for r in records if r.inputs["setIdentifier"] == region.name)
        assert record.inputs["records"] == [region.gateway.hostname]
        assert record.inputs["healthCheckId"] == f"{check.name}-id" and check.urn in record.dependencies
        assert record.inputs["latencyRoutingPolicies"] == [{"region": region.aws_region}]
        alarm = next(a for a in alarms if a.inputs["dimensions"]["HealthCheckId"] == f"{check.name}-id")
        assert alarm.inputs["metricName"] == "HealthCheckStatus" and alarm.inputs["namespace"] == "AWS/Route53"


def test_global_accelerator_has_one_endpoint_group_per_region(large):
    result = large["large-ga"]
    groups = of_type(result, "aws:globalaccelerator/endpointGroup:EndpointGroup")
    assert {g.inputs["endpointGroupRegion"] for g in groups} == {"us-east-1", "eu-west-1", "ap-southeast-1"}
    for g, region in ((g, next(r for r in result.stack.spec.target.regions if r.aws_region == g.inputs["endpointGroupRegion"]))
                      for g in groups):
        assert g.inputs["endpointConfigurations"][0]["endpointId"] == region.gateway.load_balancer_arn
        assert g.inputs["trafficDialPercentage"] == region.traffic_dial
        # No inert endpoint-group health-check settings (the load balancer's target health decides).
        assert not any(k.startswith("healthCheck") or k == "thresholdCount" for k in g.inputs)
    alias = of_type(result, "aws:route53/record:Record")
    assert len(alias) == 1 and alias[0].inputs["aliases"][0]["zoneId"] == "Z2BJ6XQ5FK7U4H"


@pytest.mark.parametrize("name", ["large-prod", "large-ga"])
def test_karpenter_keda_and_workloads_are_ordered_after_their_cluster(large, name):
    result = large[name]
    for spoke in of_type(result, "tierscale:large:RegionSpoke"):
        members = [r for r in result.resources if spoke_of(result, r) == spoke.name]
        provider = next(r for r in members if r.type == "pulumi:providers:kubernetes")
        clusters = [r for r in members if r.type == "aws:eks/cluster:Cluster"]
        for r in members:
            if r.type.startswith("kubernetes:") and r.type != "kubernetes:storage.k8s.io/v1:StorageClass":
                deps = closure(result, r)
                assert provider_urn(r) == provider.urn
                if clusters:
                    assert clusters[0].urn in deps or clusters[0].urn in closure(result, provider), r.name
        releases = {r.inputs["name"]: r for r in members if r.type == "kubernetes:helm.sh/v3:Release"}
        assert "keda" in releases
        if clusters:
            k = releases["karpenter"]
            assert k.inputs["chart"] == karpenter.chart_reference() and k.inputs["version"] == karpenter.chart().version
            assert not k.inputs.get("repositoryOpts")  # an OCI chart: the full reference, no index.yaml lookup
            pools = [r for r in members if r.type == "kubernetes:karpenter.sh/v1:NodePool"]
            if result.stack.spec.large.gitops is None:
                assert pools and all(k.urn in p.dependencies for p in pools)
            assert any(r.type == "aws:sqs/queue:Queue" for r in members)
            assert {r.inputs["eventPattern"] for r in members if r.type == "aws:cloudwatch/eventRule:EventRule"} \
                == {__import__("json").dumps(p) for p in karpenter.EVENT_RULES.values()}
        for so in (r for r in members if r.type == "kubernetes:keda.sh/v1alpha1:ScaledObject"):
            assert releases["keda"].urn in so.dependencies


def test_gitops_renders_per_region_objects_and_one_application_set(large):
    result = large["large-ga"]
    sets = of_type(result, "kubernetes:argoproj.io/v1alpha1:ApplicationSet")
    assert len(sets) == 1
    elements = sets[0].inputs["spec"]["generators"][0]["list"]["elements"]
    assert [e["region"] for e in elements] == ["use1", "euw1", "apse1"]
    for region in ("use1", "euw1", "apse1"):
        kinds = {f.name.split("-")[1] for f in (result.out_dir / region / "gitops").glob("*.yaml")}
        assert {"nodepool", "ec2nodeclass", "virtualservice", "serviceaccount"} <= kinds
    assert not of_type(result, "kubernetes:karpenter.sh/v1:NodePool")


def test_no_transformation_rewrites_the_medium_tier():
    """Issue 20 item 7: the large tier configures each MediumTier through MediumTierArgs; no
    Pulumi `transformations`, no provider names parsed from private attributes."""
    import inspect

    from components.large import component, regional

    for module in (component, regional):
        source = inspect.getsource(module)
        assert "transformations" not in source and "ResourceTransformation" not in source
        assert "._name" not in source


@pytest.mark.parametrize("name", ["large-prod", "large-ga"])
def test_regional_kubernetes_objects_are_named_by_region(large, name):
    """Every regional Kubernetes object's Pulumi name starts with its region, so two regions may
    use the same namespace (an ApplicationSet deploys one everywhere)."""
    result = large[name]
    checked = 0
    for r in result.resources:
        spoke = spoke_of(result, r)
        if spoke is None or not r.type.startswith("kubernetes:") or r.type.startswith("kubernetes:helm.sh"):
            continue
        region = spoke.removeprefix("large-prod-")
        assert r.name.startswith((f"{region}-", f"{spoke}-")), (spoke, r.name)
        checked += 1
    assert checked > 50

