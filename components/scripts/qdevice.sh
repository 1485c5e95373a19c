# Give a two-node cluster a third vote from an external corosync-qnetd host (root SSH to it
# must work from this node). Safe to re-run.
if pvecm status | grep -q 'Qdevice'; then
  echo "quorum device already configured"
  exit 0
fi
pvecm qdevice setup "$QNETD_ADDRESS" --force
