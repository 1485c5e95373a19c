"""The typed stack spec of a home-lab cluster (pure data, no Pulumi)."""

from spec.base import SpecError
from spec.guests import Guest
from spec.kubernetes import Workload
from spec.load import CLUSTER_KEY, parse_cluster, read_stack_config
from spec.models import Cluster
from spec.nodes import Node

__all__ = ["CLUSTER_KEY", "Cluster", "Guest", "Node", "SpecError", "Workload", "parse_cluster", "read_stack_config"]
