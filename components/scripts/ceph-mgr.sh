# Create this node's Ceph manager (one is active, the others stand by). Safe to re-run: does
# nothing once the manager map lists it, active or standby.
unit="ceph-mgr@$NODE.service"
data="/var/lib/ceph/mgr/ceph-$NODE"
if ceph --connect-timeout 30 mgr dump --format json 2>/dev/null | grep -Eq "\"(active_name|name)\": ?\"$NODE\""; then
  echo "manager mgr.$NODE already exists"
  exit 0
fi
if [ -f "$data/keyring" ]; then
  # Created but not (yet) registered: a manager registers a few seconds after it starts.
  systemctl enable --now "$unit"
  echo "manager mgr.$NODE already created: $unit started"
  exit 0
fi
if [ -e "$data" ]; then
  echo "error: $data exists without a keyring (an interrupted create): remove it and run again" >&2
  exit 1
fi
pveceph mgr create
echo "manager mgr.$NODE created"
