# Every member needs the qdevice client before `pvecm qdevice setup`. Safe to re-run.
if dpkg-query -W -f='${Status}' corosync-qdevice 2>/dev/null | grep -q 'install ok installed'; then
  echo "corosync-qdevice already installed"
  exit 0
fi
# The enterprise repository answers 401 without a subscription; the Debian lists still update.
apt-get update -qq || true
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends corosync-qdevice
