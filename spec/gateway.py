"""Names and HTTPS: one gateway in front of every web app, its certificates, and the DNS names.

`gateway` in the spec puts each workload's HTTP port behind one address on the LAN, at
`https://<host>` (default `<name>.<domain>`), with a certificate for `*.<domain>`:
- from the home's own CA (`private_ca`) for an internal domain such as `home.arpa`: the owner
  makes it once (`python -m tools.make_ca`), keeps its certificate here and its key as the
  secret `homelab:caPrivateKey`, and trusts it once on each phone and laptop (README, "Names and
  HTTPS"). It is the owner's and not the cluster's, so a cluster rebuilt from the repository
  serves names the devices already trust, and it signs the Proxmox nodes' certificates too;
- or from Let's Encrypt (`acme`) for a public domain the owner has, by DNS-01 through the DNS
  provider named here, its API token the secret `homelab:acmeDnsToken`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from ipaddress import IPv4Address
from typing import Annotated, Literal

from cryptography import x509
from cryptography.x509.oid import ExtensionOID
from pydantic import Field, model_validator

from spec.base import Model, Name, refuse

CA_PRIVATE_KEY = "caPrivateKey"
ACME_DNS_TOKEN = "acmeDnsToken"
# AdGuard Home's admin password in the clear: external-dns logs in to its API with it (AdGuard
# keeps only the bcrypt hash, the seed file's adguardAdminPasswordHash).
DNS_SERVER_PASSWORD = "adguardAdminPassword"
# Domains no public CA issues for (RFC 8375 home.arpa, RFC 6762 .local, ICANN's .internal, and
# the unofficial .lan): their names need the home's own CA.
INTERNAL_SUFFIXES = (".arpa", ".local", ".internal", ".lan")
PEM_CERTIFICATE = re.compile(r"^-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n?$")


def internal_domain(domain: str) -> bool:
    return domain.endswith(INTERNAL_SUFFIXES)


class PrivateCa(Model):
    # The root's certificate (PEM), as `python -m tools.make_ca` prints it; its key is the
    # secret homelab:caPrivateKey, never here.
    certificate: Annotated[str, Field(pattern=PEM_CERTIFICATE.pattern)]

    def root(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.certificate.encode())

    def problems(self, domain: str, now: datetime | None = None) -> list[str]:
        """What keeps this root from signing `*.<domain>` in a way browsers accept."""
        where = "gateway.private_ca.certificate"
        try:
            root = self.root()
        except ValueError as exc:
            return [f"{where} is not a PEM certificate: {exc}"]
        out: list[str] = []
        try:
            constraints = root.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value
            is_ca = isinstance(constraints, x509.BasicConstraints) and constraints.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            out.append(f"{where} is not a CA certificate (basicConstraints CA:TRUE); make one with tools.make_ca")
        try:
            usage = root.extensions.get_extension_for_oid(ExtensionOID.KEY_USAGE).value
            if isinstance(usage, x509.KeyUsage) and not usage.key_cert_sign:
                out.append(f"{where} may not sign certificates (its keyUsage lacks keyCertSign)")
        except x509.ExtensionNotFound:
            pass
        now = now or datetime.now(UTC)
        if root.not_valid_after_utc <= now:
            out.append(f"{where} expired on {root.not_valid_after_utc:%Y-%m-%d}; make a new CA and trust it again")
        try:
            names = root.extensions.get_extension_for_oid(ExtensionOID.NAME_CONSTRAINTS).value
        except x509.ExtensionNotFound:
            return out
        permitted = [n.value for n in (getattr(names, "permitted_subtrees", None) or []) if isinstance(n, x509.DNSName)]
        if permitted and not any(domain == p.lstrip(".") or domain.endswith("." + p.lstrip(".")) for p in permitted):
            out.append(f"{where} may only sign names under {', '.join(permitted)} (its name constraints), not {domain}")
        return out


class Acme(Model):
    # Let's Encrypt's contact for expiry notices and its terms.
    email: Annotated[str, Field(pattern=r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")]
    # The DNS provider cert-manager and Proxmox write the DNS-01 challenge's TXT record to; its
    # API token (Zone:DNS:Edit on the domain's zone) is the secret homelab:acmeDnsToken.
    dns_provider: Literal["cloudflare"] = "cloudflare"
    # staging: untrusted certificates under far higher rate limits, for a first try.
    server: Literal["production", "staging"] = "production"


class Gateway(Model):
    # The gateway's LoadBalancer address on the LAN, outside k3s.load_balancer_pool, as every
    # pinned address is: what every name points at.
    address: IPv4Address
    # Replicas on distinct Proxmox hosts: a node's loss leaves one serving.
    replicas: Annotated[int, Field(ge=2)] = 2
    private_ca: PrivateCa | None = None
    acme: Acme | None = None
    # The workload that answers the home's DNS (AdGuard Home): external-dns writes each name into
    # it, pointing at `address`. None: the owner points `*.<domain>` at `address` in their own DNS.
    dns_server: Name | None = None
    # Its admin user, whose password (in the clear) is the secret homelab:adguardAdminPassword.
    dns_server_user: Annotated[str, Field(pattern=r"^[A-Za-z0-9._@-]{1,64}$")] = "admin"

    def secrets(self) -> tuple[str, ...]:
        """The secret config keys the gateway reads."""
        issuer = CA_PRIVATE_KEY if self.private_ca is not None else ACME_DNS_TOKEN
        return (issuer, DNS_SERVER_PASSWORD) if self.dns_server is not None else (issuer,)

    @model_validator(mode="after")
    def _one_issuer(self) -> Gateway:
        if (self.private_ca is None) == (self.acme is None):
            refuse(["set exactly one of private_ca (an internal domain) and acme (a public domain the owner has)"])
        return self


def host_for(name: str, host: str | None, domain: str) -> str:
    """A workload's name on the LAN: its `host`, by default `<name>.<domain>`."""
    return host or f"{name}.{domain}"


def covered(host: str, domain: str) -> bool:
    """Whether the gateway's `*.<domain>` certificate covers HOST: one label, then the domain."""
    head, _, rest = host.partition(".")
    return bool(head) and rest == domain


def gateway_problems(gateway: Gateway, domain: str, has_k3s: bool) -> list[str]:
    """The gateway's own checks against the rest of the spec (its address is checked with the
    other pinned addresses in spec.checks)."""
    out: list[str] = []
    if not has_k3s:
        out.append("gateway: there is no k3s cluster to run it")
    if gateway.acme is not None and internal_domain(domain):
        out.append(
            f"gateway.acme: no public CA issues certificates for {domain}, an internal domain; use private_ca, "
            "or a domain of your own"
        )
    if gateway.private_ca is not None:
        out += gateway.private_ca.problems(domain)
    return out
