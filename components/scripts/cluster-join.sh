# Join this node to the cluster through the first node, corosync link 0 on the LAN.
# Safe to re-run: does nothing once this node is a member.
if [ -f /etc/pve/corosync.conf ]; then
  echo "already a member of the cluster"
  exit 0
fi
pvecm add "$FIRST_NODE" --use_ssh 1 --link0 "address=$LINK0"
