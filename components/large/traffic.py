"""The global hub: Route 53 (latency or failover records, one HTTPS health check per region,
a CloudWatch alarm on each check's status) or AWS Global Accelerator (one endpoint group per
region with its traffic dial and health check, an alias record on the accelerator).

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
from components.spec.model import LargeSpec, Region


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
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("tierscale:large:GlobalTraffic", name, None, opts)
        t = large.global_traffic
        provider = aws.Provider(f"{name}-aws", region=hub_region(t.kind), opts=pulumi.ResourceOptions(parent=self))
        self.hub = Hub(provider)
        child = pulumi.ResourceOptions(parent=self, provider=provider)
        hc = t.health_check
        if t.kind == "route53":
            for r in regions:
                check = aws.route53.HealthCheck(
                    f"{name}-{r.name}", type="HTTPS", fqdn=r.gateway.hostname, port=hc.port, resource_path=hc.path,
                    request_interval=hc.interval_s, failure_threshold=hc.failure_threshold, enable_sni=True,
                    measure_latency=True, tags={**tags, "Name": f"{name}-{r.name}", "tierscale:region": r.name}, opts=child)
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
                    traffic_dial_percentage=r.traffic_dial, health_check_protocol="HTTPS", health_check_path=hc.path,
                    health_check_port=hc.port, health_check_interval_seconds=hc.interval_s,
                    threshold_count=hc.failure_threshold,
                    endpoint_configurations=[aws.globalaccelerator.EndpointGroupEndpointConfigurationArgs(
                        endpoint_id=r.gateway.load_balancer_arn, weight=128, client_ip_preservation_enabled=True)],
                    opts=child)
            self.hub.records["accelerator"] = aws.route53.Record(
                f"{name}-accelerator", zone_id=t.hosted_zone_id, name=t.domain, type="A", opts=child,
                aliases=[aws.route53.RecordAliasArgs(name=self.hub.accelerator.dns_name,
                                                     zone_id=facts.health("global_accelerator_hosted_zone_id"),
                                                     evaluate_target_health=True)])
        self.register_outputs({"domain": t.domain})
