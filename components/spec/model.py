"""The typed stack spec: every key a stack may set under the `tierscale:` config namespace.

Field descriptions here are the documentation: the README's configuration reference and the
`config:` block of Pulumi.yaml are generated from these models (`tierscale schema`).
Keys are camelCase in stack files, like all Pulumi config.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal, Optional, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator
from pydantic.alias_generators import to_camel

from components import pins
from components.facts import Dtype, ModelFacts, gpu_types
from components.tiers import TIERS

DNS_LABEL = r"^[a-z]([-a-z0-9]{0,40}[a-z0-9])?$"
# RFC 1123 subdomain, lowercase (Kubernetes object names, StorageClass/IngressClass names).
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# A DNS name for a certificate / Ingress host: lowercase labels, optionally one leading "*.".
HOSTNAME = r"^(\*\.)?([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)*[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
HTTP_URL = r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[^\s]*)?$"
# What Argo CD clones: https/ssh/git URLs or scp-style git@host:path.
GIT_URL = r"^((https?|ssh|git)://[^\s]+|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+)$"
UNIX_USER = r"^[a-z_][a-z0-9_-]{0,31}$"
# Kubernetes minor versions every pinned piece supports (components/pins.yaml says why).
KUBERNETES_VERSIONS = pins.KUBERNETES_VERSIONS
DEFAULT_KUBERNETES_VERSION = pins.DEFAULT_KUBERNETES_VERSION

# Directories a Compose project must never be written into (its files would be replaced).
SYSTEM_DIRS = ("/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/opt", "/proc",
               "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var", "/var/lib", "/var/run")
SYSTEM_TREES = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/root", "/run", "/sbin",
                "/sys", "/usr")


def _host_or_ip(value: str) -> str:
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    if not re.fullmatch(r"[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*", value):
        raise ValueError(f"{value!r} is neither a DNS name nor an IP address")
    return value


HostOrIp = Annotated[str, AfterValidator(_host_or_ip)]

# One tier list: the tier registry (components/tiers.py).
Tier = Literal[tuple(TIERS)]  # type: ignore[valid-type]
Quantization = Dtype
# One GPU list: the keys of components/facts/gpus.yaml.
GpuType = Literal[gpu_types()]  # type: ignore[valid-type]


class SpecModel(BaseModel):
    """Base of every spec section: camelCase keys, unknown keys rejected, immutable."""

    # strict: no coercion, so `replicas: true` or `driverBranch: 570` are errors, as they are
    # for a reader of the file; keys only in camelCase (snake_case is an unknown key).
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, validate_by_name=False, validate_by_alias=True,
        frozen=True, strict=True, allow_inf_nan=False,
    )


# --- targets -----------------------------------------------------------------------------


class SshSettings(SpecModel):
    user: str = Field(default="ubuntu", pattern=UNIX_USER, description="SSH user with permission to run docker.")
    port: int = Field(default=22, ge=1, le=65535, description="SSH port.")
    host_key: Optional[str] = Field(
        default=None, description="Expected host public key (recommended; pins the host)."
    )


class DockerHostTarget(SpecModel):
    """Small tier: one Docker host, the local machine or one reached over SSH."""

    kind: Literal["docker-host"]
    host: HostOrIp = Field(
        default="localhost",
        description="'localhost' runs docker locally; any other value is reached over SSH "
        "with the `sshPrivateKey` secret.",
    )
    ssh: SshSettings = Field(default_factory=SshSettings, description="SSH settings for a remote host.")
    deploy_dir: str = Field(
        default="/opt/tierscale", pattern=r"^/[-A-Za-z0-9._/]*$",
        description="Absolute directory for the Compose project (not a system directory such as /etc or /root).",
    )
    gpu_device_ids: Optional[list[Annotated[str, Field(pattern=r"^([0-9]{1,2}|GPU-[0-9a-fA-F-]{36}|MIG-[0-9a-fA-F-]{36})$")]]] = Field(
        default=None, min_length=1,
        description="GPU ids to use (nvidia-smi index or UUID), at most gpu.perNode; default: 0..gpu.perNode-1.",
    )

    @field_validator("deploy_dir")
    @classmethod
    def _not_a_system_dir(cls, value: str) -> str:
        path = "/" + "/".join(p for p in value.split("/") if p)
        if ".." in path.split("/"):
            raise ValueError(f"{value!r} must not contain '..'")
        if path in SYSTEM_DIRS or any(path.startswith(tree + "/") for tree in SYSTEM_TREES):
            raise ValueError(f"{value!r} is a system directory; use a directory of its own such as /opt/tierscale/<stack> or /srv/tierscale")
        return value


class KubernetesTarget(SpecModel):
    """Medium tier on an existing cluster."""

    kind: Literal["kubernetes"]
    kubeconfig: Optional[str] = Field(
        default=None,
        description="Path to a kubeconfig; default: the ambient one (KUBECONFIG). A kubeconfig "
        "holding credentials can instead be set as the `kubeconfig` secret.",
    )
    context: Optional[str] = Field(default=None, description="kubeconfig context to use.")
    namespace: str = Field(default="tierscale", pattern=DNS_LABEL, description="Namespace for serving workloads.")
    gpu_nodes: PositiveInt = Field(description="GPU nodes available for serving (used to check fit).")
    kubernetes_version: Literal[KUBERNETES_VERSIONS] = Field(  # type: ignore[valid-type]
        default=DEFAULT_KUBERNETES_VERSION,
        description="The cluster's Kubernetes minor version (quoted, e.g. \"1.30\"); manifests are validated for it.",
    )


class EksNodeGroup(SpecModel):
    instance_type: str = Field(pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9]+$", description="EC2 instance type, e.g. p5.48xlarge.")
    min_size: int = Field(default=1, ge=0, description="Fewest nodes (minSize <= desiredSize <= maxSize).")
    max_size: PositiveInt = Field(default=4, le=450, description="Most nodes.")
    desired_size: int = Field(default=2, ge=0, description="Nodes at creation.")


class EksTarget(SpecModel):
    """Medium tier on a new AWS EKS cluster created by the stack."""

    kind: Literal["eks"]
    region: str = Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$", description="AWS region.")
    kubernetes_version: Literal[KUBERNETES_VERSIONS] = Field(  # type: ignore[valid-type]
        default=DEFAULT_KUBERNETES_VERSION, description="EKS control-plane version (quoted, e.g. \"1.30\")."
    )
    vpc_cidr: str = Field(default="10.42.0.0/16", description="VPC CIDR: a private IPv4 network from /16 to /22.")
    availability_zones: PositiveInt = Field(default=3, ge=2, le=6, description="AZs the VPC spans (>= 2).")
    namespace: str = Field(default="tierscale", pattern=DNS_LABEL)
    gpu_node_group: EksNodeGroup = Field(description="GPU managed node group.")
    system_node_group: EksNodeGroup = Field(
        default_factory=lambda: EksNodeGroup.model_validate(
            {"instanceType": "m6i.xlarge", "minSize": 2, "maxSize": 4, "desiredSize": 2}),
        description="Node group for add-ons and gateways.",
    )

    @field_validator("vpc_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        try:
            network = ipaddress.IPv4Network(value, strict=True)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not an IPv4 network such as 10.42.0.0/16 ({exc})") from None
        # Subnets are carved as /prefix+3 (private) and /prefix+6 (public); AWS's smallest is /28.
        if not 16 <= network.prefixlen <= 22:
            raise ValueError(f"{value!r}: prefix /{network.prefixlen} is outside /16../22 (AWS VPCs start at /16; "
                             "public subnets are /prefix+6 and must be /28 or larger)")
        if not network.is_private:
            raise ValueError(f"{value!r} is not a private (RFC 1918) network")
        return value


class BaremetalHost(SpecModel):
    name: str = Field(pattern=r"^[a-zA-Z0-9][-a-zA-Z0-9.]*$", description="Inventory hostname.")
    address: HostOrIp = Field(description="Address Ansible connects to.")
    gpus: int = Field(ge=0, description="NVIDIA GPUs the host must have (0 for CPU-only helpers).")
    roles: list[Literal["inference", "k8s_worker"]] = Field(
        default_factory=lambda: ["inference"], description="Inventory groups the host joins."
    )
    gpu_type: Optional[GpuType] = Field(  # type: ignore[valid-type]
        default=None, description="This host's GPU type when it differs from gpu.type (mixed fleets).")
    nvswitch: bool = Field(default=False, description="HGX/DGX board with NVSwitch (needs fabric manager).")
    models: list[str] = Field(default_factory=list, description="Names of `models` this host serves.")


class BaremetalTarget(SpecModel):
    """Bare-metal nodes bootstrapped with the Ansible roles."""

    kind: Literal["baremetal"]
    ssh_user: str = Field(default="ubuntu", pattern=UNIX_USER,
                          description="Ansible remote user; any user but root escalates with sudo (ansible_become).")
    hosts: list[BaremetalHost] = Field(min_length=1, description="Nodes to bootstrap.")
    driver_branch: str = Field(default=pins.DRIVER_BRANCH, pattern=r"^\d{3}$", description="NVIDIA driver branch (quoted).")
    cuda_version: str = Field(default=pins.CUDA_VERSION, pattern=r"^\d+\.\d+$", description="CUDA toolkit version (quoted).")
    nccl_version: str = Field(default=pins.NCCL_VERSION, pattern=r"^\d+\.\d+\.\d+$", description="libnccl version.")
    open_kernel_modules: bool = Field(default=True, description="Use NVIDIA's open kernel modules.")
    allow_reboot: bool = Field(default=False, description="Reboot nodes when the driver changed.")


Target = Annotated[
    Union[DockerHostTarget, KubernetesTarget, EksTarget, BaremetalTarget, "MultiRegionTarget"], Field(discriminator="kind")
]

# Which target kinds each tier accepts.
TIER_TARGETS: dict[str, tuple[str, ...]] = {name: entry.targets for name, entry in TIERS.items()}


# --- models ------------------------------------------------------------------------------


class SpeculativeDecoding(SpecModel):
    method: Literal["ngram", "eagle", "eagle3", "draft_model", "mtp"] = Field(
        description="vLLM speculative method."
    )
    num_speculative_tokens: int = Field(default=4, ge=1, le=16)
    draft_model: Optional[str] = Field(default=None, pattern=r"^[A-Za-z0-9][\w.-]*/[\w.-]+$", description="HF repo of the draft/EAGLE head model.")


class Autoscaling(SpecModel):
    min_replicas: int = Field(default=2, ge=0, description="Lower bound (whitepaper default 2).")
    max_replicas: PositiveInt = Field(default=50, description="Upper bound (whitepaper default 50).")
    queue_depth_threshold: PositiveInt = Field(
        default=10, description="Target vllm:num_requests_waiting per replica (whitepaper default 10)."
    )
    polling_interval_s: PositiveInt = Field(default=15, le=300, description="How often KEDA queries Prometheus.")
    cooldown_period_s: Optional[PositiveInt] = Field(
        default=None, description="KEDA cooldownPeriod: how long after the last trigger activity KEDA scales to zero; "
        "it applies only when minReplicas is 0. Scale-down pacing above zero is the HPA stabilization window "
        "(2 x the model's startup budget). Default: 2 x the model's startup budget."
    )
    fallback_replicas: Optional[int] = Field(
        default=None, ge=1, description="Replicas KEDA holds if Prometheus cannot be queried; default: minReplicas."
    )

    @field_validator("min_replicas")
    @classmethod
    def _no_scale_to_zero(cls, value: int) -> int:
        # KEDA's only trigger is vLLM's own queue metric (components/medium/autoscaling.py), which
        # no pod exports at zero replicas: an empty query result is "no demand" (ignoreNullValues),
        # so a model scaled to zero would never wake. The model router is nginx without per-model
        # request metrics, so there is no demand signal that exists at zero (docs/platform.md).
        if value == 0:
            raise ValueError("0 (scale to zero) is refused: the only scaling signal, vLLM's "
                             "vllm:num_requests_waiting, does not exist while no replica runs, so the model would "
                             "never scale back up; use minReplicas >= 1")
        return value


# KV-cache tiers beyond the GPU (L1): rendered by components/serving/kv_cache.py as the pinned
# vLLM's own offloading flags; docs/how-to/kv-cache.md.
ABS_PATH = r"^/[A-Za-z0-9._/-]*[A-Za-z0-9._-]$"


class KvDiskTier(SpecModel):
    size_gb: PositiveInt = Field(le=100_000, description="Disk for this tier per replica (GiB); vLLM 0.32.0's fs tier "
                                 "never deletes, so this is the volume size it fills, not a quota vLLM keeps.")
    path: Optional[str] = Field(default=None, pattern=ABS_PATH, description="Host directory (bare metal, Compose); "
                                "default /var/cache/tierscale-kv/<model>.")
    storage_class: Optional[str] = Field(default=None, pattern=DNS_SUBDOMAIN, description="Kubernetes: StorageClass of "
                                         "the per-pod ephemeral volume (local NVMe); default: the cluster default.")


class KvRemoteTier(SpecModel):
    kind: Literal["sharedFilesystem"] = Field(description="sharedFilesystem: vLLM's fs tier on a volume every replica "
                                              "mounts (NFS/EFS/Lustre); replicas read each other's KV blocks.")
    size_gb: PositiveInt = Field(le=1_000_000, description="Size of the shared volume (GiB).")
    path: Optional[str] = Field(default=None, pattern=ABS_PATH, description="Host mount point of the shared file "
                                "system (bare metal, Compose; mounted by you).")
    storage_class: Optional[str] = Field(default=None, pattern=DNS_SUBDOMAIN, description="Kubernetes: a "
                                         "ReadWriteMany StorageClass (e.g. efs-sc); default: the cluster default.")


class KvCacheSpec(SpecModel):
    cpu_offload_gb: PositiveInt = Field(le=16_384, description="L2: CPU memory per replica for offloaded KV blocks "
                                        "(GiB; vLLM --kv-offloading-size, summed over TP ranks).")
    disk: Optional[KvDiskTier] = Field(default=None, description="L3: local disk (NVMe) behind the CPU tier.")
    remote: Optional[KvRemoteTier] = Field(default=None, description="L4: a store shared by the model's replicas.")


class ModelRouting(SpecModel):
    affinity: Literal["none", "session", "prefix"] = Field(
        default="none", description="nginx gateway: pin requests to a replica by consistent hashing, so vLLM's prefix "
        "cache is reused. session: the `X-Session-Id` header or the body's `user`; prefix: the session key when there "
        "is one, else the prompt's start (system prompt + first user message; `prompt`). Down or full replicas spill "
        "to the next on the ring, then to least_conn (docs/gateway.md#affinity).")
    prefix_chars: PositiveInt = Field(default=1024, le=65536, description="Characters of the prompt's start hashed "
                                      "for affinity: prefix.")
    load_bound: Optional[PositiveInt] = Field(default=None, le=100_000, description="Requests in flight on one "
                                              "replica through affinity before its keys spill to the next replica on "
                                              "the ring (nginx max_conns, shared by every worker); default: maxNumSeqs.")


class ModelSpec(SpecModel):
    id: str = Field(
        min_length=1,
        description="Catalog id (e.g. llama-3.1-8b) or Hugging Face repo id; a repo outside "
        "the catalog needs `custom` facts.",
    )
    name: Optional[str] = Field(
        default=None, pattern=DNS_LABEL, description="Service name; default: the catalog id with dots removed."
    )
    revision: Optional[str] = Field(default=None, pattern=r"^[A-Za-z0-9][\w./-]*$", description="HF revision (commit or tag) to pin.")
    served_model_name: Optional[str] = Field(
        default=None, pattern=r"^[A-Za-z0-9][\w.:/-]*$", description="Name clients send as `model`; default: the HF repo id."
    )
    custom: Optional[ModelFacts] = Field(default=None, description="Architecture facts for a model not in the catalog.")
    quantization: Optional[Quantization] = Field(
        default=None, description="Weight format; default: the checkpoint's native dtype."
    )
    kv_cache_dtype: Literal["auto", "fp8"] = Field(default="auto", description="KV-cache dtype.")
    tensor_parallel: Optional[PositiveInt] = Field(
        default=None, description="GPUs per replica (power of two); default: the planner's smallest fit."
    )
    pipeline_parallel: Optional[PositiveInt] = Field(default=None, description="Pipeline stages; default: planner.")
    max_model_len: Optional[PositiveInt] = Field(
        default=None, description="Context length served; default: min(model context, 8192)."
    )
    max_num_seqs: PositiveInt = Field(default=256, le=4096, description="Max concurrent sequences per replica.")
    gpu_memory_utilization: float = Field(
        default=0.9, gt=0.1, le=0.98, description="Share of GPU memory vLLM may use."
    )
    enable_prefix_caching: bool = Field(default=True, description="Automatic prefix caching.")
    kv_cache: Optional[KvCacheSpec] = Field(
        default=None, description="KV-cache tiers below GPU memory: CPU (L2), local disk (L3), shared store (L4)."
    )
    speculative_decoding: Optional[SpeculativeDecoding] = Field(default=None, description="Speculative decoding.")
    replicas: Optional[PositiveInt] = Field(
        default=None, description="Replicas; default: the planner's figure for this model's load."
    )
    expected_qps: Optional[float] = Field(
        default=None, ge=0, le=10_000_000,
        description="Requests/s this model receives (sizes its replicas); default: slo.expectedQps.",
    )
    autoscaling: Optional[Autoscaling] = Field(
        default=None, description="KEDA autoscaling bounds (medium tier only)."
    )
    max_surge: PositiveInt = Field(
        default=1, description="Extra replicas a rolling update may start (maxUnavailable is always 0)."
    )
    routing: ModelRouting = Field(default_factory=ModelRouting, description="Replica choice within the model at the "
                                  "nginx gateway: session or prompt-prefix affinity (default: least_conn).")


# --- platform sections -------------------------------------------------------------------


class GpuSpec(SpecModel):
    type: GpuType = Field(description="GPU model (a key of the GPU catalog).")
    per_node: PositiveInt = Field(le=16, description="GPUs per node (per host on the small tier).")


class GatewaySpec(SpecModel):
    kind: Literal["nginx", "litellm"] = Field(default="nginx", description="nginx least_conn, or a LiteLLM proxy.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port the gateway listens on.")
    connect_timeout_s: PositiveInt = Field(default=5, le=60, description="Upstream connect timeout.")
    read_timeout_s: PositiveInt = Field(default=600, le=3600, description="Upstream read timeout (generation).")
    max_request_body_mb: PositiveInt = Field(default=10, le=512, description="Largest request body accepted.")
    fallback_model: Optional[str] = Field(default=None, description="LiteLLM: `name` of the model to fall back to.")
    aliases: dict[str, str] = Field(
        default_factory=dict,
        description="LiteLLM: extra model names clients may use (e.g. OpenAI names) -> `name` of a served model.",
    )


class MonitoringSpec(SpecModel):
    enabled: bool = Field(default=True, description="Deploy Prometheus, Grafana and the alert rules.")
    scrape_interval_s: PositiveInt = Field(default=15, le=300)
    retention_days: PositiveInt = Field(default=15, le=365)


class SloSpec(SpecModel):
    ttft_p99_ms: PositiveInt = Field(default=500, description="Time-to-first-token p99 objective.")
    tpot_p99_ms: PositiveInt = Field(default=100, description="Time-per-output-token p99 objective.")
    availability: float = Field(default=99.9, ge=90, le=99.999, description="Availability objective (%).")
    expected_qps: float = Field(default=10, ge=0, le=10_000_000,
                                description="Expected requests/s per model, for replica sizing (models[].expectedQps overrides).")
    mean_prompt_tokens: PositiveInt = Field(default=512)
    mean_output_tokens: PositiveInt = Field(default=256)


class TlsSpec(SpecModel):
    enabled: bool = Field(default=False, description="Terminate TLS at the gateway / ingress.")
    hostname: Optional[str] = Field(default=None, pattern=HOSTNAME, description="DNS name on the certificate (lowercase).")
    cluster_issuer: Optional[str] = Field(default=None, pattern=DNS_SUBDOMAIN, description="cert-manager ClusterIssuer (medium tier).")


class SecuritySpec(SpecModel):
    api_auth: bool = Field(default=True, description="Require a bearer API key (the `apiKey` secret).")
    tls: TlsSpec = Field(default_factory=TlsSpec)


class GpuOperatorAddon(SpecModel):
    enabled: bool = Field(default=True, description="Install the NVIDIA GPU Operator (off if the cluster has it).")
    driver: Optional[bool] = Field(
        default=None,
        description="Let the operator install the driver; default: off on EKS (GPU AMIs ship it), on otherwise. "
        "Set false for nodes prepared by the bare-metal playbooks.",
    )
    mig_strategy: Literal["none", "single", "mixed"] = Field(default="none", description="MIG exposure strategy.")


class AddonToggle(SpecModel):
    enabled: bool = Field(default=True, description="Install it (off if the cluster already has it).")


class InferencePoolRouting(SpecModel):
    enabled: bool = Field(default=True, description="Render an InferencePool + llm-d endpoint picker per model.")
    gateway_name: str = Field(default="inference-gateway-internal", pattern=DNS_SUBDOMAIN,
                              description="Gateway (a GIE-conformant implementation: Istio, kgateway, Envoy AI Gateway, "
                              "GKE) the model router reaches the pools through; keep it cluster-internal.")
    gateway_namespace: str = Field(default="gateway-system", pattern=DNS_LABEL, description="Its namespace.")
    failure_mode: Literal["FailOpen", "FailClose"] = Field(
        default="FailOpen", description="What the Gateway does when the endpoint picker does not answer.")


class RoutingSpec(SpecModel):
    kind: Literal["ingress", "httproute"] = Field(
        default="ingress", description="Kubernetes Ingress, or a Gateway API HTTPRoute on an existing Gateway."
    )
    ingress_class: str = Field(default="nginx", pattern=DNS_SUBDOMAIN, description="IngressClass (kind: ingress).")
    gateway_name: str = Field(default="inference-gateway", pattern=DNS_SUBDOMAIN, description="Gateway the HTTPRoute attaches to.")
    gateway_namespace: str = Field(default="gateway-system", pattern=DNS_LABEL, description="Its namespace.")
    controller_namespace: str = Field(
        default="ingress-nginx", pattern=DNS_LABEL,
        description="Namespace of the ingress controller / gateway pods (the NetworkPolicy admits it).",
    )
    additional_hostnames: list[Annotated[str, Field(pattern=HOSTNAME)]] = Field(
        default_factory=list, description="Names the Ingress/HTTPRoute serves besides security.tls.hostname (the large "
        "tier adds each region's gateway hostname: Route 53 health checks send it as Host and SNI).")
    inference_pool: Optional[InferencePoolRouting] = Field(
        default=None, description="KV-cache-aware routing: an InferencePool and endpoint picker per model "
        "(Gateway API Inference Extension; docs/how-to/kv-cache.md).")


class ModelCacheSpec(SpecModel):
    shared: Optional[bool] = Field(
        default=None,
        description="One ReadWriteMany volume for all replicas (true) or a volume per pod (false); "
        "default: per pod on EKS (EBS is ReadWriteOnce), shared elsewhere.",
    )
    storage_class: Optional[str] = Field(default=None, pattern=DNS_SUBDOMAIN, description="StorageClass; default: gp3 on EKS, cluster default elsewhere.")


class GitOpsSpec(SpecModel):
    repo_url: str = Field(pattern=GIT_URL, description="Git repository Argo CD syncs from (https://, ssh:// or git@host:path).")
    path: str = Field(default="deploy/tierscale", pattern=r"^[\w-][\w./-]*$",
                      description="Directory in the repo holding the rendered manifests (relative, no '..').")
    target_revision: str = Field(default="main", pattern=r"^[\w./-]+$", description="Branch, tag or commit.")
    argocd_namespace: str = Field(default="argocd", pattern=DNS_LABEL)

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        if ".." in value.split("/"):
            raise ValueError(f"{value!r} must not contain '..'")
        return value


class PlatformSpec(SpecModel):
    """Medium tier: cluster add-ons, routing, model cache, GitOps."""

    gpu_operator: GpuOperatorAddon = Field(default_factory=GpuOperatorAddon)
    keda: AddonToggle = Field(default_factory=AddonToggle, description="KEDA (needed for autoscaling).")
    kube_prometheus_stack: AddonToggle = Field(
        default_factory=AddonToggle, description="kube-prometheus-stack with Grafana (needed for monitoring CRDs)."
    )
    prometheus_url: Optional[str] = Field(
        default=None, pattern=HTTP_URL,
        description="Prometheus KEDA queries; default: the kube-prometheus-stack this stack installs. "
        "Set it when kubePrometheusStack.enabled is false.",
    )
    routing: RoutingSpec = Field(default_factory=RoutingSpec)
    model_cache: ModelCacheSpec = Field(default_factory=ModelCacheSpec)
    gitops: Optional[GitOpsSpec] = Field(default=None, description="Also render an Argo CD Application.")


# --- large tier: regions (target kind multi-region) ------------------------------------------

AWS_REGION = r"^[a-z]{2}(-gov)?-[a-z]+-\d$"
LOAD_BALANCER_ARN = r"^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:loadbalancer/(net|app)/[\w-]+/[0-9a-f]+$"


class RegionModel(SpecModel):
    name: str = Field(pattern=DNS_LABEL, description="`name` of an entry in `models` this region serves.")
    min_replicas: PositiveInt = Field(default=2, description="Replicas always running here (carried by the on-demand floor).")
    max_replicas: PositiveInt = Field(description="Most replicas KEDA may run here; N+1 counts these.")


class RegionGateway(SpecModel):
    hostname: str = Field(pattern=HOSTNAME, description="The region's own gateway DNS name (its load balancer or "
                          "ingress address): records point at it and health checks probe it.")
    load_balancer_arn: Optional[str] = Field(
        default=None, pattern=LOAD_BALANCER_ARN,
        description="ARN of the region's gateway NLB/ALB: the Global Accelerator endpoint (needed with globalAccelerator).")


class Region(SpecModel):
    """One region of a large stack: a new EKS cluster, or an existing cluster (an on-premises site)."""

    name: str = Field(pattern=DNS_LABEL, description="Region name (DNS label): its render folder, `region` label and record id.")
    cluster: Literal["eks", "kubernetes"] = Field(
        description="eks: a new EKS cluster (the medium tier's EksCluster, its own aws.Provider); kubernetes: an "
        "existing cluster by kubeconfig context (e.g. an on-premises data centre).")
    aws_region: str = Field(pattern=AWS_REGION, description="AWS region of the EKS cluster and its model bucket; for an "
                            "existing cluster, the AWS region nearest to it (latency records).")
    kubernetes_version: Literal[KUBERNETES_VERSIONS] = Field(  # type: ignore[valid-type]
        default=DEFAULT_KUBERNETES_VERSION, description="The cluster's Kubernetes minor version (quoted).")
    namespace: Optional[str] = Field(default=None, pattern=DNS_LABEL, description="Namespace for serving workloads, "
                                     "any, also the same in every region (objects are named by region); default: tierscale-<name>.")
    gpu_nodes: PositiveInt = Field(description="GPU nodes this region can reach: the Karpenter GPU limit (eks) or the "
                                   "cluster's GPU nodes (kubernetes).")
    on_demand_floor_nodes: Optional[int] = Field(
        default=None, ge=0, description="eks: on-demand GPU nodes Karpenter prefers (weight 100, limit); spot takes the rest. "
        "Default: enough for every model's minReplicas here.")
    gpu_instance_types: Optional[list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")]]] = Field(
        default=None, min_length=1, description="eks: instance types Karpenter may launch; default: every type in "
        "components/facts/gpus.yaml with gpu.perNode gpu.type GPUs.")
    vpc_cidr: str = Field(default="10.42.0.0/16", description="eks: VPC CIDR, a private IPv4 network from /16 to /22.")
    availability_zones: PositiveInt = Field(default=3, ge=2, le=6, description="eks: AZs the VPC spans (>= 2).")
    system_node_group: EksNodeGroup = Field(
        default_factory=lambda: EksNodeGroup.model_validate(
            {"instanceType": "m6i.xlarge", "minSize": 2, "maxSize": 4, "desiredSize": 2}),
        description="eks: node group for add-ons, Karpenter and gateways.")
    kubeconfig: Optional[str] = Field(default=None, description="kubernetes: path to a kubeconfig.")
    context: Optional[str] = Field(default=None, description="kubernetes: kubeconfig context of this cluster.")
    gateway: RegionGateway = Field(description="The region's entry point for global traffic.")
    traffic_dial: int = Field(default=100, ge=0, le=100, description="Share of this region's traffic to keep (Global "
                              "Accelerator traffic dial); 0 drains the region (Route 53: its record is withdrawn).")
    models: list[RegionModel] = Field(min_length=1, description="Models served here, each with its replica bounds.")

    @field_validator("vpc_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        return EksTarget._cidr(value)


class MultiRegionTarget(SpecModel):
    """Large tier: a set of regional clusters behind global traffic management."""

    kind: Literal["multi-region"]
    primary_region: Optional[str] = Field(
        default=None, pattern=DNS_LABEL, description="Region that holds the source model bucket, the Argo CD hub and "
        "(active-passive) the primary record; default: the first region.")
    regions: list[Region] = Field(min_length=1, description="The regional clusters.")


# --- large tier: the `large` section ---------------------------------------------------------


# The only paths the gateway/model router answers without an API key (components/serving/
# model_router.py HEALTH_PATH / READY_PATH, the `map $uri $tierscale_public` in
# templates/gateway/nginx.conf.j2); every other path is 401 with apiAuth or not routed at all.
HEALTH_CHECK_PATHS = ("/gateway/ready", "/gateway/health")


class HealthCheckSpec(SpecModel):
    path: Literal[HEALTH_CHECK_PATHS] = Field(  # type: ignore[valid-type]
        default="/gateway/ready", description="Path Route 53 probes on each region's gateway: /gateway/ready (200 only "
        "while every model of the region has a ready replica) or /gateway/health (nginx alive); the only paths the "
        "router serves without an API key.")
    port: int = Field(default=443, ge=1, le=65535, description="Port probed: the Gateway/Ingress listener (443 with "
                      "TLS, HTTPS check; 80 without, HTTP check).")
    interval_s: Literal[10, 30] = Field(default=10, description="Seconds between probes (Route 53 and Global Accelerator "
                                        "accept 10 or 30).")
    failure_threshold: int = Field(default=3, ge=1, le=10, description="Consecutive failures before a region is unhealthy (1-10).")


class LoadBalancerHealthCheckSpec(SpecModel):
    """The regional load balancers' target-group health check (set on the LB, e.g. by the AWS Load Balancer
    Controller's Service/Ingress annotations; tierscale does not create those load balancers)."""

    interval_s: int = Field(ge=5, le=300, description="HealthCheckIntervalSeconds of the target group (5-300).")
    unhealthy_threshold: int = Field(ge=2, le=10, description="UnhealthyThresholdCount of the target group (2-10).")


