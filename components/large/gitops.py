"""GitOps for the large tier: one Argo CD ApplicationSet on the primary region's cluster (the
hub) generating one Application per region, each syncing `<path>/<region>` to the cluster Argo
CD knows under the region's name (`argocd cluster add <context> --name <region>`).

What is in Git per region: the large tier's own objects (Karpenter NodePools and EC2NodeClass,
canary revisions and weights, the model-reader ServiceAccount), rendered to
`build/<stack>/<region>/gitops/`. Pulumi keeps the clusters, add-ons, Secrets and the serving
workloads of each region's MediumTier.
"""

from __future__ import annotations

from components.medium.names import PART_OF
from components.spec.model import GitOpsSpec, Region
from components.large.sizing import namespace


def application_set(stack_slug: str, gitops: GitOpsSpec, regions: list[Region]) -> dict:
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": f"tierscale-{stack_slug}", "namespace": gitops.argocd_namespace, "labels": dict(PART_OF)},
        "spec": {
            "generators": [{"list": {"elements": [{"region": r.name, "namespace": namespace(r)} for r in regions]}}],
            "template": {
                "metadata": {"name": f"tierscale-{stack_slug}-{{{{region}}}}", "labels": dict(PART_OF)},
                "spec": {
                    "project": "default",
                    "source": {"repoURL": gitops.repo_url, "targetRevision": gitops.target_revision,
                               "path": f"{gitops.path}/{{{{region}}}}", "directory": {"recurse": True}},
                    "destination": {"name": "{{region}}", "namespace": "{{namespace}}"},
                    "syncPolicy": {"automated": {"prune": True, "selfHeal": True},
                                   "syncOptions": ["ServerSideApply=true", "RespectIgnoreDifferences=true"]},
                    "ignoreDifferences": [{"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]}],
                },
            },
        },
    }
