"""AWS region names and their partitions, for the keys that name a region (target.region,
target.regions[].awsRegion).

Source: pulumi-aws 7.51.1 (the provider this project pins), `sdk/python/pulumi_aws/_enums.py`
class `Region` ("any valid Amazon region that may be targeted with deployments");
tests/spec/test_validation_classes.py fails when the installed provider's list differs.
Partitions: the region prefixes of botocore's `data/endpoints.json` `partitions[].regionRegex`
(aws-cn `^cn\\-\\w+\\-\\d+$`, aws-us-gov `^us\\-gov\\-\\w+\\-\\d+$`, the ISO partitions, aws-eusc);
credentials, Route 53 health checks and Global Accelerator belong to one partition, so one
stack's regions must share it.
"""

from __future__ import annotations

AWS_REGIONS = (
    "af-south-1", "ap-east-1", "ap-east-2", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1",
    "ap-south-2", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4", "ap-southeast-5",
    "ap-southeast-6", "ap-southeast-7", "ca-central-1", "ca-west-1", "eu-central-1", "eu-central-2", "eu-north-1",
    "eu-south-1", "eu-south-2", "eu-west-1", "eu-west-2", "eu-west-3", "il-central-1", "me-central-1", "me-south-1",
    "mx-central-1", "sa-east-1", "us-east-1", "us-east-2", "us-west-1", "us-west-2", "cn-north-1", "cn-northwest-1",
    "eusc-de-east-1", "us-gov-east-1", "us-gov-west-1", "us-iso-east-1", "us-iso-west-1", "us-isob-east-1",
    "us-isob-west-1", "eu-isoe-west-1", "us-isof-east-1", "us-isof-south-1",
)

_PARTITIONS = (("cn-", "aws-cn"), ("us-gov-", "aws-us-gov"), ("us-isob-", "aws-iso-b"), ("us-isof-", "aws-iso-f"),
               ("us-iso-", "aws-iso"), ("eu-isoe-", "aws-iso-e"), ("eusc-", "aws-eusc"))


def partition(region: str) -> str:
    return next((p for prefix, p in _PARTITIONS if region.startswith(prefix)), "aws")


def unknown_region(region: str) -> str | None:
    """None for a real region, else the message (with the closest name)."""
    if region in AWS_REGIONS:
        return None
    from components.suggestions import suggestion

    commercial = [r for r in AWS_REGIONS if partition(r) == "aws"]
    return (f"{region!r} is not an AWS region{suggestion(region, AWS_REGIONS)}; regions: {', '.join(commercial)} "
            "(and the cn-, us-gov- partitions)")
