"""Rendered medium-tier stacks shared by the medium tests (rendering is the slow part)."""

from __future__ import annotations

import json

import pytest

from components.render import render_stack

# medium-eks with a model that spans nodes on an EFA instance type (p5.48xlarge): the EFA path.
EKS_405B = {
    "tierscale:models": json.dumps([{
        "id": "meta-llama/Llama-3.1-405B-Instruct", "name": "llama-405b", "quantization": "bf16",
        "tensorParallel": 8, "pipelineParallel": 2, "maxModelLen": 16384, "replicas": 2,
        "autoscaling": {"minReplicas": 2, "maxReplicas": 3}}]),
    "tierscale:target": json.dumps({
        "kind": "eks", "region": "us-east-1", "kubernetesVersion": "1.31", "availabilityZones": 3,
        "namespace": "inference",
        "gpuNodeGroup": {"instanceType": "p5.48xlarge", "minSize": 4, "maxSize": 6, "desiredSize": 4}}),
}
GITOPS = {"tierscale:platform": json.dumps({
    "gitops": {"repoUrl": "https://git.example.com/platform/inference.git", "path": "clusters/prod/tierscale"}})}


@pytest.fixture(scope="session")
def medium(tmp_path_factory):
    out = tmp_path_factory.mktemp("medium")
    return {
        "medium-prod": render_stack("medium-prod", out / "medium-prod"),
        "medium-eks": render_stack("medium-eks", out / "medium-eks"),
        "medium-gitops": render_stack("medium-prod", out / "medium-gitops", extra_config=GITOPS),
        "medium-405b": render_stack("medium-405b", out / "medium-405b"),
        "medium-eks-405b": render_stack("medium-eks", out / "medium-eks-405b", extra_config=EKS_405B),
        "medium-405b-gitops": render_stack("medium-405b", out / "medium-405b-gitops", extra_config=GITOPS),
    }
