"""Render time of the large tier: large-prod (3 regions x 3 models), then the same stack with 6
and 12 regions, one run each, under Pulumi's mock runtime (`tierscale render`'s code path).

    venv/bin/python -m benchmarks.render_large

Target: <= 3 s for large-prod; growth in regions no worse than linear (the 6- and 12-region
ratios are printed beside 2x and 4x).
"""

from __future__ import annotations

import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

from components import paths
from components.render import render_stack

TARGET_S = 3.0
AWS_REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-1", "us-west-2", "eu-central-1", "ap-northeast-1",
               "us-east-2", "eu-west-2", "ap-south-1", "ca-central-1", "sa-east-1", "eu-north-1"]


def _regions(count: int) -> list[dict]:
    base = yaml.safe_load((paths.STACKS_DIR / "Pulumi.large-prod.yaml").read_text())["config"]["tierscale:target"]
    template = base["regions"][0]
    out = []
    for i in range(count):
        r = copy.deepcopy(template)
        r.update(name=f"r{i:02d}", awsRegion=AWS_REGIONS[i], vpcCidr=f"10.{40 + i}.0.0/16", namespace=f"inference-r{i:02d}")
        r["gateway"] = {"hostname": f"r{i:02d}.llm.example.com"}
        out.append(r)
    return out


def _time(stack: str, out: Path, extra: dict | None = None) -> tuple[float, int]:
    start = time.perf_counter()
    result = render_stack(stack, out, extra_config=extra)
    return time.perf_counter() - start, len(result.resources)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        _time("large-prod", Path(tmp) / "warm")  # imports, catalog, schema caches
        prod, n_prod = _time("large-prod", Path(tmp) / "large-prod")
        # The scaling series uses identical EKS regions (large-prod's third region is a smaller
        # on-premises cluster), so the ratios compare like with like.
        rows = []
        for count in (3, 6, 12):
            seconds, n = _time("large-prod", Path(tmp) / f"r{count}", {
                "tierscale:target": json.dumps({"kind": "multi-region", "regions": _regions(count)})})
            rows.append((f"{count} EKS regions x 3 models", seconds, n))
    base = rows[0][1]
    print(f"{'stack':<36} {'seconds':>8} {'resources':>10} {'ratio':>6}  linear")
    print(f"{'large-prod (3 regions x 3 models)':<36} {prod:>8.2f} {n_prod:>10}")
    for (label, seconds, n), linear in zip(rows, (1, 2, 4)):
        print(f"{label:<36} {seconds:>8.2f} {n:>10} {seconds / base:>6.2f}  {linear}x")
    ok = prod <= TARGET_S and rows[1][1] / base <= 2 * 1.15 and rows[2][1] / base <= 4 * 1.15
    print(f"target: large-prod <= {TARGET_S} s, growth <= linear: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
