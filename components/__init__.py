"""Pulumi components, one file per layer of the cluster (network, storage, guests, ha, k3s, ...)."""