class GlobalTrafficSpec(SpecModel):
    kind: Literal["route53", "globalAccelerator"] = Field(
        default="route53", description="route53: latency (active-active, global) or failover (active-passive) records; "
        "globalAccelerator: anycast IPs, one endpoint group per region with a traffic dial.")
    hosted_zone_id: str = Field(pattern=r"^Z[A-Z0-9]{1,31}$", description="Route 53 hosted zone of `domain`.")
    domain: str = Field(pattern=HOSTNAME, description="The global API name clients use.")
    ttl_s: int = Field(default=10, ge=0, le=86400, description="DNS TTL of the records (route53): part of the failover time.")
    health_check: HealthCheckSpec = Field(default_factory=HealthCheckSpec, description="Per-region health check.")
    alarm_topic_arn: Optional[str] = Field(default=None, pattern=r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[\w-]+$",
                                           description="SNS topic the health-check alarms notify (route53).")
    load_balancer_health_check: Optional[LoadBalancerHealthCheckSpec] = Field(
        default=None, description="globalAccelerator (required there): the health-check settings of the regional "
        "NLB/ALB target groups. Global Accelerator ignores an endpoint group's own health-check settings for load "
        "balancer endpoints and uses the load balancer's, so failover time follows these.")

    @model_validator(mode="after")
    def _inert_settings(self) -> "GlobalTrafficSpec":
        """Refuse settings the chosen service never reads (components/facts/large.yaml, health_checks)."""
        if self.kind == "globalAccelerator":
            inert = {"health_check": "healthCheck", "ttl_s": "ttlS", "alarm_topic_arn": "alarmTopicArn"}
            for field, key in inert.items():
                if field in self.model_fields_set:
                    raise ValueError(
                        f"{key} is inert with kind globalAccelerator: endpoint groups in front of NLB/ALB ignore their "
                        "own health-check settings and use the load balancer's target health, and the alias record has "
                        "no TTL; remove it and describe the load balancers' checks in loadBalancerHealthCheck")
            if self.load_balancer_health_check is None:
                raise ValueError("loadBalancerHealthCheck is required with kind globalAccelerator: failover time "
                                 "follows the NLB/ALB target-group health check (intervalS, unhealthyThreshold)")
        elif self.load_balancer_health_check is not None:
            raise ValueError("loadBalancerHealthCheck is inert with kind route53 (Route 53 runs its own healthCheck); "
                             "remove it")
        return self


