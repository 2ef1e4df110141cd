"""Semantic memory (ROS-free): moments of the embedding stream, stored and queried by text.

memory_node (vljepa_ros/ros/memory_node.py) is a thin adapter around
:class:`SemanticMemory`; docs/memory.md has the design, the store choice and
the evaluation.
"""

from .memory import MEMORY_PARAMS, LatestResult, MemoryConfig, QueryResult, SemanticMemory, default_memory_dir
from .moments import NS, Moment, MomentSegmenter, Pose, PoseBuffer
from .store import SCHEMA_VERSION, MomentStore, StoreError

__all__ = ["MEMORY_PARAMS", "NS", "SCHEMA_VERSION", "LatestResult", "MemoryConfig", "Moment", "MomentSegmenter",
           "MomentStore", "Pose", "PoseBuffer", "QueryResult", "SemanticMemory", "StoreError", "default_memory_dir"]
