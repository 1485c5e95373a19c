# Confirm the configuration lan-uplink.sh applied, over a new SSH connection: that this command
# runs at all shows the node answers on its management address. Once bond0 carries vmbr0 and the
# gateway answers, the rollback is called off; otherwise it goes ahead and this fails.
state=${STATE_DIR:-/var/lib/homelab}
net=${SYSFS_NET:-/sys/class/net}  # overridable for tests
# What to do after a rollback: the change is applied again only when its command runs again.
again="fix the cause (cables, the switch's LAG or port settings), then run \`pulumi up --replace\`"
again+=" with the URN of $(hostname)-lan-uplink (\`pulumi stack --show-urns\`)"
rolled_back() {
  rm -f "$state/lan-uplink.unconfirmed"
  echo "error: $(hostname) went back to its previous LAN configuration before this confirmation" \
    "reached it. Then $again" >&2
  exit 1
}
[ ! -e "$state/lan-uplink.rolled-back" ] || rolled_back
if [ ! -e "$state/lan-uplink.unconfirmed" ]; then
  echo "$(hostname): no LAN change waiting for confirmation"
  exit 0
fi
# The apply runs detached; wait (bounded) until it is done.
for _ in $(seq 1 "$TRIES"); do
  systemctl is-active --quiet homelab-lan-apply.service || break
  sleep 1
done
problems=()
[ -n "$(cat "$net/bond0/bonding/slaves" 2>/dev/null)" ] || problems+=("bond0 has no member")
[ "$(cat "$net/bond0/operstate" 2>/dev/null)" = up ] || problems+=("bond0 is not up")
[ -e "$net/vmbr0/brif/bond0" ] || problems+=("bond0 is not a port of vmbr0")
reached=""
for _ in $(seq 1 "$TRIES"); do
  if ping -c 1 -W 1 "$GATEWAY" >/dev/null 2>&1; then
    reached=yes
    break
  fi
  sleep 1
done
[ -n "$reached" ] || problems+=("the gateway $GATEWAY does not answer")
if [ "${#problems[@]}" -gt 0 ]; then
  echo "error: $(hostname)'s new LAN configuration does not hold: ${problems[*]}; the previous" \
    "one comes back by itself (homelab-lan-rollback.timer). Then $again" >&2
  exit 1
fi
systemctl stop homelab-lan-rollback.timer >/dev/null 2>&1 || true
[ ! -e "$state/lan-uplink.rolled-back" ] || rolled_back
rm -f "$state/lan-uplink.unconfirmed"
echo "$(hostname): vmbr0 on bond0 confirmed, rollback called off"
