# Add corosync link 1 on the storage network, so the cluster keeps quorum when either
# network dies. Follows the Proxmox procedure: edit a copy, bump config_version, move it in
# place (pmxcfs then reloads corosync on every node). Safe to re-run.
# RING1 is "node=address node=address ...".
conf=${COROSYNC_CONF:-/etc/pve/corosync.conf}  # overridable for tests
if grep -q 'ring1_addr' "$conf"; then
  echo "corosync link 1 already configured"
  exit 0
fi
new=$(mktemp)
trap 'rm -f "$new"' EXIT
cp "$conf" "$new"
for pair in $RING1; do
  node=${pair%%=*}
  addr=${pair#*=}
  # Insert ring1_addr after the ring0_addr of the node block whose name matches.
  awk -v node="$node" -v addr="$addr" '
    /^[[:space:]]*name:/ { current = $2 }
    { print }
    /^[[:space:]]*ring0_addr:/ && current == node { sub(/ring0_addr:.*/, "ring1_addr: " addr); print }
  ' "$new" > "$new.tmp"
  mv "$new.tmp" "$new"
done
awk '
  /^totem[[:space:]]*\{/ { in_totem = 1 }
  in_totem && /config_version:/ { n = $2 + 1; sub(/config_version:.*/, "config_version: " n) }
  { print }
  /^totem[[:space:]]*\{/ { print "  interface {"; print "    linknumber: 1"; print "  }" }
' "$new" > "$new.tmp"
mv "$new.tmp" "$new"
cp "$conf" "$conf.bak"
cp "$new" "$conf.new"
mv "$conf.new" "$conf"
echo "corosync link 1 added"
