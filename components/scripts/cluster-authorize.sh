# Let a joining node's root log in here by key: `pvecm add --use_ssh` runs ssh-copy-id and then
# ssh with BatchMode, which fail without it ("unable to copy ssh ID", pve-cluster
# src/PVE/CLI/pvecm.pm). The key arrives on stdin. On a cluster node authorized_keys is the
# cluster-wide /etc/pve/priv/authorized_keys. Safe to re-run: a key already there is not added.
key=$(head -n 1)
case "$key" in
  ssh-rsa\ *|ssh-ed25519\ *|ecdsa-sha2-*) ;;
  *) echo "error: no public key on stdin from $NODE" >&2; exit 1 ;;
esac
keys=${AUTHORIZED_KEYS:-/root/.ssh/authorized_keys}  # overridable for tests
if grep -qxF -- "$key" "$keys" 2>/dev/null; then
  echo "root key of $NODE already authorized"
  exit 0
fi
printf '%s\n' "$key" >>"$keys"
echo "root key of $NODE authorized"
