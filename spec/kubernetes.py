"""k3s and the workloads on it."""

from __future__ import annotations

import re
from ipaddress import IPv4Address
from typing import Annotated, Literal

from pydantic import Field, model_validator

from spec.base import ABSOLUTE_PATH, Model, Name, refuse
from spec.secrets import PROGRAM_KEYS, SECRET_NAME, ConfigKey, EnvName


class AddressRange(Model):
    start: IPv4Address
    end: IPv4Address

    @model_validator(mode="after")
    def _order(self) -> AddressRange:
        problems: list[str] = []
        if int(self.end) < int(self.start):
            problems.append(f"end {self.end} is before start {self.start}")
        refuse(problems)
        return self

    def __contains__(self, address: object) -> bool:
        return isinstance(address, IPv4Address) and int(self.start) <= int(address) <= int(self.end)


# What listens on every k3s node (k3s docs, "Inbound Rules for K3s Nodes"), which a host-network
# pod cannot bind: the API (servers), the kubelet, flannel's VXLAN and WireGuard, the embedded
# etcd's client and peer ports (servers), kube-proxy's health port, and SSH for the program.
K3S_NODE_PORTS: dict[tuple[int, str], str] = {
    (22, "TCP"): "SSH",
    (2379, "TCP"): "etcd clients",
    (2380, "TCP"): "etcd peers",
    (6443, "TCP"): "the Kubernetes API",
    (6444, "TCP"): "k3s's API proxy",
    (8472, "UDP"): "flannel VXLAN",
    (10250, "TCP"): "the kubelet",
    (10256, "TCP"): "kube-proxy's health check",
    (51820, "UDP"): "flannel WireGuard",
    (51821, "UDP"): "flannel WireGuard over IPv6",
}
NODE_PORT_RANGE = (30000, 32767)
# An image's content: what every image reference here ends with.
DIGEST = r"@sha256:[0-9a-f]{64}"


class K3s(Model):
    version: Annotated[str, Field(pattern=r"^v1\.\d+\.\d+\+k3s\d+$")]
    servers: list[Name]
    agents: list[Name] = Field(default_factory=list)
    api_vip: IPv4Address
    # kube-vip runs on the host network with NET_ADMIN: pinned by digest, as every image is.
    kube_vip_image: Annotated[str, Field(pattern=rf"^ghcr\.io/kube-vip/kube-vip:v\d+\.\d+\.\d+{DIGEST}$")] = (
        "ghcr.io/kube-vip/kube-vip:v0.9.2@sha256:c6d4f3a3fc2b7e95a23a20a0b05b7c64b2e5620783c8fa69a9bac753f99cc8bc"
    )
    # The LAN NIC inside a k3s VM. Proxmox's generated cloud-init network config names NIC n
    # `eth<n>` by MAC (the program sets ip_configs for both NICs), so the LAN NIC is eth0 whatever
    # the image's own naming (ens18 on Debian cloud images).
    # A Linux interface name (the kernel's dev_valid_name: below IFNAMSIZ, no `/`, `:` or space,
    # not `.` or `..`), starting with a letter, digit or `_` so no tool takes it for an option.
    vip_interface: Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,14}$")] = "eth0"
    load_balancer_pool: AddressRange
    ceph_csi_chart_version: Annotated[str, Field(pattern=r"^\d+\.\d+\.\d+$")] = "3.14.1"

    @model_validator(mode="after")
    def _servers(self) -> K3s:
        problems: list[str] = []
        if len(self.servers) < 3 or len(self.servers) % 2 == 0:
            problems.append(
                f"servers: embedded etcd needs an odd number of at least 3 servers for HA, got {len(self.servers)}"
            )
        both = sorted(set(self.servers) & set(self.agents))
        if both:
            problems.append(f"{', '.join(both)} is both a server and an agent")
        if self.api_vip in self.load_balancer_pool:
            problems.append(f"api_vip {self.api_vip} is inside load_balancer_pool")
        refuse(problems)
        return self


