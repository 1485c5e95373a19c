"""Each Proxmox node's web UI and API certificate, from the same source as the apps' names.

- `private_ca`: a key and a certificate per node, signed with the owner's CA (pulumi-tls, kept in
  the stack's state and renewed 30 days before it ends), for `<node>.<domain>` and the node's LAN
  address, uploaded as the node's custom certificate (pve-manager
  PVE/API2/Certificates.pm `upload_custom_cert`, through bpg's `certificate` resource, which asks
  for pveproxy's restart). A browser that trusts the CA trusts `https://<node address>:8006`.
- `acme`: Proxmox's own ACME client orders a Let's Encrypt certificate for `<node>.<domain>`,
  by DNS-01 through the same DNS provider (an acme.sh DNS plugin of the cluster), and renews it
  itself (pve-daily-update).

The program's own API connection keeps verifying either way: the CI job's CA bundle holds the
owner's CA beside the cluster's (.github/actions/pulumi-on-the-lan/proxmox-ca-bundle.sh), and a
Let's Encrypt certificate is trusted by the system's CAs.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import ip_address
from urllib.parse import urlparse

import pulumi
import pulumi_proxmoxve as proxmoxve
import pulumi_tls as tls

from components.stack import Access, secret_config
from plan.routes import node_names
from spec.gateway import ACME_DNS_TOKEN, CA_PRIVATE_KEY
from spec.models import Cluster

# 397 days: the longest a browser accepts for a server certificate (Apple's and Chrome's limit
# for public CAs, which some apply to every CA); renewed by the next `pulumi up` 30 days before.
VALIDITY_HOURS = 397 * 24
EARLY_RENEWAL_HOURS = 30 * 24
ACME_ACCOUNT = "homelab"
ACME_PLUGIN = "homelab-dns"
LETS_ENCRYPT = {
    "production": "https://acme-v02.api.letsencrypt.org/directory",
    "staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
}
# Let's Encrypt's subscriber agreement, agreed to by giving its address (pve-manager
# PVE/API2/ACMEAccount.pm, `tos_url`).
LETS_ENCRYPT_TOS = "https://letsencrypt.org/documents/LE-SA-v1.5-February-24-2025.pdf"
# acme.sh's DNS API for each provider the spec allows, and the variable its token goes in.
ACME_SH_API = {"cloudflare": ("cf", "CF_Token")}


def refuse_endpoint_by_address(endpoint: str, names: dict[str, str]) -> None:
    """A Let's Encrypt certificate names the node, never its address: once the first node has
    it, an API endpoint given by address no longer matches, and every later call of this run and
    the next would fail TLS verification."""
    host = urlparse(endpoint).hostname or ""
    try:
        ip_address(host)
    except ValueError:
        return
    first = next(iter(names.values()))
    raise pulumi.RunError(
        f"homelab:proxmoxEndpoint {endpoint} names a node by its address, and with gateway.acme the nodes get "
        f"Let's Encrypt certificates for their names only; set it to https://{first}:8006/ (a name the machine "
        "running Pulumi resolves, such as an A record at the DNS provider)"
    )


class NodeCertificates(pulumi.ComponentResource):
    """Every node's certificate, from the owner's CA or from Let's Encrypt."""

    def __init__(
        self,
        cluster: Cluster,
        access: Access,
        after: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("homelab:proxmox:NodeCertificates", f"{cluster.name}-node-certificates", None, opts)
        gateway = cluster.gateway
        assert gateway is not None
        on_api = pulumi.ResourceOptions(parent=self, provider=access.proxmox, depends_on=list(after))
        names = node_names(cluster)
        if gateway.private_ca is not None:
            ca = gateway.private_ca.certificate
            for node in cluster.nodes:
                mine = pulumi.ResourceOptions(parent=self)
                key = tls.PrivateKey(
                    f"{node.name}-tls-key", tls.PrivateKeyArgs(algorithm="ECDSA", ecdsa_curve="P256"), opts=mine
                )
                request = tls.CertRequest(
                    f"{node.name}-tls-request",
                    tls.CertRequestArgs(
                        private_key_pem=key.private_key_pem,
                        subject=tls.CertRequestSubjectArgs(common_name=names[node.name]),
                        dns_names=[names[node.name]],
                        ip_addresses=[str(node.address)],
                    ),
                    opts=mine,
                )
                signed = tls.LocallySignedCert(
                    f"{node.name}-tls-certificate",
                    tls.LocallySignedCertArgs(
                        cert_request_pem=request.cert_request_pem,
                        ca_cert_pem=ca,
                        ca_private_key_pem=secret_config(CA_PRIVATE_KEY),
                        validity_period_hours=VALIDITY_HOURS,
                        early_renewal_hours=EARLY_RENEWAL_HOURS,
                        allowed_uses=["digital_signature", "server_auth"],
                    ),
                    opts=mine,
                )
                proxmoxve.CertificateLegacy(
                    f"{node.name}-certificate",
                    proxmoxve.CertificateLegacyArgs(
                        node_name=node.name,
                        certificate=signed.cert_pem,
                        certificate_chain=ca,
                        private_key=key.private_key_pem,
                        # Replaces the node's self-signed one (pve-ssl.pem stays for the cluster's own use).
                        overwrite=True,
                    ),
                    opts=on_api,
                )
        else:
            acme = gateway.acme
            assert acme is not None
            refuse_endpoint_by_address(pulumi.Config("homelab").require("proxmoxEndpoint"), names)
            api, variable = ACME_SH_API[acme.dns_provider]
            account = proxmoxve.acme.Account(
                ACME_ACCOUNT,
                proxmoxve.acme.AccountArgs(
                    name=ACME_ACCOUNT, contact=acme.email, directory=LETS_ENCRYPT[acme.server], tos=LETS_ENCRYPT_TOS
                ),
                opts=on_api,
            )
            plugin = proxmoxve.acme.dns.Plugin(
                ACME_PLUGIN,
                proxmoxve.acme.dns.PluginArgs(
                    plugin=ACME_PLUGIN, api=api, data={variable: secret_config(ACME_DNS_TOKEN)}
                ),
                opts=on_api,
            )
            for node in cluster.nodes:
                proxmoxve.acme.Certificate(
                    f"{node.name}-acme-certificate",
                    proxmoxve.acme.CertificateArgs(
                        node_name=node.name,
                        account=ACME_ACCOUNT,
                        domains=[proxmoxve.acme.CertificateDomainArgs(domain=names[node.name], plugin=ACME_PLUGIN)],
                    ),
                    opts=pulumi.ResourceOptions.merge(on_api, pulumi.ResourceOptions(depends_on=[account, plugin])),
                )
        self.register_outputs({"nodes": names})
