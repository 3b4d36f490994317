"""`tierscale:medium:EksCluster`: a new EKS cluster for the medium tier, with pulumi-aws.

VPC across >= 2 AZs (public subnets for load balancers, private subnets with a NAT gateway
per AZ for nodes), the control plane at a pinned Kubernetes version, a system node group, a
GPU node group (NVIDIA AMI, GPU product label, `nvidia.com/gpu` NoSchedule taint), IAM roles,
and the EBS CSI driver (via EKS Pod Identity) for model caches. Outputs a kubeconfig that
authenticates with `aws eks get-token`.

With `efa_interfaces` (a multi-node model on an EFA instance type, components/medium/efa.py)
the GPU node group is launched for EFA, as the AWS docs require
(https://docs.aws.amazon.com/eks/latest/userguide/device-management-efa.html,
https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/efa-acc-inst-types.html,
https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/efa-start.html): a launch template with
one EFA per network card (card 0 "efa", i.e. EFA with ENA, as the primary interface; the
others "efa-only"), a security group that allows all traffic to and from itself, a cluster
placement group, and therefore one subnet (one AZ) for the GPU nodes. The EKS AL2023 NVIDIA
AMI carries the host EFA software; the device plugin is a Helm add-on.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_aws as aws

from components.medium.names import GPU_PRODUCT_LABEL, GPU_RESOURCE
from components.spec.model import EksTarget

EBS_CSI_ADDON_VERSION = "v1.45.0-eksbuild.2"
POD_IDENTITY_ADDON_VERSION = "v1.3.7-eksbuild.2"
GPU_AMI = "AL2023_x86_64_NVIDIA"  # ships the NVIDIA driver and container toolkit
SYSTEM_AMI = "AL2023_x86_64_STANDARD"
NODE_POLICIES = ["AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly"]


def _assume(service: str, actions: tuple[str, ...] = ("sts:AssumeRole",)) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": list(actions)}]})


def subnet_cidrs(vpc_cidr: str, zones: int) -> tuple[list[str], list[str]]:
    """(private, public): private /19s for nodes and pod IPs (VPC CNI), small public /22s for
    load balancers and NAT gateways, carved from the last private-sized block."""
    vpc = ipaddress.ip_network(vpc_cidr)
    blocks = list(vpc.subnets(new_prefix=vpc.prefixlen + 3))
    private = [str(b) for b in blocks[:zones]]
    public = [str(b) for b in list(blocks[-1].subnets(new_prefix=vpc.prefixlen + 6))[:zones]]
    return private, public


def kubeconfig(name: pulumi.Input[str], endpoint: pulumi.Input[str], ca: pulumi.Input[str], region: str) -> pulumi.Output[str]:
    def build(args):
        cluster_name, server, ca_data = args
        return json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": cluster_name,
            "clusters": [{"name": cluster_name, "cluster": {"server": server, "certificate-authority-data": ca_data}}],
            "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}],
            "users": [{"name": cluster_name, "user": {"exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws",
                "args": ["eks", "get-token", "--cluster-name", cluster_name, "--region", region],
            }}}],
        })
    return pulumi.Output.all(name, endpoint, ca).apply(build)


@dataclass
class EksClusterArgs:
    target: EksTarget
    gpu_product_label: str
    stack_name: str
    # EFA interfaces to attach to each GPU node (0: none).
    efa_interfaces: int = 0


GPU_DISK_GIB = 500


def efa_network_interfaces(count: int, security_groups: list) -> list:
    """One EFA per network card: card 0 as the primary interface (EFA with ENA: an EFA-only
    interface cannot be primary), cards 1.. EFA-only (no IP addresses used up)."""
    return [aws.ec2.LaunchTemplateNetworkInterfaceArgs(
        network_card_index=i, device_index=0, interface_type="efa" if i == 0 else "efa-only",
        security_groups=security_groups, delete_on_termination="true") for i in range(count)]


class EksCluster(pulumi.ComponentResource):
    def __init__(self, name: str, args: EksClusterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("tierscale:medium:EksCluster", name, None, opts)
        t = args.target
        tags = {"tierscale:stack": args.stack_name, "managed-by": "pulumi"}
        # An explicit provider pins the region; the ambient AWS config never decides it.
        self.aws_provider = aws.Provider(f"{name}-aws", region=t.region, opts=pulumi.ResourceOptions(parent=self))
        child = pulumi.ResourceOptions(parent=self, provider=self.aws_provider)

        zones = aws.get_availability_zones_output(state="available", opts=pulumi.InvokeOutputOptions(
            parent=self, provider=self.aws_provider)).names
        self.vpc = aws.ec2.Vpc(f"{name}-vpc", cidr_block=t.vpc_cidr, enable_dns_hostnames=True, enable_dns_support=True,
                               tags={**tags, "Name": f"{name}-vpc"}, opts=child)
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=self.vpc.id, tags=tags, opts=child)
        public_rt = aws.ec2.RouteTable(f"{name}-public", vpc_id=self.vpc.id, tags=tags, opts=child,
                                       routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)])
        private_cidrs, public_cidrs = subnet_cidrs(t.vpc_cidr, t.availability_zones)
        self.private_subnets, self.public_subnets = [], []
        for i in range(t.availability_zones):
            az = zones.apply(lambda names, i=i: names[i])
            public = aws.ec2.Subnet(f"{name}-public-{i}", vpc_id=self.vpc.id, cidr_block=public_cidrs[i],
                                    availability_zone=az, map_public_ip_on_launch=False,
                                    tags={**tags, "kubernetes.io/role/elb": "1"}, opts=child)
            aws.ec2.RouteTableAssociation(f"{name}-public-{i}", subnet_id=public.id, route_table_id=public_rt.id, opts=child)
            # One NAT gateway per AZ: losing an AZ must not cut the others off from model downloads.
            eip = aws.ec2.Eip(f"{name}-nat-{i}", domain="vpc", tags=tags, opts=child)
            nat = aws.ec2.NatGateway(f"{name}-nat-{i}", allocation_id=eip.id, subnet_id=public.id, tags=tags, opts=child)
            private_rt = aws.ec2.RouteTable(f"{name}-private-{i}", vpc_id=self.vpc.id, tags=tags, opts=child,
                                            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat.id)])
            private = aws.ec2.Subnet(f"{name}-private-{i}", vpc_id=self.vpc.id, cidr_block=private_cidrs[i],
                                     availability_zone=az, tags={**tags, "kubernetes.io/role/internal-elb": "1"}, opts=child)
            aws.ec2.RouteTableAssociation(f"{name}-private-{i}", subnet_id=private.id, route_table_id=private_rt.id, opts=child)
            self.public_subnets.append(public)
            self.private_subnets.append(private)
        subnet_ids = [s.id for s in self.private_subnets]

        cluster_role = aws.iam.Role(f"{name}-cluster-role", assume_role_policy=_assume("eks.amazonaws.com"), tags=tags, opts=child)
        cluster_policy = aws.iam.RolePolicyAttachment(
            f"{name}-cluster-policy", role=cluster_role.name,
            policy_arn="arn:aws:iam::aws:policy/AmazonEKSClusterPolicy", opts=child)
        self.cluster = aws.eks.Cluster(
            f"{name}-eks", version=t.kubernetes_version, role_arn=cluster_role.arn, tags=tags,
            vpc_config=aws.eks.ClusterVpcConfigArgs(subnet_ids=subnet_ids, endpoint_private_access=True,
                                                    endpoint_public_access=True),
            access_config=aws.eks.ClusterAccessConfigArgs(authentication_mode="API",
                                                          bootstrap_cluster_creator_admin_permissions=True),
            enabled_cluster_log_types=["api", "audit", "authenticator"],
            opts=pulumi.ResourceOptions(parent=self, provider=self.aws_provider, depends_on=[cluster_policy]),
        )

        node_role = aws.iam.Role(f"{name}-node-role", assume_role_policy=_assume("ec2.amazonaws.com"), tags=tags, opts=child)
        node_policies = [aws.iam.RolePolicyAttachment(f"{name}-node-{p}", role=node_role.name,
                                                      policy_arn=f"arn:aws:iam::aws:policy/{p}", opts=child)
                         for p in NODE_POLICIES]
        after_policies = pulumi.ResourceOptions(parent=self, provider=self.aws_provider, depends_on=node_policies)
        sys_ng, gpu_ng = t.system_node_group, t.gpu_node_group
        self.system_nodes = aws.eks.NodeGroup(
            f"{name}-system", cluster_name=self.cluster.name, node_role_arn=node_role.arn, subnet_ids=subnet_ids,
            instance_types=[sys_ng.instance_type], ami_type=SYSTEM_AMI, tags=tags,
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(min_size=sys_ng.min_size, max_size=sys_ng.max_size,
                                                              desired_size=sys_ng.desired_size),
            labels={"tierscale.dev/pool": "system"}, opts=after_policies)
        gpu_launch: dict = {"subnet_ids": subnet_ids, "disk_size": GPU_DISK_GIB}
        # The EFA security group (with EFA): Karpenter's GPU nodes join it too.
        self.efa_security_group: Optional[aws.ec2.SecurityGroup] = None
        if args.efa_interfaces:
            efa_sg = aws.ec2.SecurityGroup(f"{name}-efa", vpc_id=self.vpc.id, tags={**tags, "Name": f"{name}-efa"},
                                           description="EFA: all traffic to and from this group (EFA requirement)",
                                           opts=child)
            self.efa_security_group = efa_sg
            aws.vpc.SecurityGroupIngressRule(f"{name}-efa-in", security_group_id=efa_sg.id, ip_protocol="-1",
                                             referenced_security_group_id=efa_sg.id, opts=child)
            aws.vpc.SecurityGroupEgressRule(f"{name}-efa-out", security_group_id=efa_sg.id, ip_protocol="-1",
                                            referenced_security_group_id=efa_sg.id, opts=child)
            placement = aws.ec2.PlacementGroup(f"{name}-gpu", strategy="cluster", tags=tags, opts=child)
            # Interfaces in a launch template replace the node group's defaults: the cluster
            # security group must be listed with the EFA one.
            groups = [self.cluster.vpc_config.cluster_security_group_id, efa_sg.id]
            self.gpu_launch_template = aws.ec2.LaunchTemplate(
                f"{name}-gpu", tags=tags, opts=child,
                network_interfaces=efa_network_interfaces(args.efa_interfaces, groups),
                placement=aws.ec2.LaunchTemplatePlacementArgs(group_name=placement.name),
                # With a launch template the node group's disk_size is not allowed.
                block_device_mappings=[aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                    device_name="/dev/xvda", ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                        volume_size=GPU_DISK_GIB, volume_type="gp3", encrypted="true",
                        delete_on_termination="true"))],
                metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                    http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=2))
            # A cluster placement group is in one AZ: the GPU nodes use the first private subnet.
            gpu_launch = {"subnet_ids": subnet_ids[:1], "launch_template": aws.eks.NodeGroupLaunchTemplateArgs(
                id=self.gpu_launch_template.id, version=self.gpu_launch_template.latest_version.apply(lambda v: None if v is None else str(v)))}
        self.gpu_nodes = aws.eks.NodeGroup(
            f"{name}-gpu", cluster_name=self.cluster.name, node_role_arn=node_role.arn, **gpu_launch,
            instance_types=[gpu_ng.instance_type], ami_type=GPU_AMI, tags=tags,
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(min_size=gpu_ng.min_size, max_size=gpu_ng.max_size,
                                                              desired_size=gpu_ng.desired_size),
            # The product label lets vLLM pods schedule before GPU feature discovery has run.
            labels={"tierscale.dev/pool": "gpu", GPU_PRODUCT_LABEL: args.gpu_product_label},
            # Only pods that tolerate the taint (vLLM, GPU Operator daemonsets) land on GPU nodes.
            taints=[aws.eks.NodeGroupTaintArgs(key=GPU_RESOURCE, value="present", effect="NO_SCHEDULE")],
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
            opts=after_policies)

        pod_identity = aws.eks.Addon(f"{name}-pod-identity", cluster_name=self.cluster.name,
                                     addon_name="eks-pod-identity-agent", addon_version=POD_IDENTITY_ADDON_VERSION,
                                     opts=pulumi.ResourceOptions(parent=self, provider=self.aws_provider,
                                                                 depends_on=[self.system_nodes]))
        ebs_role = aws.iam.Role(f"{name}-ebs-csi", tags=tags, opts=child, assume_role_policy=_assume(
            "pods.eks.amazonaws.com", ("sts:AssumeRole", "sts:TagSession")))
        ebs_policy = aws.iam.RolePolicyAttachment(
            f"{name}-ebs-csi", role=ebs_role.name,
            policy_arn="arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy", opts=child)
        self.ebs_csi = aws.eks.Addon(
            f"{name}-ebs-csi", cluster_name=self.cluster.name, addon_name="aws-ebs-csi-driver",
            addon_version=EBS_CSI_ADDON_VERSION,
            pod_identity_associations=[aws.eks.AddonPodIdentityAssociationArgs(
                role_arn=ebs_role.arn, service_account="ebs-csi-controller-sa")],
            opts=pulumi.ResourceOptions(parent=self, provider=self.aws_provider, depends_on=[pod_identity, ebs_policy]))

        self.kubeconfig = pulumi.Output.secret(kubeconfig(
            self.cluster.name, self.cluster.endpoint, self.cluster.certificate_authority.data, t.region))
        self.cluster_name = self.cluster.name
        self.register_outputs({"cluster_name": self.cluster_name, "kubeconfig": self.kubeconfig,
                               "vpc_id": self.vpc.id})
