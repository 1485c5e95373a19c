# Install Proxmox Backup Server on this Debian 13 machine from Proxmox's repository. Safe to
# re-run: does nothing once the server is installed and running. The repository's key is
# trusted only if its sha256 is the one Proxmox publishes (PBS admin guide, "SecureApt").
# shellcheck source=/dev/null
. "$OS_RELEASE"
if [ "${VERSION_CODENAME:-}" != "$SUITE" ]; then
  echo "error: $(hostname) runs ${PRETTY_NAME:-an unknown system}; PBS from the $SUITE repository needs Debian $SUITE" >&2
  exit 1
fi
installed() {
  dpkg-query -W -f='${Status}' proxmox-backup-server 2>/dev/null | grep -q 'install ok installed'
}
if installed && systemctl is-active --quiet proxmox-backup-proxy; then
  echo "proxmox-backup-server already installed and running on $(hostname)"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# Another apt run (unattended-upgrades on a fresh Debian) may hold the dpkg lock: wait for it.
apt_config=$(mktemp)
download=$(mktemp)
trap 'rm -f "$apt_config" "$download"' EXIT
echo 'DPkg::Lock::Timeout "600";' >"$apt_config"
export APT_CONFIG="$apt_config"
if [ ! -s "$KEYRING" ]; then
  if ! command -v curl >/dev/null; then
    apt-get update
    apt-get install -y --no-install-recommends curl ca-certificates
  fi
  curl --proto =https --tlsv1.2 -fsSL -o "$download" "$KEYRING_URL"
  actual=$(sha256sum "$download" | awk '{print $1}')
  if [ "$actual" != "$KEYRING_SHA256" ]; then
    echo "error: $KEYRING_URL has sha256 $actual, not $KEYRING_SHA256: not trusting it" >&2
    exit 1
  fi
  install -m 0644 "$download" "$KEYRING"
fi
cat >"$SOURCES" <<DEB822
Types: deb
URIs: $REPOSITORY
Suites: $SUITE
Components: pbs-no-subscription
Signed-By: $KEYRING
DEB822
apt-get update
# Without its recommends: they bring ifupdown2 (which would take over the network of a machine
# reached over SSH) and ZFS, which a datastore in a directory does not need.
apt-get install -y --no-install-recommends proxmox-backup-server
if ! installed; then
  echo "error: apt-get finished but proxmox-backup-server is not installed on $(hostname)" >&2
  exit 1
fi
systemctl enable --now proxmox-backup proxmox-backup-proxy
echo "proxmox-backup-server installed on $(hostname)"
