# The newest copy of each guest on the PBS storage, for the node exporter's textfile collector:
# a backup that failed, or a job that did not run, shows as a copy growing old. Read through
# the cluster's API on this node (every node sees the same storage), written whole, moved in.
content=$(pvesh get "/nodes/$(hostname)/storage/$STORAGE/content" --content backup --output-format json 2>/dev/null) || content=""
tmp=$(mktemp "$TEXTFILE_DIR/.backups.prom.XXXXXX")
{
  echo "# HELP homelab_backup_storage_up 1 when the backup storage answered."
  echo "# TYPE homelab_backup_storage_up gauge"
  echo "homelab_backup_storage_up{storage=\"$STORAGE\"} $([ -n "$content" ] && echo 1 || echo 0)"
  echo "# HELP homelab_guest_backup_newest_seconds When the newest copy of the guest was made (Unix time)."
  echo "# TYPE homelab_guest_backup_newest_seconds gauge"
  if [ -n "$content" ]; then
    # ceph brings python3 to every node; the API's JSON is read with it.
    printf '%s' "$content" | python3 -c '
import json, sys
newest = {}
for item in json.load(sys.stdin):
    if item.get("vmid") is not None and item.get("ctime"):
        vmid = str(item["vmid"])
        newest[vmid] = max(newest.get(vmid, 0), int(item["ctime"]))
for vmid, ctime in sorted(newest.items()):
    print(f"homelab_guest_backup_newest_seconds{{vmid=\"{vmid}\"}} {ctime}")
'
  fi
} >"$tmp"
chmod 0644 "$tmp"
mv -f "$tmp" "$TEXTFILE_DIR/backups.prom"
