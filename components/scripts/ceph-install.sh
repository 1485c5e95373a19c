# Install the Ceph packages of one release from the Proxmox repository on this node.
# Safe to re-run: does nothing once the release is installed. A node running another Ceph
# release stops here: upgrading between releases is a manual, one-node-at-a-time procedure.
release() {
  # "ceph version 19.2.3 (...) squid (stable)" -> squid
  ceph-mon --version 2>/dev/null | awk '{print $(NF-1)}'
}
installed() {
  local pkg
  for pkg in ceph-mon ceph-mgr ceph-osd ceph-volume; do
    dpkg-query -W -f="\${Status}" "$pkg" 2>/dev/null | grep -q 'install ok installed' || return 1
  done
  [ "$(release)" = "$VERSION" ]
}
if installed; then
  echo "ceph $VERSION already installed on $(hostname)"
  exit 0
fi
current=$(release || true)
if [ -n "$current" ] && [ "$current" != "$VERSION" ]; then
  echo "error: $(hostname) runs ceph $current, the spec wants $VERSION" >&2
  echo "upgrade by hand, following the Proxmox guide for $current to $VERSION" >&2
  exit 1
fi
# pveceph hands the packages to apt-get, which asks for confirmation: answer it without a
# terminal. `|| true` keeps pipefail from failing on yes's SIGPIPE once pveceph exits.
export DEBIAN_FRONTEND=noninteractive
# Another apt run on this node (cloud-init, unattended-upgrades, the power unit's powertop) may
# hold the dpkg lock: the apt-get that pveceph runs waits for it, up to 10 minutes, rather than
# fail. APT_CONFIG names a file apt reads after its own configuration.
apt_config=$(mktemp)
trap 'rm -f "$apt_config"' EXIT
echo 'DPkg::Lock::Timeout "600";' >"$apt_config"
export APT_CONFIG="$apt_config"
{ yes || true; } | pveceph install --repository "$REPOSITORY" --version "$VERSION"
if ! installed; then
  echo "error: pveceph install finished but ceph $VERSION is not fully installed on $(hostname)" >&2
  exit 1
fi
echo "ceph $VERSION installed on $(hostname)"
