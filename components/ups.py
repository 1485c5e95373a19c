"""The UPS layer: NUT on every node and the power-cut shutdown, set up over SSH.

What runs in a power cut and in which order is `plan/ups.py`; the files are `components/nut.py`;
this layer puts them on the nodes, the UPS node first (its upsd must answer before a secondary
logs in), each once the hosts' firewall lets the secondaries reach it.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from functools import partial

import pulumi
import pulumi_command as command

from components import remote
from components.nut import File, node_files
from components.stack import Access, secret_config
from spec.models import Cluster
from spec.nodes import Node
from spec.ups import UPS_PASSWORD

# The first pve-ha-manager with `crm-command disarm-ha` (its debian/changelog, 5.1.3).
HA_MANAGER_MIN = "5.1.3"


def setup_script(cluster: Cluster, node: Node, password: str) -> str:
    assert cluster.ups is not None
    primary = node.name == cluster.ups.node
    files: list[File] = node_files(cluster, node.name, password)
    params: dict[str, str | int] = {
        "role": "primary" if primary else "secondary",
        "driver": cluster.ups.driver,
        "packages": "nut-server nut-client" if primary else "nut-client",
        "needs_disarm": "yes" if any(g.ha for g in cluster.guests) else "no",
        "ha_manager_min": HA_MANAGER_MIN,
        "upsd": f"{cluster.ups.name}@localhost"
        if primary
        else f"{cluster.ups.name}@{cluster.node(cluster.ups.node).address}",
        # One file a line, its content in base64: a `$` or a quote in a file stays as it is.
        "files": "\n".join(
            f"{f.path} {f.mode} {f.group} {base64.b64encode(f.content.encode()).decode()}" for f in files
        ),
    }
    return remote.script("nut-setup", **params)


class UpsShutdown(pulumi.ComponentResource):
    """NUT on every node (the UPS node's first) and the orderly shutdown on a power cut."""

    def __init__(
        self,
        cluster: Cluster,
        access: Access,
        after: Sequence[pulumi.Resource],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("homelab:power:UpsShutdown", f"{cluster.name}-ups", None, opts)
        assert cluster.ups is not None
        password = secret_config(UPS_PASSWORD)
        primary = cluster.node(cluster.ups.node)
        order = [primary, *(n for n in cluster.nodes if n.name != primary.name)]
        self.setups: dict[str, command.remote.Command] = {}
        for node in order:
            self.setups[node.name] = command.remote.Command(
                f"{node.name}-nut",
                command.remote.CommandArgs(
                    connection=access.connection(str(node.address)),
                    # The files hold the NUT password: the script is a secret and its output
                    # stays out of the log but for stderr.
                    create=password.apply(partial(setup_script, cluster, node)),
                    logging=command.remote.Logging.STDERR,
                    add_previous_output_in_env=False,
                ),
                opts=pulumi.ResourceOptions(
                    parent=self,
                    depends_on=[*after, *([self.setups[primary.name]] if node is not primary else [])],
                ),
            )
        self.register_outputs({"ups_node": primary.name, "nodes": [n.name for n in order]})
