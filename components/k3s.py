"""k3s on the guests: servers with embedded etcd, agents, and the API behind a virtual IP.

Order: the first server starts etcd (`--cluster-init`) and writes the join token, which is read
back as a Pulumi secret; the other servers join one at a time (etcd adds one member at a time);
then the agents join, in parallel. Joins go through the API VIP, which kube-vip holds by ARP
with leader election from a DaemonSet on the servers (k3s deploys it from its manifests folder),
so the API and every later join survive the loss of any one server. kube-vip also announces the
LoadBalancer addresses the Platform layer hands out.

Each node is labelled with the Proxmox host its VM runs on, so workloads spread across physical
machines, not just VMs. The admin commands (labels, cordons, the kubeconfig) go over SSH to one
fixed server, the first whose host is not in maintenance (`admin_server`), never to the API VIP:
whoever answers at the VIP would get them and could hand back a kubeconfig of its own, and a
fixed address has one SSH host key to check.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence, Set
from typing import Any

import pulumi
import pulumi_command as command
import pulumi_kubernetes as k8s
import pulumi_proxmoxve as proxmoxve
import yaml

from components import remote
from components.kube_vip import API_PORT, kube_vip_manifest
from components.stack import Access, waits_for
from plan.backups import ETCD_SNAPSHOT_HOURS, ETCD_SNAPSHOTS_KEPT
from policies import tokens
from spec.kubernetes import K3s
from spec.models import Cluster

PROXMOX_NODE_LABEL = "homelab/proxmox-node"
# The upstream installer, pinned: get.k3s.io serves whatever is on k3s's main branch, so the
# script is fetched by commit (content that cannot change) and checked against the sha256 that
# k3s records beside it at that commit (k3s-io/k3s install.sh.sha256sum, kept in step with
# install.sh by k3s's CI since PR #8312). The script is version-independent: INSTALL_K3S_VERSION
# picks the release, whose binary it checks against that release's sha256sum-<arch>.txt.
# A new installer is a new commit and hash here, reviewed in a pull request.
INSTALLER_COMMIT = "019b0afdd830e36f5e4b7a5b237e6a4339e6a6be"
INSTALLER_SHA256 = "68ae766b4c4fd2c8032f712cdd346c8f9d1ae60eaeb4736a1155effda44ea23d"
INSTALLER = f"https://raw.githubusercontent.com/k3s-io/k3s/{INSTALLER_COMMIT}/install.sh"
DATA_DIR = "/var/lib/rancher/k3s"
MANIFESTS = f"{DATA_DIR}/server/manifests"
SERVER_TOKEN = f"{DATA_DIR}/server/token"
JOIN_TOKEN_FILE = "/etc/rancher/k3s/join-token"
# Written by k3s at a server's first start with secrets-encryption (and on joining servers, from
# the cluster's bootstrap data): its absence beside etcd data means a cluster started without it.
ENCRYPTION_CONFIG = f"{DATA_DIR}/server/cred/encryption-config.json"
# Every flag lives here rather than on the installer's command line: the installer bakes its
# arguments into the systemd unit and only runs on a new version, so a changed flag would never
# reach a running node. The script restarts k3s when this file changes.
CONFIG_FILE = "/etc/rancher/k3s/config.yaml"
# The Secret in kube-system that k3s reads its S3 settings from at each snapshot
# (components/backups.py EtcdSnapshotsOffCluster writes it).
ETCD_S3_SECRET = "k3s-etcd-snapshot-s3-config"
# etcd snapshots on each server every 6 hours, a week of them: a bad upgrade or a lost quorum
# can be rolled back with `k3s server --cluster-reset --cluster-reset-restore-path=...`.
SNAPSHOT_CRON = f"0 */{ETCD_SNAPSHOT_HOURS} * * *"
SNAPSHOT_RETENTION = ETCD_SNAPSHOTS_KEPT
# How long a maintenance drain may wait for pods to leave (PDBs can hold it back) before failing.
DRAIN_TIMEOUT = "10m"
# Non-graceful node shutdown (GA in Kubernetes 1.28): pods of a node with this taint are deleted
# and their volumes detached at once, so RWO volumes can attach elsewhere.
OUT_OF_SERVICE = "node.kubernetes.io/out-of-service=nodeshutdown:NoExecute"
# Pod traffic between the VMs goes through WireGuard: flannel's wireguard-native backend keeps a
# `flannel-wg` link (UDP 51820) to every other node, so what pods send each other across VMs is
# encrypted wherever it travels, the LAN bond and the switch included. A server flag, which must
# be the same on every server (k3s `CriticalControlArgs`); agents take it from the server they join
# (k3s docs, "Basic Network Options"). Every node needs the kernel's wireguard module: Debian's
# cloud kernels ship it as a module (CONFIG_WIREGUARD=m, checked in linux-image-6.1.0-57-cloud-amd64),
# which the kernel loads itself when flannel creates the link (its alias rtnl-link-wireguard).
FLANNEL_BACKEND = "wireguard-native"
# The pod network: k3s's default --cluster-cidr (pkg/cli/cmds/server.go), which node_config leaves
# as it is. Network policies name it for what nodes and host-network pods send to pods.
CLUSTER_CIDR = "10.42.0.0/16"


class K3sPlacementError(pulumi.RunError):
    """Two k3s servers share a Proxmox host: losing that host would lose etcd quorum."""


def check_server_spread(servers: Sequence[str], placement: Mapping[str, str]) -> None:
    """Raise K3sPlacementError unless every server runs on its own Proxmox host."""
    unplaced = [s for s in servers if s not in placement]
    if unplaced:
        raise K3sPlacementError(f"k3s.servers: no Proxmox host was chosen for {', '.join(unplaced)}")
    by_host: dict[str, list[str]] = defaultdict(list)
    for server in servers:
        by_host[placement[server]].append(server)
    shared = {host: names for host, names in sorted(by_host.items()) if len(names) > 1}
    if shared:
        where = "; ".join(f"{', '.join(names)} on {host}" for host, names in shared.items())
        raise K3sPlacementError(
            f"k3s.servers: {where}. Losing that host would take down {max(len(n) for n in shared.values())} of "
            f"{len(servers)} etcd members and the cluster's quorum; give the servers one anti_affinity group "
            "so placement puts each on its own host"
        )


def admin_server(spec: K3s, placement: Mapping[str, str], maintenance: Set[str]) -> str:
    """The server the admin commands go to: the first one whose Proxmox host is not in
    maintenance (its VM may be parked there), else the first."""
    return next((s for s in spec.servers if placement.get(s) not in maintenance), spec.servers[0])


def cordoned(spec: K3s, placement: Mapping[str, str], maintenance: Set[str]) -> list[str]:
    """The k3s nodes to cordon and drain: those whose VM is placed on a Proxmox host in maintenance.

    Placement moves every guest it can off such a host (a live migration, which k3s does not
    notice); the ones it leaves there are parked, stopped (`plan.placement.parked`): a k3s server
    whose anti-affinity group has a member on every other host.
    """
    return [n for n in [*spec.servers, *spec.agents] if placement.get(n) in maintenance]


def node_config(
    spec: K3s,
    guest: str,
    address: str,
    role: str,
    etcd_s3: bool = False,
    pod_grace: int = 60,
    metrics: bool = False,
) -> str:
    """The guest's k3s config file (`CONFIG_FILE`) for ROLE: server-init, server-join or agent.

    No node label: k3s puts its `node-label`s back on every start, so one baked in here would undo
    the Proxmox-host label `k3s-label` keeps right when the VM moves.
    """
    config: dict[str, Any] = {
        "node-name": guest,
        "node-ip": address,
        # The LAN NIC: pod traffic stays off the Ceph VLAN whatever the VM's routes say.
        "flannel-iface": spec.vip_interface,
        # Graceful node shutdown: when the VM is shut down (a power cut's orderly shutdown, a
        # node's maintenance), kubelet holds systemd's shutdown back until its pods stopped, the
        # critical ones last. It raises logind's InhibitDelayMaxSec itself (kubernetes
        # pkg/kubelet/nodeshutdown/systemd/inhibit_linux.go, OverrideInhibitDelay).
        "kubelet-arg": [
            f"shutdown-grace-period={pod_grace}s",
            f"shutdown-grace-period-critical-pods={pod_grace // 3}s",
        ],
    }
    if role == "server-init":
        config["cluster-init"] = True
    else:
        # Joins go through the VIP: a fixed registration address that does not die with one server.
        config |= {"server": f"https://{spec.api_vip}:{API_PORT}", "token-file": JOIN_TOKEN_FILE}
    if role == "agent":
        # Not a flag (an agent has none for it) but a note: the agent learns the backend from the
        # server it joins, only when it starts. When the servers' backend changes, this file
        # changes with it, and the install script restarts the agent (after every server: the
        # agents' installs wait for theirs), so no agent stays on the old one.
        note = f"# flannel-backend, set on the servers: {FLANNEL_BACKEND}\n"
        return note + yaml.safe_dump(config, sort_keys=False)
    config |= {
        "tls-san": [str(spec.api_vip)],
        # servicelb and traefik: kube-vip announces LoadBalancer addresses, and traefik's own
        # LoadBalancer Service would take an address from the pool. local-storage: volumes
        # come from Ceph, so a pod is never tied to one VM's disk.
        "disable": ["servicelb", "traefik", "local-storage"],
        "etcd-snapshot-schedule-cron": SNAPSHOT_CRON,
        "etcd-snapshot-retention": SNAPSHOT_RETENTION,
        # Encrypted between the VMs (FLANNEL_BACKEND). On a running cluster the change restarts
        # the servers, then the agents; until the last has restarted, pods on nodes with
        # different backends cannot reach each other (flannel peers only with nodes of its own
        # backend type). The old VXLAN routes through flannel.1 are more specific than
        # flannel-wg's and may outlive the switch: reboot the VMs one at a time afterwards.
        "flannel-backend": FLANNEL_BACKEND,
        # Secrets (the Ceph key, apps' passwords) encrypted at rest in etcd and its snapshots.
        # Only from a server's first start: k3s does not support turning it on later (docs.k3s.io
        # cli/secrets-encrypt), and it is a critical value that every server must share. The
        # install script refuses to add it to a server whose etcd was started without it.
        "secrets-encryption": True,
    }
    if metrics:
        # What the metrics stack scrapes on a server (plan/monitoring.py): etcd's metrics on
        # :2381, and the scheduler and controller manager on the server's address rather than
        # loopback only, their /metrics behind the API's authentication (k3s shows them "down"
        # otherwise: docs.k3s.io, "Exposing control-plane metrics").
        config |= {
            "etcd-expose-metrics": True,
            "kube-controller-manager-arg": ["bind-address=0.0.0.0"],
            "kube-scheduler-arg": ["bind-address=0.0.0.0"],
        }
    if etcd_s3:
        # Each snapshot also goes to the object store off the cluster. Only these two flags: with
        # any other etcd-s3 flag set, k3s ignores the Secret (docs.k3s.io cli/etcd-snapshot),
        # which keeps the credentials out of this file and out of the install's script.
        config |= {"etcd-s3": True, "etcd-s3-config-secret": ETCD_S3_SECRET}
    return yaml.safe_dump(config, sort_keys=False)


def pod_grace(cluster: Cluster) -> int:
    """How long kubelet gives pods when its VM shuts down: the UPS plan's, or a minute."""
    return cluster.ups.pod_grace_seconds if cluster.ups is not None else 60


