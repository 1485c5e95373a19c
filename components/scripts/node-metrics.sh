# Prometheus' node exporter on this Proxmox node (Debian's package, on :9100), with the CPU
# package's energy counter (RAPL) readable by it; through its textfile collector, the age of
# each guest's newest backup, and on the UPS node the UPS's state. Safe to re-run: files change only when their
# content does, and the exporter restarts only then.
changed=no
put() { # PATH MODE CONTENT
  if [ -f "$1" ] && [ "$(cat "$1")" = "$3" ]; then return 0; fi
  mkdir -p "$(dirname "$1")"
  printf '%s\n' "$3" >"$1"
  chmod "$2" "$1"
  changed=yes
}
if ! dpkg-query -W -f='${Status}' prometheus-node-exporter 2>/dev/null | grep -q 'install ok installed'; then
  # The enterprise repository answers 401 without a subscription: the Debian lists still work.
  apt-get -o DPkg::Lock::Timeout=600 update -qq || true
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends \
    prometheus-node-exporter
fi
# energy_uj is root's alone since the Platypus side channel (CVE-2020-8694): the exporter's
# group may read it, nobody else. Done at each start of the exporter, as root ("+"), because
# the files come back root-only when the intel_rapl module loads again.
put /usr/local/lib/homelab/rapl-readable 0755 "$RAPL_READABLE"
put /etc/systemd/system/prometheus-node-exporter.service.d/homelab-rapl.conf 0644 \
  "$(printf '[Service]\nExecStartPre=+/usr/local/lib/homelab/rapl-readable')"
if [ -n "$UPS" ]; then
  put /usr/local/lib/homelab/ups-metrics 0755 "$UPS_METRICS"
  put /etc/systemd/system/homelab-ups-metrics.service 0644 "$UPS_METRICS_SERVICE"
  put /etc/systemd/system/homelab-ups-metrics.timer 0644 "$UPS_METRICS_TIMER"
fi
if [ -n "$BACKUP_METRICS" ]; then
  put /usr/local/lib/homelab/backup-metrics 0755 "$BACKUP_METRICS"
  put /etc/systemd/system/homelab-backup-metrics.service 0644 "$BACKUP_METRICS_SERVICE"
  put /etc/systemd/system/homelab-backup-metrics.timer 0644 "$BACKUP_METRICS_TIMER"
fi
if [ "$changed" = yes ]; then
  systemctl daemon-reload
  systemctl restart prometheus-node-exporter.service
fi
systemctl enable --now prometheus-node-exporter.service
if [ -n "$UPS" ]; then
  systemctl enable --now homelab-ups-metrics.timer
fi
if [ -n "$BACKUP_METRICS" ]; then
  systemctl enable --now homelab-backup-metrics.timer
fi
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
