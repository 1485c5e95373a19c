"""What every layer needs from the stack: the validated spec, the Proxmox provider, SSH access."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_command as command
import pulumi_proxmoxve as proxmoxve

from components.api_access import token_check
from spec import CLUSTER_KEY, Cluster, SpecError, parse_cluster
from spec.secrets import NAMESPACE, PROXMOX_API_TOKEN, SSH_PRIVATE_KEY, full_key, plain_text_message


def waits_for(opts: pulumi.ResourceOptions | None) -> list[pulumi.Resource]:
    """What a component was told to wait for. Its children must carry it themselves: a
    component's `depends_on` orders its registration, not the creation of its children."""
    deps = opts.depends_on if opts is not None else None
    if deps is None:
        return []
    if isinstance(deps, pulumi.Resource):
        return [deps]
    return [d for d in deps if isinstance(d, pulumi.Resource)]  # type: ignore[union-attr]


def secret_config(key: str) -> pulumi.Output[str]:
    """The secret config value `homelab:<key>`. One the stack file holds in plain text is refused
    before anything is declared: the engine tells the program which keys it decrypted
    (PULUMI_CONFIG_SECRET_KEYS, read by pulumi/pulumi `sdk/python/cmd/pulumi-language-python-exec`)."""
    name = full_key(key)
    if pulumi.runtime.get_config(name) is not None and not pulumi.runtime.is_config_secret(name):
        raise pulumi.RunError(plain_text_message([name], f"Pulumi.{pulumi.get_stack()}.yaml"))
    return pulumi.Config(NAMESPACE).require_secret(key)


def load_cluster() -> Cluster:
    """The validated spec from `homelab:cluster`; a bad spec stops the program before any resource."""
    raw = pulumi.Config("homelab").get(CLUSTER_KEY.split(":", 1)[1])
    if raw is None:
        raise pulumi.RunError(f"{CLUSTER_KEY} is not set in this stack's config")
    try:
        return parse_cluster(json.loads(raw))
    except SpecError as exc:
        raise pulumi.RunError(f"invalid {CLUSTER_KEY}:\n{exc}") from None


@dataclass(frozen=True)
class Access:
    """How the program reaches the cluster: the Proxmox API and SSH to the nodes and VMs."""

    proxmox: proxmoxve.Provider
    ssh_user: str
    ssh_private_key: pulumi.Output[str]
    # The nodes' SSH host keys by address, from the spec: a connection to a node checks its key.
    host_keys: Mapping[str, str] = field(default_factory=dict)

    def connection(
        self, host: str, user: str | None = None, host_key: pulumi.Input[str] | None = None
    ) -> command.remote.ConnectionArgs:
        """SSH to HOST, checking its host key: a node's from the spec, a VM's as given."""
        return ssh_connection(host, user or self.ssh_user, self.ssh_private_key, host_key or self.host_keys.get(host))


def ssh_connection(
    host: str, user: str, key: pulumi.Output[str], host_key: pulumi.Input[str] | None = None
) -> command.remote.ConnectionArgs:
    """An SSH connection; with `host_key`, pulumi-command refuses a server that shows another key
    (pulumi-command provider/pkg/provider/remote/connection.go: ssh.FixedHostKey), without it any."""
    return command.remote.ConnectionArgs(host=host, user=user, private_key=key, dial_error_limit=30, host_key=host_key)


def node_host_keys(cluster: Cluster) -> dict[str, str]:
    return {str(n.address): n.ssh_host_key for n in cluster.nodes}


INSECURE_REFUSED = (
    "homelab:proxmoxInsecure is true, which would send the API token to whoever answers at the endpoint "
    "without checking its certificate. Trust the nodes' certificate instead: set homelab:proxmoxCaCertificate "
    'to the first node\'s /etc/pve/pve-root-ca.pem (README, "Security model"), or give the nodes an ACME '
    "certificate; then remove proxmoxInsecure."
)


def connect(cluster: Cluster) -> Access:
    config = pulumi.Config("homelab")
    if config.get_bool("proxmoxInsecure"):
        # An unverified endpoint hands the API token to whoever answers at its address.
        raise pulumi.RunError(INSECURE_REFUSED)
    token = secret_config(PROXMOX_API_TOKEN)
    key = secret_config(SSH_PRIVATE_KEY)
    # Every API call goes through this provider, so it waits for the token's privileges to be checked.
    first = cluster.nodes[0]
    checked = token_check(
        cluster, ssh_connection(str(first.address), cluster.proxmox.ssh_user, key, first.ssh_host_key), token
    )
    provider = proxmoxve.Provider(
        "proxmox",
        proxmoxve.ProviderArgs(
            endpoint=config.require("proxmoxEndpoint"),
            api_token=token,
            insecure=False,
            # Snippets and some disk operations go over SSH to the node that owns them.
            ssh=proxmoxve.ProviderSshArgs(
                username=cluster.proxmox.ssh_user,
                private_key=key,
                nodes=[proxmoxve.ProviderSshNodeArgs(name=n.name, address=str(n.address)) for n in cluster.nodes],
            ),
        ),
        opts=pulumi.ResourceOptions(depends_on=[checked]),
    )
    return Access(
        proxmox=provider, ssh_user=cluster.proxmox.ssh_user, ssh_private_key=key, host_keys=node_host_keys(cluster)
    )
