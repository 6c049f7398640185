"""Training objectives: what the equilibria learn (flow matching), each with its batches,
loss and sampler; registered in analogep.registry.OBJECTIVES."""

from analogep.objectives.base import BatchStream, Objective, TrainingBatch
from analogep.objectives.flow import FlowBatch, FlowMatching, sample_flow_batch
from analogep.objectives.factory import build_objective

__all__ = ["BatchStream", "FlowBatch", "FlowMatching", "Objective", "TrainingBatch", "build_objective", "sample_flow_batch"]
