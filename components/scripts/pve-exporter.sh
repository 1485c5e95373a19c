# prometheus-pve-exporter on this node (:9221), from PyPI at the pinned version in its own venv,
# reading the cluster's API through a read-only token of its own: the user METRICS_USER has
# PVEAuditor on /, and so has this node's token (privilege-separated). The token's secret is
# made here and never leaves the node (only its config file holds it, root:prometheus 0640).
# Safe to re-run: a config with a token that still exists is kept.
token=$(hostname)
installed() {
  [ -x "$VENV/bin/pve_exporter" ] && [ "$("$VENV/bin/pip" show prometheus-pve-exporter 2>/dev/null | awk '/^Version:/ {print $2}')" = "$VERSION" ]
}
if ! installed; then
  if ! python3 -c 'import ensurepip' 2>/dev/null; then
    apt-get -o DPkg::Lock::Timeout=600 update -qq || true
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends python3-venv
  fi
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "prometheus-pve-exporter==$VERSION"
fi
# The user is the cluster's (pmxcfs): another node may be adding it at the same moment.
if ! pveum user list --output-format json | grep -q "\"userid\":\"$METRICS_USER\""; then
  pveum user add "$METRICS_USER" --comment "homelab metrics, read-only" ||
    pveum user list --output-format json | grep -q "\"userid\":\"$METRICS_USER\""
fi
pveum acl modify / --roles PVEAuditor --users "$METRICS_USER"
if [ ! -s "$CONFIG" ] || ! pveum user token list "$METRICS_USER" --output-format json | grep -q "\"tokenid\":\"$token\""; then
  pveum user token remove "$METRICS_USER" "$token" 2>/dev/null || true
  value=$(pveum user token add "$METRICS_USER" "$token" --privsep 1 --comment "the pve exporter on $token" \
    --output-format json | python3 -c 'import json, sys; print(json.load(sys.stdin)["value"])')
  install -d -m 0755 "$(dirname "$CONFIG")"
  tmp=$(mktemp "$CONFIG.XXXXXX")
  # The API on this node's loopback: its certificate is the cluster's own CA's, not checked there.
  printf 'default:\n  user: %s\n  token_name: "%s"\n  token_value: "%s"\n  verify_ssl: false\n' \
    "$METRICS_USER" "$token" "$value" >"$tmp"
  chgrp prometheus "$tmp"
  chmod 0640 "$tmp"
  mv -f "$tmp" "$CONFIG"
  echo "new token $METRICS_USER!$token"
fi
pveum acl modify / --roles PVEAuditor --tokens "$METRICS_USER!$token"
if [ ! -f "$UNIT" ] || [ "$(cat "$UNIT")" != "$UNIT_TEXT" ]; then
  printf '%s\n' "$UNIT_TEXT" >"$UNIT"
  systemctl daemon-reload
fi
systemctl enable homelab-pve-exporter.service
systemctl restart homelab-pve-exporter.service
for ((try = 1; try <= 15; try++)); do
  if curl -fsS "http://127.0.0.1:$PORT/pve?target=localhost" | grep -q '^pve_up'; then
    echo "pve exporter on $token answers"
    exit 0
  fi
  sleep 2
done
echo "error: the pve exporter on $token does not answer on :$PORT (journalctl -u homelab-pve-exporter)" >&2
exit 1
