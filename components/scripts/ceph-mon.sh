# Create this node's Ceph monitor on its Ceph public-network address (clients reach monitors
# there; Proxmox refuses one outside the public network). Safe to re-run: does nothing once
# the monitor map has it (and starts its service if an interrupted run left it stopped).
unit="ceph-mon@$NODE.service"
# `mon dump` lines end in the monitor's name: "0: [v2:10.0.40.11:3300/0,...] mon.pve1".
if ceph --connect-timeout 30 mon dump 2>/dev/null | grep -Eq " mon\.$NODE\$"; then
  if ! systemctl is-active --quiet "$unit"; then
    echo "mon.$NODE is in the monitor map but not running: starting $unit"
    systemctl enable --now "$unit"
  fi
  echo "monitor mon.$NODE already exists"
  exit 0
fi
if [ -e "/var/lib/ceph/mon/ceph-$NODE" ]; then
  # A monitor store that never joined: only a person can tell whether it is safe to drop.
  echo "error: /var/lib/ceph/mon/ceph-$NODE exists but mon.$NODE is not in the monitor map" >&2
  echo "an earlier create was interrupted: run 'pveceph mon destroy $NODE' on $NODE, then run again" >&2
  exit 1
fi
pveceph mon create --mon-address "$MON_ADDRESS"
echo "monitor mon.$NODE created on $MON_ADDRESS"
