"""Sizing planner: memory fit, parallelism, throughput bounds, replicas, tier and cost."""

from components.planner.plan import Plan, PlanError, PlanRequest, plan

__all__ = ["Plan", "PlanError", "PlanRequest", "plan"]
