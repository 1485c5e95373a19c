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
# A staged file left behind half-built (a failed call below) must never be applied by someone
# clicking Apply in the GUI: it goes, unless this run hands it to the apply.
applying=false
trap '[ "$applying" = true ] || rm -f "$staged"' EXIT
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
# Compared stanza by stanza: Proxmox's writer also lists every NIC present, so a USB4 port that
# came up since the last run changes the file without changing the uplink.
stanzas() { # the auto and iface lines of bond0 and vmbr0, and what belongs to them, in FILE
  awk '$1 == "auto" && ($2 == "bond0" || $2 == "vmbr0") { print; next }
       $1 == "iface" { keep = ($2 == "bond0" || $2 == "vmbr0") }
       /^[^[:space:]#]/ && $1 != "iface" { keep = 0 }
       keep' "$1"
}
if [ ! -e "$staged" ] || [ "$(stanzas "$iface")" = "$(stanzas "$staged")" ]; then
  echo "$NODE: vmbr0 is already on bond0 as specified"
  exit 0
fi
# ifupdown2 runs one command at a time and says so when another holds its lock (an SDN apply):
# asked again a few times before its verdict counts.
valid=false
for _ in $(seq 1 10); do
  if check=$(ifup -a -s -i "$staged" 2>&1); then
    valid=true
    break
  fi
  grep -q "already running" <<<"$check" || break
  sleep 3
done
if [ "$valid" != true ]; then
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
Before=networking.service
ConditionPathExists=$state/lan-uplink.unconfirmed

[Service]
Type=oneshot
ExecStart=/bin/cp -a $state/interfaces.before-lan-uplink $iface
ExecStart=/bin/touch $state/lan-uplink.rolled-back

[Install]
# networking.service (ifupdown2) pulls it in; network-pre.target would not, as nothing on Proxmox
# wants that target.
WantedBy=networking.service
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
# vmbr0 may take another MAC address (the bond's, from its first member): the kernel then
# announces it with a gratuitous ARP, so the gateway and the SSH client that confirms do not keep
# sending to the old one (ip-sysctl: arp_notify, on a hardware address change).
sysctl -qw net.ipv4.conf.vmbr0.arp_notify=1 || true
applying=true
# Proxmox's own apply: the staged file goes in place, then one `ifreload -a` (Network.pm,
# reload_network_config), which moves the NIC from vmbr0 into bond0 in one pass.
systemd-run --unit=homelab-lan-apply --collect pvesh set "/nodes/$NODE/network"
echo "$NODE: vmbr0 moves onto bond0; back to the previous configuration in ${ROLLBACK_SECONDS}s unless confirmed"
