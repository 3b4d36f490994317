"""Rules for the tiers that render Kubernetes objects (medium, and every region of large):
serving namespaces, the entry point's routing keys and TLS certificate source.

Spec-only (no tier code): each tier's `checks` module calls `problems` from its own
`problems(spec)` and `risks` from its `risks(spec)` with its platform section, that section's key
prefix and its serving namespaces, so neither the resolver nor this module branches on the tier.
"""

from __future__ import annotations

from components.spec.errors import Problem
from components.spec.model import PlatformSpec, StackSpec

# Namespaces Kubernetes itself creates (kubernetes.io/docs/concepts/overview/working-with-objects/
# namespaces/, "Initial namespaces"); the same page reserves the `kube-` prefix: "Avoid creating
# namespaces with the prefix kube-, since it is reserved for Kubernetes system namespaces."
KUBERNETES_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")
# The add-ons the medium and large tiers install, each in its own namespace
# (components/medium/names.py and addons.py): a serving namespace there would put the stack's
# default-deny NetworkPolicy and Namespace object on top of the add-on's.
ADDON_NAMESPACES = {"gpu-operator": "the NVIDIA GPU Operator", "keda": "KEDA", "monitoring": "kube-prometheus-stack",
                    "lws-system": "the LeaderWorkerSet controller"}
# IngressClass names of controllers other than ingress-nginx, as their own docs name them: AWS
# Load Balancer Controller `alb` (kubernetes-sigs.github.io/aws-load-balancer-controller, "Ingress
# annotations"), GKE `gce` / `gce-internal` (cloud.google.com/kubernetes-engine/docs/concepts/
# ingress), Traefik `traefik`, Kong `kong`, HAProxy `haproxy`, Istio `istio`, Contour `contour`,
# Cilium `cilium`, Azure `azure-application-gateway` and `webapprouting.kubernetes.azure.com`.
# The rendered Ingress configures streaming only through `nginx.ingress.kubernetes.io/*`
# annotations (components/medium/network.py), which these ignore; the cloud load balancers
# (alb, gce, Azure Application Gateway) also reach pods from outside the cluster, not from a pod
# in routing.controllerNamespace, so the router's NetworkPolicy would admit nothing.
OTHER_INGRESS_CLASSES = ("alb", "gce", "gce-internal", "traefik", "kong", "haproxy", "istio", "contour", "cilium",
                         "azure-application-gateway", "webapprouting.kubernetes.azure.com")
OUTSIDE_CLUSTER_CLASSES = ("alb", "gce", "gce-internal", "azure-application-gateway")
INGRESS_NGINX_NAMESPACE = "ingress-nginx"


def _changed(section) -> set[str]:
    """Keys that differ from the default: Pulumi.yaml's project defaults fill every key, so
    whether a key was written in the stack file cannot be told, only whether it differs."""
    defaults = type(section)()
    return {name for name in type(section).model_fields if getattr(section, name) != getattr(defaults, name)}