class KarpenterSpec(SpecModel):
    spot: bool = Field(default=True, description="Offer spot capacity above the on-demand floor (bursts).")
    consolidate_after: str = Field(default="30m", pattern=r"^\d+(s|m|h)$",
                                   description="How long a node must be empty before Karpenter removes it (WhenEmpty).")
    expire_after: str = Field(default="720h", pattern=r"^\d+h$", description="Node lifetime before replacement (AMI updates).")
    disruption_budget: str = Field(default="10%", pattern=r"^(\d+%|\d+)$",
                                   description="Most GPU nodes Karpenter may disrupt at once (nodes or a percentage).")


class ModelStorageSpec(SpecModel):
    enabled: bool = Field(default=True, description="An S3 bucket per EKS region, replicated from the primary; vLLM "
                          "streams weights from it (--load-format runai_streamer) instead of Hugging Face.")
    prefix: str = Field(default="models", pattern=r"^[a-z0-9][-a-z0-9/]*[a-z0-9]$", description="Key prefix of the weights.")
    replication_time_control: bool = Field(default=True, description="S3 Replication Time Control (15-minute SLA).")


class CanaryModel(SpecModel):
    name: str = Field(pattern=DNS_LABEL, description="`name` of the model whose canary this is.")
    revision: str = Field(pattern=r"^[A-Za-z0-9][\w./-]*$", description="HF revision (commit or tag) the canary serves.")
    weight: int = Field(default=5, ge=1, le=50, description="Percent of the model's requests sent to the canary (stable gets the rest).")
    replicas: PositiveInt = Field(default=1, description="Canary replicas per region.")


