"""The global hub: Route 53 (latency or failover records, one health check per region, a
CloudWatch alarm on each check's status) or AWS Global Accelerator (one endpoint group per
region with its traffic dial, an alias record on the accelerator).

What each health check really asks (sources in components/facts/large.yaml, health_checks):
- Route 53 sends FullyQualifiedDomainName as the Host header and, with EnableSNI, in the TLS
  client_hello. The check's name is the region's own gateway hostname (it must resolve to that
  region only), so the region's Ingress/HTTPRoute must serve that name too: the large tier adds
  it to platform.routing.additionalHostnames (region_hostnames). A certificate that does not
  cover it does not fail the check: the checker retries the handshake without SNI.
- The path is /gateway/ready (or /gateway/health): the only paths the model router answers
  without an API key; /gateway/ready is 200 only while every model of the region has a ready
  replica, so a region whose replicas are all down is withdrawn, not only one whose nginx is.
- HTTPS on the TLS listener (443) when security.tls is on, else HTTP (80).
- Global Accelerator endpoint groups in front of an NLB/ALB ignore the group's health-check
  settings and use the load balancer's target health: none are set here, and failover time
  follows large.globalTraffic.loadBalancerHealthCheck (failover()).

Every hub resource uses the hub's own aws.Provider, never a region's: Route 53 health-check
metrics exist only in us-east-1, and the Global Accelerator API only in us-west-2
(components/facts/large.yaml).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_aws as aws

from components.large import facts
from components.spec.errors import Problem
from components.spec.model import GlobalTrafficSpec, LargeSpec, Region


@dataclass(frozen=True)
class FailoverTime:
    """Seconds until clients of a dead region reach another: detection + DNS caching."""

    detection_s: int
    dns_ttl_s: int
    basis: str

    @property
    def total_s(self) -> int:
        return self.detection_s + self.dns_ttl_s


def failover(traffic: GlobalTrafficSpec) -> FailoverTime:
    """route53: healthCheck intervalS x failureThreshold, then the records' TTL.
    globalAccelerator: the load balancers' target-group interval x unhealthy threshold (the
    endpoint group's own settings are ignored for NLB/ALB endpoints); clients keep the static
    anycast IPs, so no DNS TTL."""
    if traffic.kind == "globalAccelerator":
        lb = traffic.load_balancer_health_check
        assert lb is not None, "GlobalTrafficSpec requires loadBalancerHealthCheck with globalAccelerator"
        return FailoverTime(lb.interval_s * lb.unhealthy_threshold, 0,
                            f"load balancer target health {lb.interval_s} s x {lb.unhealthy_threshold}")
    hc = traffic.health_check
    return FailoverTime(hc.interval_s * hc.failure_threshold, traffic.ttl_s,
                        f"Route 53 health check {hc.interval_s} s x {hc.failure_threshold} + TTL {traffic.ttl_s} s")


def health_check_protocol(tls_enabled: bool) -> str:
    return "HTTPS" if tls_enabled else "HTTP"


def listener_port(tls_enabled: bool) -> int:
    """The gateway listener a health check reaches when healthCheck.port is not set."""
    return 443 if tls_enabled else 80


def region_hostnames(regions: list[Region]) -> dict[str, str]:
    """Region name -> the hostname its Ingress/HTTPRoute must serve besides the global domain
    (Route 53 probes it with that Host header / SNI)."""
    return {r.name: r.gateway.hostname for r in regions}


def health_check_args(traffic: GlobalTrafficSpec, region: Region, tls_enabled: bool) -> dict:
    """The aws.route53.HealthCheck arguments for one region (pure)."""
    hc = traffic.health_check
    protocol = health_check_protocol(tls_enabled)
    port = hc.port if "port" in hc.model_fields_set else listener_port(tls_enabled)
    args = {"type": protocol, "fqdn": region.gateway.hostname, "port": port, "resource_path": hc.path,
            "request_interval": hc.interval_s, "failure_threshold": hc.failure_threshold, "measure_latency": True}
    if protocol == "HTTPS":
        args["enable_sni"] = True
    return args


def health_check_problems(traffic: GlobalTrafficSpec, tls_enabled: bool, where: str = "large.globalTraffic") -> list[Problem]:
    """A port that does not match the protocol the gateway listens with (Route 53 only)."""
    if traffic.kind != "route53":
        return []
    hc = traffic.health_check
    expected = listener_port(tls_enabled)
    if "port" in hc.model_fields_set and hc.port in (443, 80) and hc.port != expected:
        return [Problem(f"{where}.healthCheck.port",
                        f"{hc.port} is the {'HTTPS' if hc.port == 443 else 'HTTP'} port, but security.tls.enabled is "
                        f"{str(tls_enabled).lower()}: the gateway serves {health_check_protocol(tls_enabled)} on {expected}")]
    return []


def hub_region(kind: str) -> str:
    return facts.health("route53_cloudwatch_region" if kind == "route53" else "global_accelerator_api_region")


@dataclass
class Hub:
    provider: aws.Provider
    health_checks: dict[str, aws.route53.HealthCheck] = field(default_factory=dict)
    records: dict[str, aws.route53.Record] = field(default_factory=dict)
    alarms: dict[str, aws.cloudwatch.MetricAlarm] = field(default_factory=dict)
    endpoint_groups: dict[str, "aws.globalaccelerator.EndpointGroup"] = field(default_factory=dict)
    accelerator: Optional["aws.globalaccelerator.Accelerator"] = None


class GlobalTraffic(pulumi.ComponentResource):
    def __init__(self, name: str, large: LargeSpec, regions: list[Region], primary: str, tags: dict,
                 opts: Optional[pulumi.ResourceOptions] = None, tls_enabled: bool = True):
        super().__init__("tierscale:large:GlobalTraffic", name, None, opts)
        t = large.global_traffic
        provider = aws.Provider(f"{name}-aws", region=hub_region(t.kind), opts=pulumi.ResourceOptions(parent=self))
        self.hub = Hub(provider)
        child = pulumi.ResourceOptions(parent=self, provider=provider)
        hc = t.health_check
        if t.kind == "route53":
            for r in regions:
                check = aws.route53.HealthCheck(
                    f"{name}-{r.name}", **health_check_args(t, r, tls_enabled),
                    tags={**tags, "Name": f"{name}-{r.name}", "tierscale:region": r.name}, opts=child)
                self.hub.health_checks[r.name] = check
                self.hub.alarms[r.name] = aws.cloudwatch.MetricAlarm(
                    f"{name}-{r.name}-unhealthy", namespace="AWS/Route53", metric_name="HealthCheckStatus",
                    dimensions={"HealthCheckId": check.id}, statistic="Minimum", period=60, evaluation_periods=1,
                    threshold=1, comparison_operator="LessThanThreshold", treat_missing_data="breaching",
                    alarm_description=f"Route 53 health check of region {r.name} ({r.gateway.hostname}{hc.path}) fails",
                    alarm_actions=[t.alarm_topic_arn] if t.alarm_topic_arn else None,
                    ok_actions=[t.alarm_topic_arn] if t.alarm_topic_arn else None, tags=tags, opts=child)
                if r.traffic_dial == 0:
                    continue  # drained: its record is withdrawn (the health check stays)
                routing: dict = {}
                if large.topology == "active-passive":
                    role = "PRIMARY" if r.name == primary else "SECONDARY"
                    routing = {"failover_routing_policies": [aws.route53.RecordFailoverRoutingPolicyArgs(type=role)],
                               "set_identifier": r.name}
                elif large.topology in ("active-active", "global"):
                    routing = {"latency_routing_policies": [aws.route53.RecordLatencyRoutingPolicyArgs(region=r.aws_region)],
                               "set_identifier": r.name}
                self.hub.records[r.name] = aws.route53.Record(
                    f"{name}-{r.name}", zone_id=t.hosted_zone_id, name=t.domain, type="CNAME", ttl=t.ttl_s,
                    records=[r.gateway.hostname], health_check_id=check.id, opts=child, **routing)
        else:
            self.hub.accelerator = aws.globalaccelerator.Accelerator(
                f"{name}-ga", name=f"{name}-ga"[:64], ip_address_type="IPV4", enabled=True, tags=tags, opts=child)
            listener = aws.globalaccelerator.Listener(
                f"{name}-https", accelerator_arn=self.hub.accelerator.id, protocol="TCP", client_affinity="NONE",
                port_ranges=[aws.globalaccelerator.ListenerPortRangeArgs(from_port=443, to_port=443)], opts=child)
            for r in regions:
                self.hub.endpoint_groups[r.name] = aws.globalaccelerator.EndpointGroup(
                    f"{name}-{r.name}", listener_arn=listener.id, endpoint_group_region=r.aws_region,
                    # No health_check_* settings: for NLB/ALB endpoints Global Accelerator ignores
                    # them and uses the load balancer's target health (failover()).
                    traffic_dial_percentage=r.traffic_dial,
                    endpoint_configurations=[aws.globalaccelerator.EndpointGroupEndpointConfigurationArgs(
                        endpoint_id=r.gateway.load_balancer_arn, weight=128, client_ip_preservation_enabled=True)],
                    opts=child)
            self.hub.records["accelerator"] = aws.route53.Record(
                f"{name}-accelerator", zone_id=t.hosted_zone_id, name=t.domain, type="A", opts=child,
                aliases=[aws.route53.RecordAliasArgs(name=self.hub.accelerator.dns_name,
                                                     zone_id=facts.health("global_accelerator_hosted_zone_id"),
                                                     evaluate_target_health=True)])
        self.register_outputs({"domain": t.domain})
