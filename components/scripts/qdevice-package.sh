# Every member needs the qdevice client before `pvecm qdevice setup`. Safe to re-run.
if dpkg-query -W -f='${Status}' corosync-qdevice 2>/dev/null | grep -q 'install ok installed'; then
  echo "corosync-qdevice already installed"
  exit 0
fi
# The enterprise repository answers 401 without a subscription; the Debian lists still update.
# Another apt run may hold the dpkg lock: wait for it, up to 10 minutes, rather than fail.
apt-get -o DPkg::Lock::Timeout=600 update -qq || true
DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends corosync-qdevice
