# Wait until this node holds its storage address and reaches every peer on the storage network,
# before corosync link 1 and Ceph use it. An SDN apply starts one network reload task per node and
# does not wait for them (pve-network src/PVE/API2/Network/SDN.pm, the `reload` method and its
# FIXME), and a bond or a fabric link comes up only once its members negotiate. Safe to re-run.
# A node that joined after link 1 existed held ADDRESS on lo for the join (cluster-join.sh): it
# is handed over here, once the storage network holds it too.
read -r -a addresses <<<"$PEERS"
held_by_network() {
  ip -o address show to "$ADDRESS/32" | awk '$2 != "lo" { found = 1 } END { exit !found }'
}
missing=()
for _ in $(seq 1 "$TRIES"); do
  missing=()
  if held_by_network; then
    if [ -n "$(ip -o address show dev lo to "$ADDRESS/32")" ]; then
      ip address del "$ADDRESS/32" dev lo
      echo "the storage network holds $ADDRESS: removed the join's stand-in from lo"
    fi
    for peer in "${addresses[@]}"; do
      ping -c 1 -W 1 "$peer" >/dev/null 2>&1 || missing+=("$peer")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
      echo "$(hostname) reaches every peer on the storage network"
      exit 0
    fi
  fi
  sleep "$WAIT_SECONDS"
done
if ! held_by_network; then
  echo "error: no interface of $(hostname) holds its storage address $ADDRESS after $TRIES tries;" \
    "check its storage bond or its place in the fabric (pvesh get /cluster/sdn/fabrics)" >&2
  exit 1
fi
echo "error: $(hostname) does not reach ${missing[*]} on the storage network after $TRIES tries;" \
  "check the cables, the bonds and the fabric (pvesh get /cluster/sdn/fabrics)" >&2
exit 1
