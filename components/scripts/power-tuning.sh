# Low-power settings for a Proxmox node, applied now and at every boot by a oneshot unit.
# Safe to re-run: the unit is rewritten only when its content changes.
if [ "$POWERTOP" = "yes" ] && ! command -v powertop >/dev/null 2>&1; then
  # A fresh node may have empty package lists; the enterprise repository answers 401 without a
  # subscription, which fails `update` but leaves the Debian lists usable.
  # Another apt run (cloud-init, unattended-upgrades, a Ceph install) may hold the dpkg lock:
  # wait for it, up to 10 minutes, rather than fail.
  apt-get -o DPkg::Lock::Timeout=600 update -qq || true
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends powertop
fi
# A CPU without frequency scaling (a nested lab node) has no governor to set; one that has it
# must offer the spec's governor (intel_pstate offers only powersave and performance).
if [ -r "$GOVERNORS_FILE" ] && ! grep -qw -- "$GOVERNOR" "$GOVERNORS_FILE"; then
  echo "error: power_tuning.governor $GOVERNOR is not offered by this node's CPU driver (it offers: $(cat "$GOVERNORS_FILE"))" >&2
  exit 1
fi
# Each step is best effort at boot ("-"): one tunable the firmware refuses must not skip the rest.
steps=("-/bin/sh -c 'for g in /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor; do [ -e \$\$g ] && echo $GOVERNOR > \$\$g; done; true'")
if [ -n "$ASPM" ]; then
  steps+=("-/bin/sh -c 'echo $ASPM > /sys/module/pcie_aspm/parameters/policy'")
fi
if [ "$POWERTOP" = "yes" ]; then
  steps+=("-/usr/sbin/powertop --auto-tune")
  # powertop also lets every PCI device sleep when idle, NICs and the USB4/Thunderbolt
  # controllers included: a NIC asleep after losing link may miss the cable coming back, and a
  # bond member or mesh link would stay down. Keep the network devices awake.
  steps+=("-/bin/sh -c 'for c in /sys/class/net/*/device/power/control /sys/bus/pci/drivers/thunderbolt/*/power/control; do [ -e \$\$c ] && echo on > \$\$c; done; true'")
fi
if [ "$USB_AUTOSUSPEND" = "no" ]; then
  # powertop also suspends USB devices, which drops some USB NICs and keyboards: undo that.
  steps+=("-/bin/sh -c 'for c in /sys/bus/usb/devices/*/power/control; do [ -e \$\$c ] && echo on > \$\$c; done; true'")
fi
wanted=$(
  printf '[Unit]\nDescription=homelab power tuning\nAfter=multi-user.target\n\n'
  printf '[Service]\nType=oneshot\nRemainAfterExit=yes\n'
  for step in "${steps[@]}"; do printf 'ExecStart=%s\n' "$step"; done
  printf '\n[Install]\nWantedBy=multi-user.target\n'
)
if [ ! -f "$UNIT" ] || [ "$(cat "$UNIT")" != "$wanted" ]; then
  printf '%s\n' "$wanted" >"$UNIT"
  systemctl daemon-reload
fi
systemctl enable homelab-power.service
systemctl restart homelab-power.service
echo "governor $(cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor 2>/dev/null || echo unknown)"
