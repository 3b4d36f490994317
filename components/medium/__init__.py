"""Medium tier: one Kubernetes cluster serving models with autoscaling and monitoring."""
