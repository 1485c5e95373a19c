# Low-power settings for a Proxmox node, applied now and at every boot by a oneshot unit.
# Safe to re-run: the unit is rewritten only when its content changes.
unit=/etc/systemd/system/homelab-power.service
if [ "$POWERTOP" = "yes" ] && ! command -v powertop >/dev/null 2>&1; then
  # A fresh node may have empty package lists; the enterprise repository answers 401 without a
  # subscription, which fails `update` but leaves the Debian lists usable.
  apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends powertop
fi
steps=("/bin/sh -c 'for g in /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor; do echo $GOVERNOR > \$\$g; done'")
if [ -n "$ASPM" ]; then
  steps+=("/bin/sh -c 'echo $ASPM > /sys/module/pcie_aspm/parameters/policy || true'")
fi
if [ "$POWERTOP" = "yes" ]; then
  steps+=("/usr/sbin/powertop --auto-tune")
fi
if [ "$USB_AUTOSUSPEND" = "no" ]; then
  # powertop also suspends USB devices, which drops some USB NICs and keyboards: undo that.
  steps+=("/bin/sh -c 'for c in /sys/bus/usb/devices/*/power/control; do echo on > \$\$c; done'")
fi
wanted=$(
  printf '[Unit]\nDescription=homelab power tuning\nAfter=multi-user.target\n\n'
  printf '[Service]\nType=oneshot\nRemainAfterExit=yes\n'
  for step in "${steps[@]}"; do printf 'ExecStart=%s\n' "$step"; done
  printf '\n[Install]\nWantedBy=multi-user.target\n'
)
if [ ! -f "$unit" ] || [ "$(cat "$unit")" != "$wanted" ]; then
  printf '%s\n' "$wanted" > "$unit"
  systemctl daemon-reload
fi
systemctl enable homelab-power.service
systemctl restart homelab-power.service
echo "governor $(cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor 2>/dev/null || echo unknown)"
