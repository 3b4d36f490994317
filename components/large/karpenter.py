"""Moved to components/karpenter.py (shared by the large tier and medium EKS); kept as an alias."""

from components.karpenter import *  # noqa: F401,F403
from components.karpenter import (  # noqa: F401
    AMI_ALIAS, DISCOVERY_TAG, EVENT_RULES, NAMESPACE, NODE_CLASS, NODE_POLICIES, SERVICE_ACCOUNT, KarpenterAws,
    chart, chart_reference, controller_policy, helm_values, node_class, node_pool, node_pools,
)
