"""Pulumi components, one file per layer of the cluster (network, storage, guests, ha, k3s, ...)."""

from components import sdk_speedup

sdk_speedup.install()