class CanarySpec(SpecModel):
    routing: Literal["httproute", "virtualservice"] = Field(
        default="httproute", description="httproute: the model router splits the model's body-routed requests by "
        "weight (behind the region's Ingress or HTTPRoute); virtualservice: an Istio VirtualService on the stable "
        "Service splits mesh traffic.")
    models: list[CanaryModel] = Field(min_length=1, description="Models with a canary revision.")


class LargeSpec(SpecModel):
    """Large tier: topology, global traffic, Karpenter, model storage, canaries, GitOps."""

    topology: Literal["single-region-multi-az", "active-passive", "active-active", "global"] = Field(
        description="single-region-multi-az (99.9%, RTO 5 min), active-passive (99.95%, 2 min), active-active "
        "(99.99%, 30 s), global (99.999%, 10 s).")
    global_traffic: GlobalTrafficSpec = Field(description="Route 53 or Global Accelerator in front of the regions.")
    karpenter: KarpenterSpec = Field(default_factory=KarpenterSpec, description="GPU NodePools on EKS regions.")
    model_storage: ModelStorageSpec = Field(default_factory=ModelStorageSpec, description="Regional S3 model buckets.")
    canary: Optional[CanarySpec] = Field(default=None, description="Canary revisions with weighted routing per region.")
    gitops: Optional[GitOpsSpec] = Field(default=None, description="An Argo CD ApplicationSet on the primary region's "
                                         "cluster deploying each region's large-tier manifests (path/<region>).")
    platform: PlatformSpec = Field(default_factory=PlatformSpec, description="Each region's add-ons and routing "
                                   "(the medium tier's platform section).")


