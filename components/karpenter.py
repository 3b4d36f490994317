"""Karpenter on an EKS cluster, one module for both tiers that create EKS clusters: the large
tier's regions (components/large/component.py) and medium EKS (components/medium/component.py,
which grows its GPU node group's capacity up to gpuNodeGroup.maxSize with it). IAM (controller via EKS Pod Identity, node role with an EKS
access entry), the SQS interruption queue with its EventBridge rules, and the GPU NodePools /
EC2NodeClass (pure manifests).

Interruption handling (karpenter.sh docs "Interruption"; aws/karpenter-provider-aws
website/content/en/v1.5/reference/cloudformation.md): EventBridge sends Spot interruption
warnings, rebalance recommendations, instance state changes and AWS Health scheduled changes to
the queue; Karpenter (settings.interruptionQueue) cordons and drains the node at once, inside
the two-minute Spot notice.

NodePools: `gpu-on-demand` (weight 100, GPU limit = the on-demand floor) is preferred, so the
minimum replicas land there; `gpu-spot` (weight 10) takes what exceeds the floor. GPU nodes are
only removed when empty (WhenEmpty after consolidateAfter): consolidating a busy GPU node would
cost a full cold start per replica.
"""

from __future__ import annotations

import json
from typing import Optional

import pulumi
import pulumi_aws as aws

from components import pins
from components.medium.names import GPU_PRODUCT_LABEL, GPU_RESOURCE, PART_OF
from components.spec.model import EksTarget, KarpenterSpec

NAMESPACE = "kube-system"
SERVICE_ACCOUNT = "karpenter"
NODE_CLASS = "gpu"
DISCOVERY_TAG = "karpenter.sh/discovery"
# EKS-optimized AL2023: for GPU instance types Karpenter resolves the alias to the NVIDIA
# variant (driver and container toolkit), as the medium tier's AL2023_x86_64_NVIDIA node group.
AMI_ALIAS = pins.KARPENTER_AMI_ALIAS  # pinned in components/pins.yaml, never @latest
EVENT_RULES = {
    "scheduled-change": {"source": ["aws.health"], "detail-type": ["AWS Health Event"]},
    "spot-interruption": {"source": ["aws.ec2"], "detail-type": ["EC2 Spot Instance Interruption Warning"]},
    "rebalance": {"source": ["aws.ec2"], "detail-type": ["EC2 Instance Rebalance Recommendation"]},
    "instance-state-change": {"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"]},
}
NODE_POLICIES = ["AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly",
                 "AmazonSSMManagedInstanceCore"]


def _assume(service: str, actions=("sts:AssumeRole",)) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": list(actions)}]})


