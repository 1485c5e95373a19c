"""One real round trip of a volume's backup: restic (Debian's) backs a directory up with exactly
the repository, credentials and CA the program gives VolSync's mover for that volume, to a real
S3 server (moto) on 127.0.0.1 over TLS, restores it, and the copy equals the original.

The server is started and stopped here, by PID, and listens on 127.0.0.1 only. Its certificate
is signed by a CA made for the test, which the stack names as `backups.s3.ca_certificate`, so the
mover's `--cacert` (VolSync mover-restic/entry.sh) is what makes TLS work.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.volume_backups import CA_CONFIG_MAP, CA_KEY
from policies import tokens
from tests.ceph_cluster import free_port
from tests.support import patched, program_with, stack_data

VOLUME = ("media", "jellyfin-config-restic")  # the jellyfin config volume's repository Secret


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # host:port, as the spec takes it
    ca: str  # the CA's certificate (PEM)


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    for tool in ("restic", "openssl"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: `make tools` installs it from Debian")
    folder = tmp_path_factory.mktemp("s3")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test backup CA",
            "-keyout", "ca.key", "-out", "ca.crt", cwd=folder)  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
            "-out", "server.csr", cwd=folder)  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "san.ext", "-out", "server.crt", cwd=folder)  # fmt: skip
    port = free_port()
    moto = Path(sys.executable).parent / "moto_server"
    log = (folder / "moto.log").open("w")
    server = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port), "-c", "server.crt", "-k", "server.key"],
        cwd=folder,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        context = ssl.create_default_context(cafile=str(folder / "ca.crt"))
        deadline = time.monotonic() + 30
        while True:
            try:
                with (
                    socket.create_connection(("127.0.0.1", port), timeout=1) as raw,
                    context.wrap_socket(raw, server_hostname="127.0.0.1"),
                ):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto did not answer on 127.0.0.1:{port}: {(folder / 'moto.log').read_text()}")
                time.sleep(0.2)
        yield S3Server(f"127.0.0.1:{port}", (folder / "ca.crt").read_text())
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def mover_inputs(server: S3Server) -> tuple[dict[str, str], str]:
    """The volume's repository Secret and the CA, as the program declares them for this store."""
    data = patched(stack_data("home"), {"backups.s3.endpoint": server.endpoint, "backups.s3.ca_certificate": server.ca})
    run = program_with("home", data)
    [secret] = [
        r
        for r in run.of_type(tokens.K8S_SECRET)
        if (r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"]) == VOLUME
    ]
    [ca] = [
        r
        for r in run.of_type(tokens.K8S_CONFIG_MAP)
        if (r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"]) == (VOLUME[0], CA_CONFIG_MAP)
    ]
    return dict(secret.inputs["stringData"]), ca.inputs["data"][CA_KEY]


def restic(env: dict[str, str], cacert: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = ["restic", "--cacert", str(cacert), "--no-cache", *args]
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def test_a_volume_goes_to_s3_and_comes_back_the_same(s3_server: S3Server, tmp_path: Path) -> None:
    settings, ca = mover_inputs(s3_server)
    assert settings["RESTIC_REPOSITORY"] == (
        f"s3:https://{s3_server.endpoint}/homelab-backups/home/volsync/media/jellyfin-config"
    )
    cacert = tmp_path / "ca.crt"
    cacert.write_text(ca)
    # Exactly the Secret's keys (what the mover gets), and what any process needs to run.
    env = {**settings, "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    volume = tmp_path / "config"
    (volume / "data" / "metadata").mkdir(parents=True)
    (volume / "system.xml").write_text(
        "<ServerConfiguration><IsStartupWizardCompleted>true</IsStartupWizardCompleted>\n"
    )
    (volume / "data" / "library.db").write_bytes(os.urandom(256 * 1024))
    (volume / "data" / "metadata" / "empty").write_bytes(b"")
    os.chmod(volume / "system.xml", 0o600)

    init = restic(env, cacert, "init")
    assert init.returncode == 0, init.stderr
    # restic keeps paths as given: from inside the volume, as the mover does (its /data).
    backup = restic(env, cacert, "backup", "--host", "volsync", ".", cwd=volume)
    assert backup.returncode == 0, backup.stderr
    snapshots = restic(env, cacert, "snapshots", "--json")
    assert snapshots.returncode == 0, snapshots.stderr
    assert len(json.loads(snapshots.stdout)) == 1

    restored = tmp_path / "restored"
    restore = restic(env, cacert, "restore", "latest", "--target", str(restored))
    assert restore.returncode == 0, restore.stderr
    comparison = filecmp.dircmp(volume, restored)
    assert not (comparison.left_only or comparison.right_only or comparison.diff_files), (
        comparison.left_only,
        comparison.right_only,
        comparison.diff_files,
    )
    for path in ("system.xml", "data/library.db", "data/metadata/empty"):
        assert (restored / path).read_bytes() == (volume / path).read_bytes(), path
    assert (restored / "system.xml").stat().st_mode & 0o777 == 0o600


def test_without_the_stores_ca_the_copy_is_refused(s3_server: S3Server, tmp_path: Path) -> None:
    # The CA is what lets the mover trust the store: another CA, and nothing is sent.
    settings, _ = mover_inputs(s3_server)
    other = tmp_path / "other"
    other.mkdir()
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=someone else",
            "-keyout", "k.pem", "-out", "ca.crt", cwd=other)  # fmt: skip
    env = {**settings, "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    result = restic(env, other / "ca.crt", "snapshots")
    assert result.returncode != 0
    assert "certificate" in result.stderr
