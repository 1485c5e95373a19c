# Prometheus' node exporter on this Proxmox node (Debian's package, on :9100), with the CPU
# package's energy counter (RAPL) readable by it; through its textfile collector, the age of
# each guest's newest backup, and on the UPS node the UPS's state. Safe to re-run: files change
# only when their content does, and the exporter restarts only then.
changed=no
if ! dpkg-query -W -f='${Status}' prometheus-node-exporter 2>/dev/null | grep -q 'install ok installed'; then
  # The enterprise repository answers 401 without a subscription: the Debian lists still work.
  apt-get -o DPkg::Lock::Timeout=600 update -qq || true
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends \
    prometheus-node-exporter
fi
# One file a line: its path, mode and content in base64 (a script's `$` passes untouched). The
# RAPL counters' helper runs as root before the exporter starts ("+"): energy_uj is root's
# alone since the Platypus side channel (CVE-2020-8694), and comes back so when intel_rapl
# loads again; the exporter's group may read it, nobody else.
while read -r path mode data; do
  [ -n "$path" ] || continue
  if [ -f "$path" ] && printf '%s' "$data" | base64 -d | cmp -s - "$path"; then
    continue
  fi
  mkdir -p "$(dirname "$path")"
  tmp=$(mktemp "$path.XXXXXX")
  printf '%s' "$data" | base64 -d >"$tmp"
  chmod "$mode" "$tmp"
  mv -f "$tmp" "$path"
  echo "wrote $path"
  changed=yes
done <<<"$FILES"
if [ "$changed" = yes ]; then
  systemctl daemon-reload
  systemctl restart prometheus-node-exporter.service
fi
systemctl enable --now prometheus-node-exporter.service
for timer in $TIMERS; do
  systemctl enable --now "$timer"
done
# The exporter answers, with the collectors the rules read.
for ((try = 1; try <= 10; try++)); do
  if metrics=$(curl -fsS "http://127.0.0.1:$PORT/metrics"); then
    if grep -q '^node_rapl_package_joules_total' <<<"$metrics"; then
      echo "node exporter on $(hostname): RAPL package energy exported"
    else
      echo "node exporter on $(hostname): no RAPL package counter (this CPU has none): measured watts are the baseline only" >&2
    fi
    exit 0
  fi
  sleep 2
done
echo "error: the node exporter on $(hostname) does not answer on :$PORT (journalctl -u prometheus-node-exporter)" >&2
exit 1
