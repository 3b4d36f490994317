from __future__ import annotations

import json

import pytest

from components.render import render_stack

# large-prod with Global Accelerator (every region on EKS with its NLB ARN) and GitOps.
GA_REGIONS = [
    {"name": name, "cluster": "eks", "awsRegion": region, "namespace": f"inference-{name}", "gpuNodes": 10,
     "onDemandFloorNodes": 4, "vpcCidr": cidr,
     "gateway": {"hostname": f"{name}.llm.example.com",
                 "loadBalancerArn": f"arn:aws:elasticloadbalancing:{region}:123456789012:loadbalancer/net/gw-{name}/0123456789abcdef"},
     "models": [{"name": "llama-70b", "minReplicas": 3, "maxReplicas": 8},
                {"name": "llama-8b", "minReplicas": 3, "maxReplicas": 8},
                {"name": "qwen-32b", "minReplicas": 2, "maxReplicas": 6}]}
    for name, region, cidr in (("use1", "us-east-1", "10.40.0.0/16"), ("euw1", "eu-west-1", "10.41.0.0/16"),
                               ("apse1", "ap-southeast-1", "10.42.0.0/16"))]
GA = {
    "tierscale:target": json.dumps({"kind": "multi-region", "regions": GA_REGIONS}),
    "tierscale:large": json.dumps({
        "topology": "global",
        "globalTraffic": {"kind": "globalAccelerator", "hostedZoneId": "Z0123456789ABCDEFGHIJ", "domain": "llm.example.com",
                          # The NLBs' target-group check decides failover (GA ignores an endpoint
                          # group's own settings for load balancer endpoints).
                          "loadBalancerHealthCheck": {"intervalS": 5, "unhealthyThreshold": 2}},
        "canary": {"routing": "virtualservice", "models": [{"name": "llama-8b", "revision": "abc123", "weight": 5}]},
        "gitops": {"repoUrl": "https://git.example.com/platform/inference.git", "path": "clusters/large"},
        # The Gateway's data-plane pods run in its namespace (not ingress-nginx's): the router's
        # NetworkPolicy admits them (kubernetes_rules.risks warns otherwise).
        "platform": {"routing": {"kind": "httproute", "controllerNamespace": "gateway-system"}}}),
    "tierscale:slo": json.dumps({"availability": 99.999}),
}


@pytest.fixture(scope="session")
def large(tmp_path_factory):
    out = tmp_path_factory.mktemp("large")
    return {
        "large-prod": render_stack("large-prod", out / "large-prod"),
        "large-ga": render_stack("large-prod", out / "large-ga", extra_config=GA),
    }
