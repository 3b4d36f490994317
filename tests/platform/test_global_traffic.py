"""Global traffic: health checks ask what the regional gateway really serves; failover time
follows what Route 53 / Global Accelerator really read (components/facts/large.yaml)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from components.large import traffic
from components.medium import network
from components.spec.model import GlobalTrafficSpec, Region
from components.serving.model_router import HEALTH_PATH, READY_PATH
from tests.support.stacks import example_stack

ROUTE53 = {"kind": "route53", "hostedZoneId": "Z0123456789ABCDEFGHIJ", "domain": "llm.example.com", "ttlS": 10,
           "healthCheck": {"intervalS": 10, "failureThreshold": 2}}
GA = {"kind": "globalAccelerator", "hostedZoneId": "Z0123456789ABCDEFGHIJ", "domain": "llm.example.com",
      "loadBalancerHealthCheck": {"intervalS": 10, "unhealthyThreshold": 3}}
REGION = Region.model_validate({
    "name": "use1", "cluster": "eks", "awsRegion": "us-east-1", "gpuNodes": 4,
    "gateway": {"hostname": "use1.llm.example.com"}, "models": [{"name": "llama-8b", "maxReplicas": 4}]})


def test_route53_check_probes_the_regional_name_on_the_unauthenticated_ready_path():
    args = traffic.health_check_args(GlobalTrafficSpec.model_validate(ROUTE53), REGION, tls_enabled=True)
    assert args["fqdn"] == "use1.llm.example.com"          # sent as Host and SNI
    assert args["resource_path"] == READY_PATH == "/gateway/ready"
    assert (args["type"], args["port"], args["enable_sni"]) == ("HTTPS", 443, True)
    plain = traffic.health_check_args(GlobalTrafficSpec.model_validate(ROUTE53), REGION, tls_enabled=False)
    assert (plain["type"], plain["port"]) == ("HTTP", 80) and "enable_sni" not in plain


def test_the_route_serves_the_name_the_health_check_sends():
    """The bug of issue #20: the route served only llm.example.com, the check asked use1.… (404)."""
    stack = example_stack("medium-prod")
    platform = stack.spec.platform.model_copy(update={"routing": stack.spec.platform.routing.model_copy(update={
        "kind": "httproute", "additional_hostnames": [REGION.gateway.hostname]})})
    security = stack.spec.security.model_copy(update={"tls": stack.spec.security.tls.model_copy(
        update={"enabled": True, "hostname": "llm.example.com"})})
    regional = stack.__class__(**{**stack.__dict__, "spec": stack.spec.model_copy(
        update={"platform": platform, "security": security})})
    host = traffic.health_check_args(GlobalTrafficSpec.model_validate(ROUTE53), REGION, True)["fqdn"]
    route = network.http_route(regional, "tierscale")
    assert host in route["spec"]["hostnames"] and route["spec"]["hostnames"][0] == "llm.example.com"
    ingress_platform = platform.model_copy(update={"routing": platform.routing.model_copy(update={"kind": "ingress"})})
    ingress_stack = stack.__class__(**{**regional.__dict__, "spec": regional.spec.model_copy(update={"platform": ingress_platform})})
    ing = network.ingress(ingress_stack, "tierscale")
    assert {r["host"] for r in ing["spec"]["rules"]} == {"llm.example.com", host}
    assert set(ing["spec"]["tls"][0]["hosts"]) == {"llm.example.com", host}
    # Without the additional name the check's Host is not served: the rule this test guards.
    bare = network.http_route(stack.__class__(**{**regional.__dict__, "spec": regional.spec.model_copy(update={
        "platform": platform.model_copy(update={"routing": platform.routing.model_copy(
            update={"additional_hostnames": []})})})}), "tierscale")
    assert host not in bare["spec"]["hostnames"]


@pytest.mark.parametrize("path", ["/health", "/v1/models", "/metrics"])
def test_health_check_paths_behind_auth_or_not_routed_are_refused(path):
    with pytest.raises(ValidationError) as caught:
        GlobalTrafficSpec.model_validate({**ROUTE53, "healthCheck": {"path": path}})
    assert "healthCheck" in str(caught.value) and "path" in str(caught.value)
    for ok in (READY_PATH, HEALTH_PATH):
        GlobalTrafficSpec.model_validate({**ROUTE53, "healthCheck": {"path": ok}})


def test_port_that_contradicts_the_protocol_is_refused():
    t = GlobalTrafficSpec.model_validate({**ROUTE53, "healthCheck": {"port": 443}})
    [problem] = traffic.health_check_problems(t, tls_enabled=False)
    assert problem.path == "large.globalTraffic.healthCheck.port" and "HTTP on 80" in problem.message
    assert traffic.health_check_problems(t, tls_enabled=True) == []


def test_route53_failover_is_checks_times_interval_plus_ttl():
    f = traffic.failover(GlobalTrafficSpec.model_validate(ROUTE53))
    assert (f.detection_s, f.dns_ttl_s, f.total_s) == (20, 10, 30)


def test_global_accelerator_failover_follows_the_load_balancer_not_the_endpoint_group():
    f = traffic.failover(GlobalTrafficSpec.model_validate(GA))
    assert (f.detection_s, f.dns_ttl_s, f.total_s) == (30, 0, 30)
    assert "load balancer" in f.basis


@pytest.mark.parametrize("key,value", [("healthCheck", {"intervalS": 10}), ("ttlS", 5),
                                       ("alarmTopicArn", "arn:aws:sns:us-east-1:123456789012:oncall")])
def test_inert_global_accelerator_settings_are_refused_naming_the_key(key, value):
    with pytest.raises(ValidationError, match=f"{key} is inert with kind globalAccelerator"):
        GlobalTrafficSpec.model_validate({**GA, key: value})


def test_global_accelerator_needs_the_load_balancer_health_check_and_route53_refuses_it():
    with pytest.raises(ValidationError, match="loadBalancerHealthCheck is required"):
        GlobalTrafficSpec.model_validate({k: v for k, v in GA.items() if k != "loadBalancerHealthCheck"})
    with pytest.raises(ValidationError, match="loadBalancerHealthCheck is inert with kind route53"):
        GlobalTrafficSpec.model_validate({**ROUTE53, "loadBalancerHealthCheck": GA["loadBalancerHealthCheck"]})
    with pytest.raises(ValidationError):
        GlobalTrafficSpec.model_validate({**GA, "loadBalancerHealthCheck": {"intervalS": 1, "unhealthyThreshold": 3}})
