# Wait until this node reaches every peer on the storage network, before corosync link 1 and Ceph
# use it. An SDN apply starts one network reload task per node and does not wait for them
# (pve-network src/PVE/API2/Network/SDN.pm, the `reload` method and its FIXME), and a bond or a
# fabric link comes up only once its members negotiate. Safe to re-run: it changes nothing.
read -r -a addresses <<<"$PEERS"
missing=()
for _ in $(seq 1 "$TRIES"); do
  missing=()
  for peer in "${addresses[@]}"; do
    ping -c 1 -W 1 "$peer" >/dev/null 2>&1 || missing+=("$peer")
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    echo "$(hostname) reaches every peer on the storage network"
    exit 0
  fi
  sleep "$WAIT_SECONDS"
done
echo "error: $(hostname) does not reach ${missing[*]} on the storage network after $TRIES tries;" \
  "check the cables, the bonds and the fabric (pvesh get /cluster/sdn/fabrics)" >&2
exit 1
