"""Plan: the engine, GPUs, flags, throughput, replicas and cost for a profiled model."""

from hfdeploy.plan.planner import plan_deployment
from hfdeploy.plan.result import TARGETS, Plan

__all__ = ["TARGETS", "Plan", "plan_deployment"]