# --- the stack ---------------------------------------------------------------------------


class StackSpec(SpecModel):
    """Everything under `tierscale:` in a stack file except the secrets."""

    tier: Tier = Field(description="small (Docker Compose on one host), medium (one Kubernetes cluster), large "
                                   "(several regional clusters) or baremetal (Ansible).")
    target: Target = Field(description="Where it runs; `kind` selects the variant: docker-host (small), "
                                       "kubernetes or eks (medium), multi-region (large), baremetal.")
    gpu: GpuSpec = Field(description="GPU type and count per node.")
    models: list[ModelSpec] = Field(min_length=1, description="Models to serve.")
    gateway: GatewaySpec = Field(default_factory=GatewaySpec, description="OpenAI-compatible entry point.")
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec, description="Metrics, dashboards, alerts.")
    slo: SloSpec = Field(default_factory=SloSpec, description="Objectives and expected load.")
    security: SecuritySpec = Field(default_factory=SecuritySpec, description="API auth and TLS.")
    platform: PlatformSpec = Field(default_factory=PlatformSpec, description="Kubernetes (medium tier, and each region "
                                   "of the large tier): add-ons, routing, model cache, GitOps.")
    large: Optional[LargeSpec] = Field(default=None, description="Large tier: topology, global traffic, Karpenter, "
                                       "model storage, canaries, GitOps (required for tier large).")


# Secret config keys: only ever Pulumi secrets (`pulumi config set --secret KEY`).
SECRET_KEYS: dict[str, str] = {
    "apiKey": "Bearer key clients must send; required while security.apiAuth is true.",
    "hfToken": "Hugging Face token; required for gated models (e.g. Llama).",
    "sshPrivateKey": "Private key for a remote docker-host target.",
    "kubeconfig": "kubeconfig contents for an existing cluster (instead of target.kubeconfig).",
}
