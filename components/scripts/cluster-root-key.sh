# This node's root SSH key, as `pvecm add --use_ssh` uses it (ssh-copy-id -i /root/.ssh/id_rsa,
# pve-cluster src/PVE/CLI/pvecm.pm): created when missing, its public half printed for the first
# node to authorize. Safe to re-run: an existing key is kept.
key=${ROOT_KEY:-/root/.ssh/id_rsa}  # overridable for tests
if [ ! -f "$key" ]; then
  mkdir -p "$(dirname "$key")"
  chmod 700 "$(dirname "$key")"
  ssh-keygen -q -t rsa -b 4096 -N '' -f "$key" -C "root@$(hostname)"
fi
cat "$key.pub"
