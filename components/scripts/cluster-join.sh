# Join this node to the cluster through the first node, corosync link 0 on the LAN.
# Safe to re-run: does nothing once this node is a member.
if [ -f /etc/pve/corosync.conf ]; then
  echo "already a member of the cluster"
  exit 0
fi
links=(--link0 "address=$LINK0")
# A node added after corosync link 1 exists must bring its link-1 address: pvecm refuses a
# join that leaves out a configured link.
if [ -n "$STORAGE_LINK" ] && ssh -o BatchMode=yes "root@$FIRST_NODE" grep -q ring1_addr /etc/pve/corosync.conf; then
  links+=(--link1 "address=$STORAGE_LINK")
fi
pvecm add "$FIRST_NODE" --use_ssh 1 "${links[@]}"
