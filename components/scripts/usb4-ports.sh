# Name this node's USB4/Thunderbolt mesh ports and keep them up. A thunderbolt-net interface
# exists only while its peer is plugged in and running, under a kernel name that follows the
# order the ports came up; so each port is named by its PCI path (a systemd .link file, which
# also sets its MTU), the drivers load at boot, and whenever a port comes back (its peer
# rebooted) a unit brings it up again, so the fabric routes over it again. Safe to re-run.
# PORTS: "name=pci-path ..."; ETC is overridable for tests.
etc=${ETC:-/etc}
mkdir -p "$etc/modules-load.d" "$etc/systemd/network" "$etc/systemd/system" "$etc/udev/rules.d" \
  "$etc/network/ifupdown2/policy.d"
printf '%s\n' thunderbolt thunderbolt-net >"$etc/modules-load.d/homelab-usb4.conf"
rules="$etc/udev/rules.d/90-homelab-usb4.rules"
: >"$rules.new"
names=()
for port in $PORTS; do
  name=${port%%=*}
  path=${port#*=}
  names+=("$name")
  cat >"$etc/systemd/network/00-homelab-$name.link" <<LINK
# Written by homelab: USB4 mesh port $name.
[Match]
Path=$path
Driver=thunderbolt-net

[Link]
MACAddressPolicy=none
Name=$name
MTUBytes=$MTU
LINK
  # udev runs no long jobs itself: it asks systemd for the unit that brings the port up.
  printf 'ACTION=="add|move", SUBSYSTEM=="net", KERNEL=="%s", TAG+="systemd", ENV{SYSTEMD_WANTS}+="homelab-usb4-up@%s.service"\n' \
    "$name" "$name" >>"$rules.new"
done
mv "$rules.new" "$rules"
# ifupdown2 sets an interface without an `mtu` line back to 1500 at every ifup and ifreload
# (ifupdown2 addons/address.py, _process_mtu_config_mtu_none), and Proxmox's fabric writes the
# ports without one; its policy defaults (iface_defaults) give them the MTU instead.
mtus=$(for name in "${names[@]}"; do printf '"%s": {"mtu": "%s"}\n' "$name" "$MTU"; done | paste -sd, -)
printf '{"address": {"iface_defaults": {%s}}}\n' "$mtus" >"$etc/network/ifupdown2/policy.d/homelab-usb4.json"
cat >"$etc/systemd/system/homelab-usb4-up@.service" <<'UNIT'
# Written by homelab: bring a USB4 mesh port up again when it comes back.
[Unit]
Description=Bring USB4 mesh port %i up
BindsTo=sys-subsystem-net-devices-%i.device
After=sys-subsystem-net-devices-%i.device networking.service

[Service]
Type=oneshot
ExecStart=/usr/sbin/ifup %i
# ifupdown2 runs one command at a time and fails at once while another holds its lock (an
# ifreload of an SDN apply): try again rather than leave the port down.
Restart=on-failure
RestartSec=5
UNIT
[ -z "${ETC:-}" ] || exit 0  # tests stop at the files
systemctl daemon-reload
udevadm control --reload
modprobe -a thunderbolt thunderbolt-net
# Only the USB4 ports are replayed, not every NIC, bond and bridge of the node.
for dev in /sys/class/net/*; do
  if [ "$(basename "$(readlink -f "$dev/device/driver" 2>/dev/null)")" = thunderbolt-net ]; then
    udevadm trigger --action=add "$dev"
  fi
done
udevadm settle --timeout=30 || true
missing=()
for name in "${names[@]}"; do
  [ -e "/sys/class/net/$name" ] || missing+=("$name")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "error: $(hostname) has no interface ${missing[*]}: is the cable in and the peer up? The" \
    "pci_path must be the port's ID_PATH (udevadm info /sys/class/net/thunderbolt0 | grep ID_PATH=)." \
    "A port already up under another name is renamed at the next boot." >&2
  exit 1
fi
echo "$(hostname): USB4 ports ${names[*]} named and kept up"
