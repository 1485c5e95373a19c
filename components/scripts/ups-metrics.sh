# The UPS's state for the node exporter's textfile collector: written whole, then moved in, so
# a scrape never reads half a file.
status=$(upsc "$UPS" ups.status 2>/dev/null) || status=""
charge=$(upsc "$UPS" battery.charge 2>/dev/null) || charge=""
on_battery=0
case " $status " in *" OB "*) on_battery=1 ;; esac
tmp=$(mktemp "$TEXTFILE_DIR/.ups.prom.XXXXXX")
{
  echo "# HELP homelab_ups_up 1 when upsd answered for the UPS."
  echo "# TYPE homelab_ups_up gauge"
  echo "homelab_ups_up{ups=\"$UPS\"} $([ -n "$status" ] && echo 1 || echo 0)"
  echo "# HELP homelab_ups_on_battery 1 while the UPS runs on its battery."
  echo "# TYPE homelab_ups_on_battery gauge"
  echo "homelab_ups_on_battery{ups=\"$UPS\"} $on_battery"
  if [ -n "$charge" ]; then
    echo "# HELP homelab_ups_battery_charge_percent The battery's charge as the UPS reports it."
    echo "# TYPE homelab_ups_battery_charge_percent gauge"
    echo "homelab_ups_battery_charge_percent{ups=\"$UPS\"} $charge"
  fi
} >"$tmp"
chmod 0644 "$tmp"
mv -f "$tmp" "$TEXTFILE_DIR/ups.prom"
