# Put the node's management bridge vmbr0 on the LAN bond bond0, commit-confirm style: the new
# configuration goes in atomically, and unless lan-uplink-confirm.sh (a fresh SSH connection, so
# the node must still answer) confirms it within ROLLBACK_SECONDS, the node restores the previous
# one by itself. On a fresh PVE 9 this moves the installer's vmbr0 (one NIC as its port) onto
# the bond; later it applies a changed bond the same way. Safe to re-run: nothing is applied when
# the node already matches.
#
# Proxmox's own writer stages every change in /etc/network/interfaces.new (pve-manager
# PVE/API2/Network.pm, create_network/update_network), so what the provider later reads back is
# what it would have written. The bond cannot be made while its NIC is vmbr0's port, nor vmbr0
# pointed at a bond that does not exist, so the port is freed first, within the same staging.
# Proxmox has no rollback of its own (Network.pm: revert only drops the staged file).
iface=${INTERFACES:-/etc/network/interfaces}  # overridable for tests
state=${STATE_DIR:-/var/lib/homelab}
staged="$iface.new"
if [ -e "$staged" ]; then
  echo "error: $NODE has network changes pending in $staged (made in the GUI or by hand):" \
    "apply or revert them first (Network > Apply/Revert), then run again" >&2
  exit 1
fi
mkdir -p "$state"
rm -f "$state/lan-uplink.rolled-back"
bond=(--slaves "$SLAVES" --bond_mode "$BOND_MODE" --autostart 1 --comments "$BOND_COMMENT")
[ -z "$BOND_PRIMARY" ] || bond+=(--bond-primary "$BOND_PRIMARY")
[ -z "$HASH_POLICY" ] || bond+=(--bond_xmit_hash_policy "$HASH_POLICY")
address=(--cidr "$CIDR" --gateway "$GATEWAY" --autostart 1)
if pvesh get "/nodes/$NODE/network/bond0" --output-format json >/dev/null 2>&1; then
  pvesh set "/nodes/$NODE/network/bond0" --type bond "${bond[@]}"
else
  pvesh set "/nodes/$NODE/network/vmbr0" --type bridge --delete bridge_ports "${address[@]}"
  pvesh create "/nodes/$NODE/network" --iface bond0 --type bond "${bond[@]}"
fi
pvesh set "/nodes/$NODE/network/vmbr0" --type bridge --bridge_ports bond0 --bridge_vlan_aware 1 \
  --bridge_vids "$VIDS" "${address[@]}" --comments "$BRIDGE_COMMENT"
if [ ! -e "$staged" ] || cmp -s "$iface" "$staged"; then
  rm -f "$staged"
  echo "$NODE: vmbr0 is already on bond0 as specified"
  exit 0
fi
if ! check=$(ifup -a -s -i "$staged" 2>&1); then
  rm -f "$staged"
  echo "error: ifupdown2 refuses the new network configuration of $NODE, nothing applied:" >&2
  echo "$check" >&2
  exit 1
fi
cp -a "$iface" "$state/interfaces.before-lan-uplink"
# A reboot before the confirmation (a power cut, HA fencing the node) must not boot into an
# unconfirmed configuration either: this unit restores the previous one early at boot while the
# change is still unconfirmed.
units=${SYSTEMD_UNITS:-/etc/systemd/system}
cat >"$units/homelab-lan-rollback-at-boot.service" <<UNIT
# Written by homelab (lan-uplink.sh): restore the LAN configuration if a change was never confirmed.
[Unit]
Description=Restore the LAN configuration homelab applied but never confirmed
DefaultDependencies=no
After=local-fs.target
Before=networking.service network-pre.target
Wants=network-pre.target
ConditionPathExists=$state/lan-uplink.unconfirmed

[Service]
Type=oneshot
ExecStart=/bin/cp -a $state/interfaces.before-lan-uplink $iface
ExecStart=/bin/touch $state/lan-uplink.rolled-back

[Install]
WantedBy=network-pre.target
UNIT
systemctl daemon-reload
systemctl enable homelab-lan-rollback-at-boot.service >/dev/null 2>&1
systemctl reset-failed homelab-lan-rollback.timer homelab-lan-rollback.service homelab-lan-apply.service \
  >/dev/null 2>&1 || true
# The rollback is armed before anything changes, and both run detached: a dropped SSH session
# cannot stop them halfway.
systemd-run --unit=homelab-lan-rollback --on-active="$ROLLBACK_SECONDS" --timer-property=AccuracySec=1s \
  /bin/sh -c "cp -a '$state/interfaces.before-lan-uplink' '$iface' && rm -f '$staged' && ifreload -a \
    && touch '$state/lan-uplink.rolled-back'"
touch "$state/lan-uplink.unconfirmed"
# Proxmox's own apply: the staged file goes in place, then one `ifreload -a` (Network.pm,
# reload_network_config), which moves the NIC from vmbr0 into bond0 in one pass.
systemd-run --unit=homelab-lan-apply --collect pvesh set "/nodes/$NODE/network"
echo "$NODE: vmbr0 moves onto bond0; back to the previous configuration in ${ROLLBACK_SECONDS}s unless confirmed"
