"""GitOps: an Argo CD Application that syncs the rendered manifests from a repository path.

Workflow: `tierscale render --stack NAME`, commit `build/NAME/kubernetes/` to
`platform.gitops.repoUrl` at `platform.gitops.path`, and Argo CD applies it.
"""

from __future__ import annotations

from components.medium.names import LWS_API_VERSION, PART_OF
from components.spec import ResolvedStack


def application(stack: ResolvedStack, stack_name: str, ns: str) -> dict:
    gitops = stack.platform.gitops
    assert gitops is not None
    # KEDA owns replicas of autoscaled Deployments (and LeaderWorkerSets: groups).
    ignore = [{"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]}]
    if any(m.multi_node for m in stack.models):
        ignore.append({"group": LWS_API_VERSION.split("/")[0], "kind": "LeaderWorkerSet",
                       "jsonPointers": ["/spec/replicas"]})
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": f"tierscale-{stack_name}", "namespace": gitops.argocd_namespace, "labels": dict(PART_OF),
                     "finalizers": ["resources-finalizer.argocd.argoproj.io"]},
        "spec": {
            "project": "default",
            "source": {"repoURL": gitops.repo_url, "path": gitops.path, "targetRevision": gitops.target_revision,
                       "directory": {"recurse": True}},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": ns},
            "syncPolicy": {
                "automated": {"prune": True, "selfHeal": True},
                # RespectIgnoreDifferences: without it ignoreDifferences only hides the diff, and
                # every sync still applies Git's replicas over KEDA's (Argo CD "Diffing
                # Customization" / sync option RespectIgnoreDifferences=true).
                "syncOptions": ["CreateNamespace=true", "ServerSideApply=true", "RespectIgnoreDifferences=true"],
            },
            "ignoreDifferences": ignore,
        },
    }
