# Each Proxmox API token's expiry, for the node exporter's textfile collector, from the cluster's
# user config in pmxcfs (pve-access-control: `token:<user>!<name>:<expire>:<privsep>:<comment>:`).
# A token that never expires (0) is left out. Written whole, then moved in.
tmp=$(mktemp "$TEXTFILE_DIR/.tokens.prom.XXXXXX")
{
  echo "# HELP homelab_api_token_expiry_seconds When a Proxmox API token expires (Unix time)."
  echo "# TYPE homelab_api_token_expiry_seconds gauge"
  awk -F: '$1 == "token" && $3 ~ /^[0-9]+$/ && $3 > 0 {
    printf "homelab_api_token_expiry_seconds{tokenid=\"%s\"} %s\n", $2, $3
  }' "$USER_CFG"
} >"$tmp"
chmod 0644 "$tmp"
mv -f "$tmp" "$TEXTFILE_DIR/tokens.prom"
