# Cap every OSD's memory at the figure placement reserves per OSD (plan/placement.py), so
# guests placed by that plan never compete with Ceph for a node's memory.
# Safe to re-run: sets the value only when it differs.
current=$(ceph --connect-timeout 30 config get osd osd_memory_target)
if [ "$current" = "$OSD_MEMORY_TARGET" ]; then
  echo "osd_memory_target already $OSD_MEMORY_TARGET"
  exit 0
fi
ceph config set osd osd_memory_target "$OSD_MEMORY_TARGET"
echo "osd_memory_target set to $OSD_MEMORY_TARGET (was $current)"
