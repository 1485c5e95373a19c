"""The Proxmox Backup Server on the owner's own low-power Debian machine, set up over SSH.

PBS's guidance is never to run it on the hypervisor it protects: it is a machine of its own,
outside the cluster (the backup-off-cluster policy refuses any address of the cluster). Two
scripts make it: the packages from Proxmox's repository, then the datastore, the nodes' user
and PBS's own jobs. The second prints the certificate's fingerprint, which the nodes' PBS
storage pins: read over SSH, whose host key the spec pins, so no one in between can swap it.

The nodes log in as a PBS user with the password from homelab:pbsPassword, not with an API
token: a token's secret is shown once, when it is made, so a rebuilt or re-run stack could not
set it again. The user may back up and restore what it owns (PBS's DatastoreBackup role,
proxmox-backup pbs-api-types/src/acl.rs), not prune or delete: PBS prunes by its own job, so a
node that is taken over cannot wipe the history.
"""

from __future__ import annotations

import pulumi
import pulumi_command as command

from components import remote
from components.stack import Access, secret_config
from spec.backups import PBS_PASSWORD, Pbs
from spec.models import Cluster

# Proxmox's archive keyring for Debian 13 and its published sha256 (PBS and PVE admin guides,
# "SecureApt"); apt checks every package against it from then on.
KEYRING_URL = "https://enterprise.proxmox.com/debian/proxmox-archive-keyring-trixie.gpg"
KEYRING_SHA256 = "136673be77aba35dcce385b28737689ad64fd785a797e57897589aed08db6e45"
KEYRING = "/usr/share/keyrings/proxmox-archive-keyring.gpg"
REPOSITORY = "http://download.proxmox.com/debian/pbs"
SUITE = "trixie"
PRUNE_JOB = "homelab-prune"
VERIFY_JOB = "homelab-verify"
# PBS prunes before it collects garbage, after the nightly backups.
PRUNE_SCHEDULE = "*-*-* 04:30"
FINGERPRINT = "fingerprint"


def configure_script(cluster: Cluster, pbs: Pbs, password: str) -> str:
    """The setup of the datastore, user and jobs, with the spec's values and the password."""
    assert pbs.host is not None and cluster.backups is not None
    retention = cluster.backups.guests.retention.prune_options()
    return remote.script(
        "pbs-configure",
        config_dir="/etc/proxmox-backup",
        datastore=pbs.datastore,
        datastore_path=pbs.datastore_path,
        username=pbs.username,
        password=password,
        gc_schedule=pbs.host.gc_schedule,
        verify_schedule=pbs.host.verify_schedule,
        prune_schedule=PRUNE_SCHEDULE,
        prune_job=PRUNE_JOB,
        verify_job=VERIFY_JOB,
        keep=" ".join(f"{key}={count}" for key, count in retention.items()),
    )


def last_line(stdout: str) -> str:
    """The script's last line: the fingerprint (PBS's commands print their task logs before it)."""
    lines = stdout.strip().splitlines()
    return lines[-1].strip() if lines else ""


class BackupServer(pulumi.ComponentResource):
    """PBS installed and configured on `backups.pbs.host`; `fingerprint` is its certificate's."""

    def __init__(self, cluster: Cluster, access: Access, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("homelab:backups:BackupServer", f"{cluster.name}-backup-server", None, opts)
        assert cluster.backups is not None and cluster.backups.pbs.host is not None
        pbs = cluster.backups.pbs
        assert pbs.host is not None
        # As root: PBS's packages and its configuration are root's. The stack's SSH key, the
        # host key from the spec.
        ssh = access.connection(str(pbs.address), user="root", host_key=pbs.host.ssh_host_key)
        install = remote.run(
            f"{cluster.name}-pbs-install",
            ssh,
            remote.script(
                "pbs-install",
                os_release="/etc/os-release",
                keyring=KEYRING,
                keyring_url=KEYRING_URL,
                keyring_sha256=KEYRING_SHA256,
                sources="/etc/apt/sources.list.d/pbs-no-subscription.sources",
                repository=REPOSITORY,
                suite=SUITE,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        configure = command.remote.Command(
            f"{cluster.name}-pbs-configure",
            command.remote.CommandArgs(
                connection=ssh,
                # The script carries the password: the engine keeps it as a secret, and the
                # log gets stderr only. Any change of the spec's values or the password runs it again.
                create=secret_config(PBS_PASSWORD).apply(lambda password: configure_script(cluster, pbs, password)),
                logging=command.remote.Logging.STDERR,
                add_previous_output_in_env=False,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[install]),
        )
        self.ready: list[pulumi.Resource] = [configure]
        self.fingerprint: pulumi.Output[str] = configure.stdout.apply(last_line)
        self.register_outputs({FINGERPRINT: self.fingerprint})
