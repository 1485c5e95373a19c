# Create the Proxmox cluster on the first node, with corosync link 0 on the LAN.
# Safe to re-run: does nothing once this node is in a cluster.
if [ -f /etc/pve/corosync.conf ]; then
  echo "already in cluster: $(pvecm status | awk -F': *' '/^Name:/ {print $2}')"
  exit 0
fi
pvecm create "$CLUSTER" --link0 "address=$LINK0"