def problems(spec: StackSpec, platform: PlatformSpec, prefix: str, namespaces: list[tuple[str, str]],
             argocd_namespaces: list[str]) -> list[Problem]:
    """`prefix` is the platform section's key ("platform", "large.platform"); `namespaces` are
    (key, namespace) of every serving namespace; `argocd_namespaces` those Argo CD runs in."""
    out: list[Problem] = []
    routing = platform.routing
    own = dict(ADDON_NAMESPACES)
    own.update({ns: "Argo CD" for ns in argocd_namespaces})
    own[routing.controller_namespace] = f"the ingress controller / gateway pods ({prefix}.routing.controllerNamespace)"
    if routing.kind == "httproute":
        own[routing.gateway_namespace] = f"the Gateway ({prefix}.routing.gatewayNamespace)"
    for key, ns in namespaces:
        if ns in KUBERNETES_NAMESPACES or ns.startswith("kube-"):
            out.append(Problem(key, f"{ns!r} is a Kubernetes system namespace (the kube- prefix is reserved); the stack "
                               "creates its namespace and a default-deny NetworkPolicy in it, which would cut off what "
                               "runs there: use a namespace of its own, e.g. tierscale"))
        elif ns in own:
            out.append(Problem(key, f"{ns!r} is the namespace of {own[ns]}; the stack's default-deny NetworkPolicy "
                               "would cut off its traffic: use a namespace of its own, e.g. tierscale"))
    changed = _changed(routing)
    tls = spec.security.tls
    if routing.kind == "ingress":
        for name, camel in (("gateway_name", "gatewayName"), ("gateway_namespace", "gatewayNamespace")):
            if name in changed:
                out.append(Problem(f"{prefix}.routing.{camel}", "applies to routing.kind: httproute; this stack renders "
                                   "an Ingress (routing.kind: ingress): remove it or set kind: httproute"))
        if routing.ingress_class in OTHER_INGRESS_CLASSES:
            outside = (", and its load balancer reaches pods from outside the cluster, which the router's "
                       "NetworkPolicy (admitting routing.controllerNamespace) does not allow"
                       if routing.ingress_class in OUTSIDE_CLUSTER_CLASSES else "")
            out.append(Problem(f"{prefix}.routing.ingressClass", (
                f"{routing.ingress_class!r} is not ingress-nginx: the rendered Ingress sets streaming (proxy-buffering "
                f"off) and timeouts only with nginx.ingress.kubernetes.io annotations, which that controller ignores"
                f"{outside}: use an ingress-nginx IngressClass, or routing.kind: httproute on a Gateway")))
        if tls.enabled and not tls.cluster_issuer:
            out.append(Problem("security.tls.clusterIssuer", (
                "required with security.tls.enabled and routing.kind: ingress: the Ingress serves the certificate in "
                "Secret tierscale-tls, which cert-manager issues for this ClusterIssuer and nothing else creates "
                "(without it ingress-nginx answers with its self-signed default certificate)")))
    else:
        if "ingress_class" in changed:
            out.append(Problem(f"{prefix}.routing.ingressClass", "applies to routing.kind: ingress; an HTTPRoute "
                               "attaches to routing.gatewayName instead: remove it"))
        if tls.cluster_issuer:
            out.append(Problem("security.tls.clusterIssuer", (
                "with routing.kind: httproute TLS terminates on the Gateway's HTTPS listener (its certificateRefs, "
                "managed with the Gateway), so this ClusterIssuer would issue nothing: remove it")))
    if spec.gateway.port != type(spec.gateway)().port:
        out.append(Problem("gateway.port", "applies to the small tier's gateway; this tier is reached through its "
                           "Ingress/Gateway on 80/443: remove it"))
    return out


def risks(spec: StackSpec, platform: PlatformSpec, prefix: str) -> list[Problem]:
    """Legal but likely wrong: warnings (`validate --strict` fails on them)."""
    out: list[Problem] = []
    routing = platform.routing
    if routing.kind == "httproute" and routing.controller_namespace == INGRESS_NGINX_NAMESPACE:
        out.append(Problem(f"{prefix}.routing.controllerNamespace", (
            f"{INGRESS_NGINX_NAMESPACE!r} is ingress-nginx's namespace, but routing.kind is httproute; ingress-nginx "
            "implements Ingress only, not the Gateway API, so the router's NetworkPolicy would admit no gateway pod: "
            "set it to the namespace of the Gateway's data-plane pods (Istio: the Gateway's namespace, "
            f"{routing.gateway_namespace!r}; Envoy Gateway: envoy-gateway-system)")))
    return out


def tls_outside_kubernetes(spec: StackSpec) -> list[Problem]:
    """For the tiers without cert-manager."""
    if spec.security.tls.cluster_issuer:
        return [Problem("security.tls.clusterIssuer", "applies to the medium and large tiers (cert-manager on "
                        "Kubernetes); the small tier's nginx reads tls.crt/tls.key from <deployDir>/tls")]
    return []