def machine_identity(machine: pulumi.Resource) -> pulumi.Input[str] | None:
    """What changes when a VM is created anew: its first NIC's MAC, which Proxmox generates.

    In an install's triggers it re-runs k3s on a rebuilt VM (same name, same VM id), which would
    otherwise look unchanged to its commands.
    """
    if not isinstance(machine, proxmoxve.VmLegacy):
        return None
    return machine.network_devices.apply(lambda nics: (nics[0].mac_address or "") if nics else "")


# Five minutes for a new VM's first boot: cloud-init installs the guest agent that reads the key.
HOST_KEY_TRIES = 60


class K3sCluster(pulumi.ComponentResource):
    """k3s over SSH on the spec's server and agent guests; `kubeconfig` and `provider` for what runs on it."""

    kubeconfig: pulumi.Output[str]
    provider: k8s.Provider
    installs: dict[str, command.remote.Command]

    def __init__(
        self,
        cluster: Cluster,
        access: Access,
        machines: Mapping[str, pulumi.Resource],
        placement: Mapping[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(tokens.K3S_COMPONENT, f"{cluster.name}-k3s", None, opts)
        spec: K3s | None = cluster.k3s
        if spec is None:
            raise pulumi.RunError("k3s: the spec has no k3s section, so there is no cluster to build")
        check_server_spread(spec.servers, placement)
        self.spec = spec
        user = cluster.access.user
        etcd_s3 = cluster.backups is not None and cluster.backups.s3 is not None
        # What the caller said to wait for holds back the first commands, not only this component.
        before = waits_for(opts)

        # Each VM's SSH host key, read through Proxmox (vm-host-key.sh), checked on every
        # connection to it; read again when the VM is created anew.
        first_node = cluster.nodes[0]
        self.host_keys = {
            guest: remote.run(
                f"{guest}-host-key",
                access.connection(str(first_node.address)),
                remote.script("vm-host-key", vmid=cluster.guest(guest).vm_id, tries=HOST_KEY_TRIES, wait_seconds=5),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[*before, machines[guest]]),
                triggers=[machine_identity(machines[guest])],
            )
            for guest in [*spec.servers, *spec.agents]
        }

        def ssh(guest: str) -> command.remote.ConnectionArgs:
            # Guests are reached as the cloud-init user, with the same key as the Proxmox nodes.
            key = self.host_keys[guest].stdout.apply(str.strip)
            return access.connection(str(cluster.guest(guest).address), user=user, host_key=key)

        # The admin commands go to one fixed server (see the module docstring).
        admin = ssh(admin_server(spec, placement, {n.name for n in cluster.nodes if n.maintenance}))
        manifest = kube_vip_manifest(spec)

        # The etcd members as declared (server-init and server-join installs), registered as an
        # output: the policy pack counts them there, not in the spec.
        etcd_members: list[str] = []

        def install(
            guest: str, role: str, after: Sequence[pulumi.Resource], token: pulumi.Output[str] | None
        ) -> command.remote.Command:
            if role != "agent":
                etcd_members.append(guest)
            params: dict[str, str | int] = {
                "role": role,
                "version": spec.version,
                "node_name": guest,
                "api_vip": str(spec.api_vip),
                "installer": INSTALLER,
                "installer_sha256": INSTALLER_SHA256,
                "token_file": JOIN_TOKEN_FILE,
                "config_file": CONFIG_FILE,
                "data_dir": DATA_DIR,
                "encryption_config": ENCRYPTION_CONFIG,
                "k3s_config": node_config(
                    spec,
                    guest,
                    str(cluster.guest(guest).address),
                    role,
                    etcd_s3,
                    pod_grace(cluster),
                    metrics=cluster.monitoring is not None,
                ),
            }
            if role != "agent":
                params |= {"manifests": MANIFESTS, "kube_vip_manifest": manifest}
            return command.remote.Command(
                f"{guest}-k3s",
                command.remote.CommandArgs(
                    connection=ssh(guest),
                    create=remote.script("k3s-install", **params),
                    # The token goes on stdin: secret in the state, absent from the script text.
                    stdin=token,
                    # A new version replaces (re-runs) the install: an upgrade in place; so does a
                    # rebuilt VM. A changed config re-runs it too (it is in the script) and
                    # restarts k3s. No delete command, so neither a replacement nor a destroy
                    # uninstalls k3s.
                    triggers=[spec.version, machine_identity(machines[guest])],
                    add_previous_output_in_env=False,
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[*before, machines[guest], *after]),
            )

        first, *others = spec.servers
        self.installs = {first: install(first, "server-init", [], None)}
        token_command = command.remote.Command(
            f"{cluster.name}-k3s-token",
            command.remote.CommandArgs(
                connection=ssh(first),
                create=remote.script("k3s-token", token_path=SERVER_TOKEN),
                # stdout is the token: kept out of the engine's log.
                logging=command.remote.Logging.STDERR,
                add_previous_output_in_env=False,
            ),
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[self.installs[first]], additional_secret_outputs=["stdout"]
            ),
        )
        self.token: pulumi.Output[str] = pulumi.Output.secret(token_command.stdout.apply(str.strip))
        previous: command.remote.Command = self.installs[first]
        for server in others:
            # One at a time: etcd adds one member at a time, and each join needs the quorum so far.
            previous = install(server, "server-join", [previous, token_command], self.token)
            self.installs[server] = previous
        servers = [self.installs[s] for s in spec.servers]
        for agent in spec.agents:
            self.installs[agent] = install(agent, "agent", servers, self.token)

        # After every server: the joins waited for the VIP, so the admin commands find it up.
        self.labels = {
            name: remote.run(
                f"{name}-k3s-label",
                admin,
                remote.script("k3s-label", node=name, label=f"{PROXMOX_NODE_LABEL}={placement[name]}"),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[*servers, self.installs[name]]),
                triggers=[placement[name], machine_identity(machines[name])],
            )
            for name in self.installs
        }

        maintenance = {n.name for n in cluster.nodes if n.maintenance}
        self.cordons = {
            name: remote.run(
                f"{name}-k3s-cordon",
                admin,
                remote.script("k3s-cordon", node=name, out_of_service=OUT_OF_SERVICE, timeout=DRAIN_TIMEOUT),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.labels[name]]),
                # Back from maintenance: the spec drops the cordon and its delete lets pods return.
                delete=remote.script("k3s-uncordon", node=name, out_of_service=OUT_OF_SERVICE),
            )
            for name in cordoned(spec, placement, maintenance)
        }

        kubeconfig_command = command.remote.Command(
            f"{cluster.name}-kubeconfig",
            command.remote.CommandArgs(
                connection=admin,
                create=remote.script("k3s-kubeconfig", api_vip=str(spec.api_vip)),
                logging=command.remote.Logging.STDERR,
                add_previous_output_in_env=False,
                # Its client certificate lasts a year; k3s renews it when it restarts near the end,
                # and an upgrade restarts every node: read it again then.
                triggers=[spec.version],
            ),
            # After every node and label: what uses the kubeconfig finds the whole cluster ready.
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[*self.installs.values(), *self.labels.values()],
                additional_secret_outputs=["stdout"],
            ),
        )
        self.kubeconfig = pulumi.Output.secret(kubeconfig_command.stdout)
        self.provider = k8s.Provider(
            f"{cluster.name}-k3s",
            k8s.ProviderArgs(kubeconfig=self.kubeconfig),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs(
            {
                "api": f"https://{spec.api_vip}:{API_PORT}",
                "servers": etcd_members,
                "agents": list(spec.agents),
                "cordoned": sorted(self.cordons),
                "kubeconfig": self.kubeconfig,
            }
        )
