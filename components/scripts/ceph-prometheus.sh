# Ceph's mgr prometheus module: the cluster's health, OSDs and pools as metrics on :9283 of the
# active mgr. Safe to re-run: enabling an enabled module changes nothing.
ceph mgr module enable prometheus
for ((try = 1; try <= 30; try++)); do
  if ceph mgr services --format json | grep -q '"prometheus"'; then
    echo "ceph mgr prometheus module serving: $(ceph mgr services --format json)"
    exit 0
  fi
  sleep 2
done
echo "error: ceph mgr prometheus module enabled but not serving (ceph mgr services)" >&2
exit 1
