"""The typed stack spec of a home-lab cluster (pure data, no Pulumi)."""

from spec.load import CLUSTER_KEY, parse_cluster, read_stack_config
from spec.models import Cluster, Guest, Node, SpecError, Workload

__all__ = ["CLUSTER_KEY", "Cluster", "Guest", "Node", "SpecError", "Workload", "parse_cluster", "read_stack_config"]