def controller_policy(cluster_arn: str, queue_arn: str, node_role_arn: str) -> str:
    """The controller's permissions, after Karpenter's reference CloudFormation (v1.5)."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "Provision", "Effect": "Allow", "Resource": "*", "Action": [
            "ec2:CreateFleet", "ec2:RunInstances", "ec2:CreateLaunchTemplate", "ec2:CreateTags",
            "ec2:DeleteLaunchTemplate", "ec2:TerminateInstances", "ec2:Describe*", "pricing:GetProducts",
            "ssm:GetParameter", "iam:GetInstanceProfile", "iam:CreateInstanceProfile",
            "iam:TagInstanceProfile", "iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile",
            "iam:DeleteInstanceProfile"]},
        {"Sid": "PassNodeRole", "Effect": "Allow", "Action": "iam:PassRole", "Resource": node_role_arn},
        {"Sid": "Cluster", "Effect": "Allow", "Action": "eks:DescribeCluster", "Resource": cluster_arn},
        {"Sid": "Interruption", "Effect": "Allow", "Resource": queue_arn,
         "Action": ["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"]},
    ]})


class KarpenterAws(pulumi.ComponentResource):
    """The AWS side of Karpenter in one region (all with that region's provider)."""

    def __init__(self, name: str, *, cluster: aws.eks.Cluster, discovery: str, subnets: list,
                 provider: aws.Provider, tags: dict, security_groups: Optional[list] = None,
                 opts: Optional[pulumi.ResourceOptions] = None):
        # Moved from components/large/karpenter.py: the alias keeps existing large stacks' URNs.
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            aliases=[pulumi.Alias(type_="tierscale:large:KarpenterAws")]))
        super().__init__("tierscale:karpenter:KarpenterAws", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, provider=provider)
        self.node_role = aws.iam.Role(f"{name}-node", name=f"{discovery}-karpenter-node"[:64],
                                      assume_role_policy=_assume("ec2.amazonaws.com"), tags=tags, opts=child)
        for p in NODE_POLICIES:
            aws.iam.RolePolicyAttachment(f"{name}-node-{p}", role=self.node_role.name,
                                         policy_arn=f"arn:aws:iam::aws:policy/{p}", opts=child)
        # Nodes join through an EKS access entry (the cluster uses authenticationMode API).
        aws.eks.AccessEntry(f"{name}-node", cluster_name=cluster.name, principal_arn=self.node_role.arn,
                            type="EC2_LINUX", opts=child)
        self.queue = aws.sqs.Queue(f"{name}-interruption", message_retention_seconds=300,
                                   sqs_managed_sse_enabled=True, tags=tags, opts=child)
        aws.sqs.QueuePolicy(f"{name}-interruption", queue_url=self.queue.url, opts=child,
                            policy=self.queue.arn.apply(lambda arn: json.dumps({
                                "Version": "2012-10-17", "Statement": [{
                                    "Effect": "Allow", "Action": "sqs:SendMessage", "Resource": arn,
                                    "Principal": {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]}}]})))
        self.rules = []
        for key, pattern in EVENT_RULES.items():
            rule = aws.cloudwatch.EventRule(f"{name}-{key}", event_pattern=json.dumps(pattern), tags=tags, opts=child)
            aws.cloudwatch.EventTarget(f"{name}-{key}", rule=rule.name, arn=self.queue.arn, opts=child)
            self.rules.append(rule)
        self.controller_role = aws.iam.Role(f"{name}-controller", tags=tags, opts=child, assume_role_policy=_assume(
            "pods.eks.amazonaws.com", ("sts:AssumeRole", "sts:TagSession")))
        aws.iam.RolePolicy(f"{name}-controller", role=self.controller_role.id, opts=child,
                           policy=pulumi.Output.all(cluster.arn, self.queue.arn, self.node_role.arn).apply(
                               lambda a: controller_policy(*a)))
        self.pod_identity = aws.eks.PodIdentityAssociation(
            f"{name}-controller", cluster_name=cluster.name, namespace=NAMESPACE, service_account=SERVICE_ACCOUNT,
            role_arn=self.controller_role.arn, opts=child)
        # Subnets (and the cluster security group) Karpenter launches GPU nodes into.
        for i, subnet in enumerate(subnets):
            aws.ec2.Tag(f"{name}-subnet-{i}", resource_id=subnet.id, key=DISCOVERY_TAG, value=discovery, opts=child)
        aws.ec2.Tag(f"{name}-cluster-sg", resource_id=cluster.vpc_config.cluster_security_group_id,
                    key=DISCOVERY_TAG, value=discovery, opts=child)
        # Further groups the nodes need (medium EKS with EFA: the self-referencing EFA group).
        for i, group in enumerate(security_groups or []):
            aws.ec2.Tag(f"{name}-sg-{i}", resource_id=group.id, key=DISCOVERY_TAG, value=discovery, opts=child)
        self.register_outputs({"queue": self.queue.name})


def helm_values(cluster_name, queue_name) -> dict:
    return {"settings": {"clusterName": cluster_name, "interruptionQueue": queue_name},
            "serviceAccount": {"name": SERVICE_ACCOUNT},
            "replicas": 2, "nodeSelector": {"tierscale.dev/pool": "system"}}


def chart():
    return pins.chart("karpenter")