class Port(Model):
    name: Annotated[str, Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$")]
    port: Annotated[int, Field(ge=1, le=65535)]
    protocol: Literal["TCP", "UDP"] = "TCP"
    expose: bool = False  # True: a LoadBalancer address on the LAN


class Volume(Model):
    name: Name
    size_gib: Annotated[int, Field(ge=1)]
    mount_path: Annotated[str, Field(pattern=ABSOLUTE_PATH)]


def claim_name(volume: str, statefulset: str, ordinal: int) -> str:
    """The name the StatefulSet controller gives the claim of one replica."""
    return f"{volume}-{statefulset}-{ordinal}"


# The capabilities Pod Security's baseline level lets a container add (Kubernetes "Pod Security
# Standards": baseline, capabilities), and NET_RAW, which only a host-network workload may ask for
# (its namespace enforces privileged).
Capability = Literal[
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT", "NET_RAW",
]  # fmt: skip
PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class SeedFile(Model):
    """A file the app finds on its volume at its first start, such as a configuration that skips
    a first-run wizard. Written only when absent: the app owns the file afterwards.

    `${NAME}` in `content` is replaced by the stack secret that `secrets` names for it (`NAME: key`
    of `pulumi config set --secret homelab:KEY`); the file then travels as a Kubernetes Secret.
    """

    # No `..`: a path that climbs out of a volume would pass for one on it.
    path: Annotated[str, Field(pattern=ABSOLUTE_PATH)]
    content: str
    secrets: dict[EnvName, ConfigKey] = Field(default_factory=dict)


class Workload(Model):
    name: Name
    namespace: Name = "apps"
    # name:tag@sha256:<digest>. A tag is whatever the registry says today; the digest is the
    # content, so a moved tag or a spoofed registry cannot put other code on the cluster.
    image: Annotated[str, Field(pattern=rf"^[a-z0-9./_-]+(:[A-Za-z0-9._-]+)?({DIGEST})?$")]
    replicas: Annotated[int, Field(ge=1)] = 2
    ports: list[Port] = Field(default_factory=list)
    cpu_millicores: Annotated[int, Field(ge=1)] = 100
    memory_mib: Annotated[int, Field(ge=8)] = 128
    volumes: list[Volume] = Field(default_factory=list)
    # Plain settings: they are written into the pod spec and the Pulumi state as they are.
    env: dict[EnvName, str] = Field(default_factory=dict)
    # Variables from secrets: NAME -> a key of this stack's secret config (`pulumi config set
    # --secret homelab:KEY`). They reach the pod through a Kubernetes Secret, never the pod spec.
    secret_env: dict[EnvName, ConfigKey] = Field(default_factory=dict)
    ha: bool = True
    # A fixed LAN address for the exposed ports, outside k3s.load_balancer_pool; None: one from the pool.
    load_balancer_ip: IPv4Address | None = None
    # A pod gets traffic (and counts for its disruption budget) once it answers on this TCP port
    # (default: its first TCP port); with ready_path, once an HTTP GET there succeeds.
    ready_port: str | None = None
    ready_path: Annotated[str, Field(pattern=r"^/[\x21-\x7e]*$")] | None = None  # printable ASCII, no space
    # The pod shares its VM's network: for apps that find devices on the LAN by broadcast and
    # multicast (mDNS, SSDP, HomeKit, Bluetooth proxies), as Home Assistant's container install
    # does. Its namespace then enforces the `privileged` Pod Security level, the only one that
    # allows it, and every port it opens is on the LAN at its VM's address.
    host_network: bool = False
    # The exposed ports' LoadBalancer keeps each client's own address (externalTrafficPolicy:
    # Local), so the app sees who asks: AdGuard Home's per-client rules and statistics. The address
    # is then announced by a node that runs a pod of the workload (components/kube_vip.py).
    keep_client_address: bool = False
    seed_files: list[SeedFile] = Field(default_factory=list)
    # Capabilities the container keeps beyond NET_BIND_SERVICE (added for a port below 1024): all
    # others are dropped. What an image's own start needs, such as Uptime Kuma's SETGID.
    capabilities: list[Capability] = Field(default_factory=list)
    # The app's first-run page is open to whoever reaches it first (Home Assistant's onboarding,
    # Jellyfin's wizard, Uptime Kuma's first admin). While true, none of its ports is on the LAN:
    # no LoadBalancer, no host network. Finish its setup through `kubectl port-forward`, then set
    # it to false.
    setup_pending: bool = False
    # With a gateway in the spec, the workload's HTTP port (the first exposed TCP port named
    # `http` or `http-...`) is reached at https://<host>, by default `<name>.<domain>`, and is on no
    # LoadBalancer of its own. `plain_http` keeps it on the workload's own address in plain HTTP
    # instead, and says why (a device that cannot do HTTPS, say).
    host: Annotated[str, Field(pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,}$")] | None = None
    plain_http: Annotated[str, Field(min_length=10)] | None = None

    @model_validator(mode="after")
    def _shape(self) -> Workload:
        problems: list[str] = []
        if self.ha and self.replicas < 2:
            problems.append(f"replicas {self.replicas}: an HA workload needs at least 2; set ha: false to accept one")
        if self.ha and self.volumes:
            problems.append(
                "volumes: RBD volumes are read-write-once, so a workload with volumes runs one replica; set ha: false"
            )
        if not self.ha and self.volumes and self.replicas != 1:
            problems.append(f"replicas {self.replicas}: a workload with read-write-once volumes runs 1 replica")
        names = [p.name for p in self.ports]
        if len(set(names)) != len(names):
            problems.append(f"ports {names} names a port twice")
        both = sorted(set(self.env) & set(self.secret_env))
        if both:
            problems.append(f"env and secret_env both set {', '.join(both)}; keep each variable in one of them")
        secret_looking = sorted(name for name in self.env if SECRET_NAME.search(name))
        if secret_looking:
            problems.append(
                f"env.{secret_looking[0]} looks like a secret, and env values are plain text in the pod spec and "
                "the Pulumi state; put it in secret_env (NAME: a key set with `pulumi config set --secret`)"
            )
        own = sorted(set(self.secret_env.values()) & set(PROGRAM_KEYS))
        if own:
            problems.append(
                f"secret_env: {own[0]} is the program's own setting, not an app's secret; name a key of its own"
            )
        tcp = [p.name for p in self.ports if p.protocol == "TCP"]
        if self.ready_port is not None and self.ready_port not in tcp:
            problems.append(f"ready_port {self.ready_port} is not one of this workload's TCP ports {tcp}")
        if self.ready_path is not None and not tcp:
            problems.append("ready_path needs a TCP port to send the HTTP check to")
        if not re.search(f"{DIGEST}$", self.image):
            problems.append(
                f"image {self.image} has no digest; pin it as name:tag@sha256:<digest> (`docker buildx imagetools "
                f"inspect {self.image}` prints it): a tag is whatever the registry serves today"
            )
        problems += self._seed_problems()
        problems += self._network_problems()
        refuse(problems)
        return self

    def _network_problems(self) -> list[str]:
        problems: list[str] = []
        if "NET_RAW" in self.capabilities and not self.host_network:
            problems.append(
                "capabilities: NET_RAW is beyond Pod Security's baseline, which this workload's namespace enforces; "
                "only a host_network workload (in a privileged namespace) may have it"
            )
        if self.plain_http is not None and self.http_port is None:
            problems.append("plain_http applies to an exposed TCP port named http or http-*, and there is none")
        if self.host is not None and self.http_port is None:
            problems.append("host applies to an exposed TCP port named http or http-*, and there is none")
        if self.keep_client_address and not any(p.expose for p in self.ports):
            problems.append("keep_client_address applies to exposed ports, and none has expose: true")
        if not self.host_network:
            return problems
        hidden = [p.name for p in self.ports if not p.expose]
        if hidden:
            problems.append(
                f"ports {hidden}: on the host network every port is open on the LAN at the VM's address; "
                "set expose: true to say so, or leave the port out"
            )
        for p in self.ports:
            if (p.port, p.protocol) in K3S_NODE_PORTS:
                problems.append(
                    f"ports: {p.port}/{p.protocol} is {K3S_NODE_PORTS[(p.port, p.protocol)]} on every k3s node; "
                    "a host-network pod cannot bind it"
                )
            if NODE_PORT_RANGE[0] <= p.port <= NODE_PORT_RANGE[1]:
                problems.append(
                    f"ports: {p.port}/{p.protocol} is in the NodePort range {NODE_PORT_RANGE[0]}-"
                    f"{NODE_PORT_RANGE[1]}, which kube-proxy holds on every k3s node; a host-network pod "
                    "cannot bind it"
                )
        return problems

    def _seed_problems(self) -> list[str]:
        problems: list[str] = []
        mounts = [v.mount_path.rstrip("/") + "/" for v in self.volumes]
        for i, seed in enumerate(self.seed_files):
            where = f"seed_files[{i}]"
            if not any(seed.path.startswith(m) for m in mounts):
                on = [v.mount_path for v in self.volumes]
                problems.append(
                    f"{where}.path {seed.path} is on none of this workload's volumes {on}: a pod's own files go "
                    "with it, so the file would be seeded again at every start"
                )
            used = set(PLACEHOLDER.findall(seed.content))
            problems += [
                f"{where}: ${{{n}}} in content has no entry in secrets" for n in sorted(used - set(seed.secrets))
            ]
            problems += [
                f"{where}.secrets.{n} is not used in content as ${{{n}}}" for n in sorted(set(seed.secrets) - used)
            ]
            own = sorted(set(seed.secrets.values()) & set(PROGRAM_KEYS))
            if own:
                problems.append(f"{where}.secrets: {own[0]} is the program's own setting; name a key of its own")
        twice = sorted({s.path for s in self.seed_files if [t.path for t in self.seed_files].count(s.path) > 1})
        if twice:
            problems.append(f"seed_files: {', '.join(twice)} is seeded twice")
        return problems

    @property
    def on_host_network(self) -> bool:
        """On its VM's network now: asked for, and its setup done."""
        return self.host_network and not self.setup_pending

    @property
    def on_the_lan(self) -> list[Port]:
        """The ports a LoadBalancer puts on the LAN now: the exposed ones, once setup is done."""
        return [] if self.setup_pending else [p for p in self.ports if p.expose]

    @property
    def http_port(self) -> Port | None:
        """The port a gateway route reaches: the first exposed TCP port named http or http-*."""
        return next(
            (p for p in self.ports if p.expose and p.protocol == "TCP" and re.match(r"^http(-|$)", p.name)), None
        )

    @property
    def readiness_port(self) -> str | None:
        """The TCP port the readiness check uses, or None when the workload has none."""
        return self.ready_port or next((p.name for p in self.ports if p.protocol == "TCP"), None)
