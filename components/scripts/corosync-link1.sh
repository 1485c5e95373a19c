# Corosync link 1 on the storage network, so the cluster keeps quorum when either network dies.
# Follows the Proxmox procedure: edit a copy, bump config_version, move it in place (pmxcfs then
# reloads corosync on every node; pve-cluster src/PVE/Corosync.pm, atomic_write_conf).
# Per node and safe to re-run: each node in RING1 gets exactly its ring1_addr, a node that joined
# later or whose storage address changed is brought in line, and nothing is written when every
# node is already right. corosync's own parser checks the new file before it goes in place.
# RING1 is "node=address node=address ...".
conf=${COROSYNC_CONF:-/etc/pve/corosync.conf}  # overridable for tests
new=$(mktemp)
trap 'rm -f "$new" "$new.tmp"' EXIT

# Every cluster member must be in the spec and every spec node a member: corosync refuses a
# nodelist where only some nodes have link 1.
members=$(awk '/^[[:space:]]*name:/ { print $2 }' "$conf" | sort)
wanted=$(for pair in $RING1; do echo "${pair%%=*}"; done | sort)
extra=$(comm -23 <(echo "$members") <(echo "$wanted"))
absent=$(comm -13 <(echo "$members") <(echo "$wanted"))
if [ -n "$extra" ]; then
  echo "error: node(s) $(echo "$extra" | xargs) are in the cluster but not in the spec:" \
    "add them to the spec or remove them (pvecm delnode)" >&2
  exit 1
fi
if [ -n "$absent" ]; then
  echo "error: node(s) $(echo "$absent" | xargs) are in the spec but not cluster members yet" >&2
  exit 1
fi

cp "$conf" "$new"
for pair in $RING1; do
  node=${pair%%=*}
  addr=${pair#*=}
  # In the node block named NODE, drop any ring1_addr and put the wanted one right after
  # ring0_addr, where Proxmox writes it (keys sorted; `name` comes first).
  awk -v node="$node" -v addr="$addr" '
    /^[[:space:]]*name:/ { current = $2 }
    /^[[:space:]]*\}/ { current = "" }
    current == node && /^[[:space:]]*ring1_addr:/ { next }
    { print }
    current == node && /^[[:space:]]*ring0_addr:/ { sub(/ring0_addr:.*/, "ring1_addr: " addr); print }
  ' "$new" >"$new.tmp"
  mv "$new.tmp" "$new"
done
# The totem section lists each link once.
if ! awk '/^totem[[:space:]]*\{/ { t = 1 } t && /linknumber:[[:space:]]*1$/ { found = 1 } END { exit !found }' "$new"; then
  awk '{ print } /^totem[[:space:]]*\{/ { print "  interface {"; print "    linknumber: 1"; print "  }" }' \
    "$new" >"$new.tmp"
  mv "$new.tmp" "$new"
fi
if cmp -s "$conf" "$new"; then
  echo "corosync link 1 already configured on every node"
  exit 0
fi
awk '
  /^totem[[:space:]]*\{/ { in_totem = 1 }
  in_totem && /config_version:/ { n = $2 + 1; sub(/config_version:.*/, "config_version: " n) }
  { print }
' "$new" >"$new.tmp"
mv "$new.tmp" "$new"
# Refuse to install what corosync itself cannot load (it parses and validates, then exits).
if ! check=$(corosync -t -c "$new" 2>&1); then
  echo "error: corosync refuses the edited configuration, left unchanged:" >&2
  echo "$check" >&2
  exit 1
fi
cp "$conf" "$conf.bak"
cp "$new" "$conf.new"
mv "$conf.new" "$conf"
echo "corosync link 1 set: $RING1"
