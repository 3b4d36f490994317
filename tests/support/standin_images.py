"""Container images that stand in for the small tier's upstream images on a machine that
cannot pull: built from the Debian rootfs of the bare-metal tests with Debian's own nginx,
Prometheus and exporters, plus the stub vLLM and dcgm-exporter. Each stand-in keeps the
upstream image's entrypoint contract, so the rendered compose.yaml runs unchanged and an
override file swaps only `image:`."""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

from tests.support.testhosts import base_rootfs

HERE = Path(__file__).parent
BASE = "localhost/tierscale-standin-base:bookworm-v1"
DEBIAN = "localhost/tierscale-standin-debian:bookworm-v2"
# libnginx-mod-http-js: the gateway's model router (njs), at the path the nginx image has it.
PACKAGES = ["nginx-light", "libnginx-mod-http-js", "wget", "prometheus", "prometheus-node-exporter", "prometheus-nginx-exporter"]

# upstream image key (components/small/project.py IMAGES) -> (tag, Containerfile lines after FROM)
STANDINS = {
    "vllm": ("localhost/standin-vllm:2", [
        "COPY openai_stub.py /opt/stub/openai_stub.py",
        "RUN printf '#!/bin/sh\\nexec python3 /opt/stub/openai_stub.py \"$@\"\\n' > /usr/local/bin/vllm && chmod 755 /usr/local/bin/vllm",
        'ENTRYPOINT ["vllm", "serve"]',
    ]),
    "nginx": ("localhost/standin-nginx:2", [
        "RUN mkdir -p /var/cache/nginx /var/log/nginx",
        'CMD ["nginx", "-g", "daemon off;"]',
    ]),
    "prometheus": ("localhost/standin-prometheus:1", ['ENTRYPOINT ["/usr/bin/prometheus"]']),
    "node_exporter": ("localhost/standin-node-exporter:1", ['ENTRYPOINT ["/usr/bin/prometheus-node-exporter"]']),
    "nginx_exporter": ("localhost/standin-nginx-exporter:1", ['ENTRYPOINT ["/usr/bin/prometheus-nginx-exporter"]']),
    "dcgm_exporter": ("localhost/standin-dcgm-exporter:2", [
        "COPY dcgm_stub.py /opt/stub/dcgm_stub.py",
        'ENTRYPOINT ["python3", "/opt/stub/dcgm_stub.py"]',
    ]),
    # Grafana is not packaged by Debian: the stub's HTTP server holds its place on :3000
    # (nothing scrapes it; the provisioning files are checked by the render tests).
    "grafana": ("localhost/standin-grafana:2", [
        "COPY openai_stub.py /opt/stub/openai_stub.py",
        'ENTRYPOINT ["python3", "/opt/stub/openai_stub.py", "--host", "0.0.0.0", "--port", "3000"]',
    ]),
}


def podman(*args: str, env: dict, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], env=env, check=check, capture_output=True, text=True, **kw)


def _exists(tag: str, env: dict) -> bool:
    return podman("image", "exists", tag, env=env, check=False).returncode == 0


def _content_tag(tag: str, lines: list[str]) -> str:
    """`tag` suffixed with a digest of the Containerfile lines and of every file they COPY, so
    a changed stub (or Containerfile) builds a new image instead of reusing a stale one."""
    digest = hashlib.sha256("\n".join([DEBIAN, *lines]).encode())
    for line in lines:
        if line.startswith("COPY "):
            digest.update((HERE / line.split()[1]).read_bytes())
    return f"{tag}-{digest.hexdigest()[:12]}"


def build_standins(env: dict) -> dict[str, str]:
    """Upstream image key -> stand-in tag; builds what is missing (tags carry a content digest,
    so an image with an older stub baked in is never reused)."""
    tags = {key: _content_tag(tag, lines) for key, (tag, lines) in STANDINS.items()}
    if not _exists(BASE, env):
        tar = subprocess.Popen(["tar", "-C", str(base_rootfs()), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(["podman", "import", "--change", 'CMD ["/bin/sh"]', "-", BASE], stdin=tar.stdout, env=env,
                       check=True, capture_output=True)
        tar.wait()
    with tempfile.TemporaryDirectory() as ctx:
        ctx_path = Path(ctx)
        for stub in ("openai_stub.py", "dcgm_stub.py"):
            (ctx_path / stub).write_text((HERE / stub).read_text())
        if not _exists(DEBIAN, env):
            (ctx_path / "Containerfile").write_text(
                f"FROM {BASE}\n"
                # The host's network reaches the Debian mirror; postinst scripts start nothing.
                f"RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
                f"--no-install-recommends {' '.join(PACKAGES)} && rm -rf /var/lib/apt/lists/*\n")
            podman("build", "--network", "host", "--pull=never", "-t", DEBIAN, "-f", str(ctx_path / "Containerfile"),
                   ctx, env=env, timeout=900)
        for key, (_, lines) in STANDINS.items():
            tag = tags[key]
            if _exists(tag, env):
                continue
            (ctx_path / "Containerfile").write_text("\n".join([f"FROM {DEBIAN}", *lines]) + "\n")
            podman("build", "--pull=never", "-t", tag, "-f", str(ctx_path / "Containerfile"), ctx, env=env, timeout=300)
    return tags


def podman_env(workdir: Path) -> dict:
    """containers.conf with this sandbox's known workarounds: runc, explicit ulimits under the
    hard limits, netavark (container DNS by service name)."""
    conf = workdir / "containers.conf"
    conf.write_text(
        '[containers]\ndefault_ulimits = ["nofile=16384:16384", "nproc=8192:8192"]\n'
        '[network]\nnetwork_backend = "netavark"\n'
        '[engine]\nruntime = "runc"\n')
    return dict(os.environ, CONTAINERS_CONF=str(conf))


def cdi_spec(gpus: int) -> str:
    """A CDI spec for `nvidia.com/gpu=<i>` that only sets an env var per device: what
    podman-compose asks for from `deploy.resources.reservations.devices`, without hardware."""
    devices = "".join(
        f'  - name: "{i}"\n    containerEdits:\n      env: ["TIERSCALE_TEST_GPU_{i}=1"]\n' for i in range(gpus))
    devices += '  - name: all\n    containerEdits:\n      env: [' + ", ".join(
        f'"TIERSCALE_TEST_GPU_{i}=1"' for i in range(gpus)) + "]\n"
    return f'cdiVersion: "0.5.0"\nkind: nvidia.com/gpu\ndevices:\n{devices}'
