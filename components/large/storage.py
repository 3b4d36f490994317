"""Model storage: a versioned, encrypted, private S3 bucket per EKS region, replicated from the
primary region's bucket with S3 Replication Time Control (99.99% of objects within 15 minutes,
which needs replication metrics: https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication-time-control.html),
and a Pod Identity role per region that may only read its own bucket.

Upload each model once to the primary bucket at `<prefix>/<hf repo>[/<revision>]` (for example
`huggingface-cli download <repo> --local-dir w && aws s3 sync w s3://<bucket>/models/<repo>`);
replication carries it to every region.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_aws as aws


def bucket_name(stack_slug: str, region: str) -> str:
    return f"{stack_slug}-{region}-models"[:63].rstrip("-")


class ModelBucket(pulumi.ComponentResource):
    """One region's bucket: versioning, SSE, public access block, owner-enforced ACLs, TLS only."""

    def __init__(self, name: str, bucket: str, provider: aws.Provider, tags: dict,
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("tierscale:large:ModelBucket", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, provider=provider)
        self.name = bucket
        self.bucket = aws.s3.Bucket(name, bucket=bucket, force_destroy=False, tags=tags, opts=child)
        self.versioning = aws.s3.BucketVersioning(
            name, bucket=self.bucket.id, opts=child,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"))
        self.encryption = aws.s3.BucketServerSideEncryptionConfiguration(
            name, bucket=self.bucket.id, opts=child,
            rules=[aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm="AES256"))])
        self.public_access_block = aws.s3.BucketPublicAccessBlock(
            name, bucket=self.bucket.id, block_public_acls=True, block_public_policy=True, ignore_public_acls=True,
            restrict_public_buckets=True, opts=child)
        aws.s3.BucketOwnershipControls(name, bucket=self.bucket.id, opts=child,
                                       rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"))
        aws.s3.BucketPolicy(name, bucket=self.bucket.id, opts=pulumi.ResourceOptions(
            parent=self, provider=provider, depends_on=[self.public_access_block]),
            policy=self.bucket.arn.apply(lambda arn: json.dumps({"Version": "2012-10-17", "Statement": [{
                "Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                "Resource": [arn, f"{arn}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})))
        self.register_outputs({"bucket": self.bucket.id})


def replication_policy(source_arn: str, destination_arns: list[str]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetReplicationConfiguration", "s3:ListBucket"], "Resource": source_arn},
        {"Effect": "Allow", "Action": ["s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl",
                                       "s3:GetObjectVersionTagging"], "Resource": f"{source_arn}/*"},
        {"Effect": "Allow", "Action": ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"],
         "Resource": [f"{d}/*" for d in destination_arns]},
    ]})


class Replication(pulumi.ComponentResource):
    """Primary -> every other region's bucket, with Replication Time Control and metrics."""

    def __init__(self, name: str, source: ModelBucket, destinations: list[ModelBucket], provider: aws.Provider,
                 rtc: bool, prefix: str, tags: dict, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("tierscale:large:Replication", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, provider=provider)
        self.role = aws.iam.Role(name, tags=tags, opts=child, assume_role_policy=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                    "Principal": {"Service": "s3.amazonaws.com"}}]}))
        aws.iam.RolePolicy(name, role=self.role.id, opts=child, policy=pulumi.Output.all(
            source.bucket.arn, *[d.bucket.arn for d in destinations]).apply(
                lambda arns: replication_policy(arns[0], list(arns[1:]))))
        rules = []
        for i, d in enumerate(destinations):
            dest = aws.s3.BucketReplicationConfigRuleDestinationArgs(bucket=d.bucket.arn, storage_class="STANDARD")
            if rtc:
                dest = aws.s3.BucketReplicationConfigRuleDestinationArgs(
                    bucket=d.bucket.arn, storage_class="STANDARD",
                    replication_time=aws.s3.BucketReplicationConfigRuleDestinationReplicationTimeArgs(
                        status="Enabled", time=aws.s3.BucketReplicationConfigRuleDestinationReplicationTimeTimeArgs(minutes=15)),
                    metrics=aws.s3.BucketReplicationConfigRuleDestinationMetricsArgs(
                        status="Enabled", event_threshold=aws.s3.BucketReplicationConfigRuleDestinationMetricsEventThresholdArgs(minutes=15)))
            rules.append(aws.s3.BucketReplicationConfigRuleArgs(
                id=f"to-{d.name}"[:255], status="Enabled", priority=i,
                filter=aws.s3.BucketReplicationConfigRuleFilterArgs(prefix=f"{prefix}/"),
                delete_marker_replication=aws.s3.BucketReplicationConfigRuleDeleteMarkerReplicationArgs(status="Enabled"),
                destination=dest))
        # Replication needs versioning on both sides first.
        self.config = aws.s3.BucketReplicationConfig(
            name, bucket=source.bucket.id, role=self.role.arn, rules=rules, opts=pulumi.ResourceOptions(
                parent=self, provider=provider, depends_on=[source.versioning, *[d.versioning for d in destinations]]))
        self.register_outputs({})


def reader_policy(bucket_arn: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket_arn},
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"{bucket_arn}/*"}]})


@dataclass
class ReaderRole:
    role: aws.iam.Role
    association: aws.eks.PodIdentityAssociation


def model_reader(name: str, bucket: ModelBucket, cluster: aws.eks.Cluster, namespace: str, service_account: str,
                 provider: aws.Provider, tags: dict, parent: pulumi.Resource) -> ReaderRole:
    child = pulumi.ResourceOptions(parent=parent, provider=provider)
    role = aws.iam.Role(f"{name}-model-reader", tags=tags, opts=child, assume_role_policy=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession"],
                                                "Principal": {"Service": "pods.eks.amazonaws.com"}}]}))
    aws.iam.RolePolicy(f"{name}-model-reader", role=role.id, policy=bucket.bucket.arn.apply(reader_policy), opts=child)
    association = aws.eks.PodIdentityAssociation(f"{name}-model-reader", cluster_name=cluster.name, namespace=namespace,
                                                 service_account=service_account, role_arn=role.arn, opts=child)
    return ReaderRole(role, association)