def chart_reference() -> str:
    """The Release `chart`: the full oci:// reference, with no repositoryOpts (an OCI registry
    has no index.yaml; components/medium/addons.helm_chart_reference)."""
    from components.medium.addons import helm_chart_reference

    ref, repo = helm_chart_reference("karpenter", chart().repo)
    assert repo is None
    return ref


def node_class(discovery: str, node_role_name: str, volume_gib: int) -> dict:
    selector = [{"tags": {DISCOVERY_TAG: discovery}}]
    return {
        "apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass",
        "metadata": {"name": NODE_CLASS, "labels": dict(PART_OF)},
        "spec": {
            "amiSelectorTerms": [{"alias": AMI_ALIAS}],
            "role": node_role_name,
            "subnetSelectorTerms": selector, "securityGroupSelectorTerms": selector,
            # The image and every model of the region once (components/large/sizing.node_volume_gib).
            "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {
                "volumeSize": f"{volume_gib}Gi", "volumeType": "gp3", "encrypted": True, "deleteOnTermination": True}}],
            "metadataOptions": {"httpEndpoint": "enabled", "httpTokens": "required", "httpPutResponseHopLimit": 1},
            "tags": {"tierscale:discovery": discovery},
        },
    }


def node_pool(name: str, capacity_type: str, weight: int, gpus: int, instance_types: list[str], product_label: str,
              settings: KarpenterSpec) -> dict:
    return {
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": {"name": name, "labels": dict(PART_OF)},
        "spec": {
            "weight": weight,
            "limits": {GPU_RESOURCE: str(gpus)},
            "disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": settings.consolidate_after,
                           "budgets": [{"nodes": settings.disruption_budget}]},
            "template": {
                "metadata": {"labels": {"tierscale.dev/pool": "gpu", GPU_PRODUCT_LABEL: product_label}},
                "spec": {
                    "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": NODE_CLASS},
                    "expireAfter": settings.expire_after,
                    "taints": [{"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"}],
                    "requirements": [
                        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": [capacity_type]},
                        {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": list(instance_types)},
                        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
                    ],
                },
            },
        },
    }


def node_pools(floor_gpus: int, max_gpus: int, spot: bool, instance_types: list[str], product_label: str,
               settings: KarpenterSpec) -> list[dict]:
    """On-demand up to the floor (all GPUs without spot), spot above it."""
    on_demand = floor_gpus if spot else max_gpus
    pools = []
    if on_demand > 0:
        pools.append(node_pool("gpu-on-demand", "on-demand", 100, on_demand, instance_types, product_label, settings))
    if spot and max_gpus > floor_gpus:
        pools.append(node_pool("gpu-spot", "spot", 10, max_gpus - floor_gpus, instance_types, product_label, settings))
    return pools


# --- medium EKS ---------------------------------------------------------------------------


def discovery_name(stack_name: str) -> str:
    """The discovery tag value (subnets, security groups) and node role prefix of a medium EKS
    stack (the large tier uses <stack>-<region>)."""
    return stack_name


def node_role_name(discovery: str) -> str:
    return f"{discovery}-karpenter-node"[:64]


def medium_growth_gpus(target: EksTarget, gpus_per_node: int) -> int:
    """GPUs Karpenter may add to medium EKS: the node group keeps desiredSize nodes (nothing else
    scales it), Karpenter adds up to maxSize - desiredSize nodes, so the GPU nodes never exceed
    maxSize, the count placement plans with (components/spec/fleet.py)."""
    group = target.gpu_node_group
    return max(0, group.max_size - group.desired_size) * gpus_per_node


def medium_manifests(target: EksTarget, gpus_per_node: int, product_label: str, discovery: str) -> list[dict]:
    """EC2NodeClass + one on-demand NodePool of the node group's instance type, limited to the
    growth (none when maxSize == desiredSize: nothing to grow)."""
    growth = medium_growth_gpus(target, gpus_per_node)
    if growth == 0:
        return []
    from components.medium.eks import GPU_DISK_GIB

    return [node_class(discovery, node_role_name(discovery), GPU_DISK_GIB),
            *node_pools(0, growth, False, [target.gpu_node_group.instance_type], product_label, KarpenterSpec())]
