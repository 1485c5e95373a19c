"""Make the home's own root CA, once: `python -m tools.make_ca --stack home`.

The certificate goes to stdout (put it in the stack file as `gateway.private_ca.certificate`), the
key to `--key-out` (mode 0600), from where it becomes a secret:
`pulumi config set --secret homelab:caPrivateKey < homelab-ca.key`, then delete the file.

The root may sign names under the stack's domain and addresses on its LAN only (critical name
constraints, RFC 5280 4.2.1.10): installed on a phone, it cannot vouch for any other site, even if
its key leaks from the cluster. It lasts ten years; its certificates are short-lived and renewed
by cert-manager and the program.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Network
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from spec.load import CLUSTER_KEY, parse_cluster, read_stack_config

ROOT_YEARS = 10


def make_ca(
    name: str, domain: str, lan: IPv4Network, now: datetime | None = None
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A P-256 root for DOMAIN and LAN, valid ROOT_YEARS from NOW."""
    now = now or datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "homelab"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{name} root CA"),
        ]
    )
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=365 * ROOT_YEARS))
        # It signs server certificates only, never another CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.NameConstraints(
                permitted_subtrees=[x509.DNSName(domain), x509.IPAddress(lan)], excluded_subtrees=None
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="home", help="the stack whose domain and LAN the CA is for")
    parser.add_argument("--key-out", type=Path, default=Path("homelab-ca.key"), help="where the key is written")
    args = parser.parse_args(argv)
    cluster = parse_cluster(read_stack_config(Path(f"Pulumi.{args.stack}.yaml"))[CLUSTER_KEY])
    if args.key_out.exists():
        print(f"error: {args.key_out} exists; a CA is made once (move it away to make another)", file=sys.stderr)
        return 1
    key, certificate = make_ca(cluster.name, cluster.domain, cluster.networks.lan.cidr)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(args.key_out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    sys.stdout.write(certificate.public_bytes(serialization.Encoding.PEM).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
