# Let the node exporter's group read the RAPL energy counters (run as root before it starts).
for counter in /sys/class/powercap/intel-rapl:*/energy_uj /sys/class/powercap/intel-rapl:*:*/energy_uj; do
  [ -e "$counter" ] || continue
  chgrp prometheus "$counter"
  chmod 0440 "$counter"
done
