# NUT and the power-cut files on this node (components/nut.py renders them). Safe to re-run: a
# file is rewritten only when its content changes, and NUT restarts only then. Checked before
# anything changes: HA can be disarmed for the whole cluster (pve-ha-manager 5.1.3, PVE 9.1).
if [ "$NEEDS_DISARM" = yes ]; then
  have=$(dpkg-query -W -f='${Version}' pve-ha-manager 2>/dev/null || echo none)
  if [ "$have" = none ] || ! dpkg --compare-versions "$have" ge "$HA_MANAGER_MIN"; then
    echo "error: $(hostname) has pve-ha-manager $have; the power-cut shutdown disarms HA (ha-manager crm-command disarm-ha), which needs $HA_MANAGER_MIN or later: apt full-upgrade the node" >&2
    exit 1
  fi
fi
missing=()
for pkg in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  # The enterprise repository answers 401 without a subscription: `update` fails, the Debian
  # lists stay usable. Another apt run may hold the lock: wait for it.
  apt-get -o DPkg::Lock::Timeout=600 update -qq || true
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}"
fi
if [ "$ROLE" = primary ] && [ ! -x "/lib/nut/$DRIVER" ]; then
  echo "error: NUT has no driver $DRIVER (ups.driver): see /lib/nut/ and NUT's hardware list" >&2
  exit 1
fi
changed=no
# One file a line: its path, mode, group, and its content in base64 (so a `$` in a script or a
# password's characters pass through the shell untouched).
while read -r path mode group data; do
  [ -n "$path" ] || continue
  if [ -f "$path" ] && printf '%s' "$data" | base64 -d | cmp -s - "$path"; then
    continue
  fi
  mkdir -p "$(dirname "$path")"
  tmp=$(mktemp "$path.XXXXXX")
  printf '%s' "$data" | base64 -d >"$tmp"
  chmod "$mode" "$tmp"
  chgrp "$group" "$tmp"
  mv -f "$tmp" "$path"
  echo "wrote $path"
  changed=yes
done <<<"$FILES"
if [ "$changed" = yes ]; then
  systemctl daemon-reload
fi
systemctl enable homelab-power-return.service
if [ "$ROLE" = primary ]; then
  systemd-tmpfiles --create /etc/tmpfiles.d/homelab-power.conf
  systemctl enable nut-server.service nut-monitor.service homelab-power-cut.path
  if [ "$changed" = yes ]; then
    # The enumerator makes one nut-driver@<ups> unit per ups.conf section.
    systemctl restart nut-driver-enumerator.service
    systemctl restart nut-driver.target nut-server.service nut-monitor.service
  fi
  systemctl start homelab-power-cut.path
else
  systemctl enable nut-monitor.service
  if [ "$changed" = yes ]; then
    systemctl restart nut-monitor.service
  fi
fi
# The UPS answers through upsd, from here: the driver sees the UPS (primary), or this node
# reaches the UPS node's upsd through the firewall (secondary).
for ((try = 1; try <= 10; try++)); do
  if status=$(upsc "$UPSD" ups.status 2>/dev/null); then
    echo "$UPSD: $status"
    exit 0
  fi
  sleep 3
done
if [ "$ROLE" = primary ]; then
  echo "error: no answer from $UPSD: is the UPS's data cable in $(hostname), and are ups.driver and ups.port right? (journalctl -u 'nut-driver@*')" >&2
else
  echo "error: no answer from $UPSD: upsd on the UPS node is not reachable from $(hostname) on port 3493" >&2
fi
exit 1
