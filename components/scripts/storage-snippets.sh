# Allow snippets (cloud-init user-data) on a directory storage. storage.cfg is cluster-wide, so
# this runs once. Safe to re-run: nothing changes once snippets are allowed.
content=$(awk -v s="$STORAGE" '$1 ~ /^[a-z]+:$/ { in_s = ($2 == s) } in_s && $1 == "content" { print $2 }' /etc/pve/storage.cfg)
if [ -z "$content" ]; then
  echo "storage $STORAGE is not in /etc/pve/storage.cfg, or has no content line" >&2
  exit 1
fi
case ",$content," in
  *,snippets,*) echo "snippets already allowed on $STORAGE"; exit 0 ;;
esac
pvesm set "$STORAGE" --content "$content,snippets"
