# Join this node to the cluster through the first node, corosync link 0 on the LAN.
# Safe to re-run: does nothing once this node is a member.
if [ -f /etc/pve/corosync.conf ]; then
  echo "already a member of the cluster"
  exit 0
fi
# ssh-copy-id and the BatchMode ssh calls of `pvecm add --use_ssh` cannot answer a host-key
# prompt: the first node's key goes into known_hosts first, the one the spec pins (nodes[].
# ssh_host_key), never what answers on the network. Its root already authorized this node's key
# (cluster-authorize.sh).
known=${KNOWN_HOSTS:-/root/.ssh/known_hosts}  # overridable for tests
mkdir -p "$(dirname "$known")"
touch "$known"
if ! grep -qxF "$FIRST_NODE $FIRST_NODE_KEY" "$known"; then
  ssh-keygen -R "$FIRST_NODE" -f "$known" >/dev/null 2>&1 || true
  echo "$FIRST_NODE $FIRST_NODE_KEY" >>"$known"
fi
links=(--link0 "address=$LINK0")
# A node added after corosync link 1 exists must bring its link-1 address: the cluster refuses a
# join that leaves out a configured link (pve-cluster src/PVE/API2/ClusterConfig.pm, addnode).
if [ -n "$STORAGE_LINK" ] && ssh -o BatchMode=yes "root@$FIRST_NODE" grep -q ring1_addr /etc/pve/corosync.conf; then
  # pvecm also checks that every link address is on this node (src/PVE/Cluster/Setup.pm,
  # assert_joinable), but this node's storage network (its bond or its place in the fabric) comes
  # through the cluster API, so only after the join. Until then a stand-in holds the address on
  # lo; storage-reachable.sh removes it once the storage network holds the address.
  if [ -z "$(ip -o address show to "$STORAGE_LINK/32" up)" ]; then
    ip address add "$STORAGE_LINK/32" dev lo label lo:join
    echo "holding $STORAGE_LINK on lo for the join"
  fi
  links+=(--link1 "address=$STORAGE_LINK")
fi
pvecm add "$FIRST_NODE" --use_ssh 1 "${links[@]}"
