# Give a two-node cluster a third vote from an external corosync-qnetd host. Safe to re-run.
if pvecm status | grep -q 'Qdevice'; then
  echo "quorum device already configured"
  exit 0
fi
apt-get install -y --no-install-recommends corosync-qdevice
pvecm qdevice setup "$QNETD_ADDRESS" --force
