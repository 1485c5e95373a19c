# Pin the nodes' SSH host keys for this job: the Proxmox provider's own SSH (snippet uploads, disk
# imports) checks ~/.ssh/known_hosts and accepts an unknown host on first sight (bpg
# proxmox/ssh/client.go), so the keys the spec pins (nodes[].ssh_host_key) go there first.
set -euo pipefail
if [ -z "${STACK:-}" ]; then
  echo "error: STACK is not set: the job names the stack it works on" >&2
  exit 1
fi
known=${KNOWN_HOSTS:-$HOME/.ssh/known_hosts}  # overridable for tests
mkdir -p "$(dirname "$known")"
python3 - "Pulumi.$STACK.yaml" >>"$known" <<'PY'
import json
import sys
import yaml
config = (yaml.safe_load(open(sys.argv[1])) or {}).get("config") or {}
cluster = config.get("homelab:cluster") or {}
if isinstance(cluster, str):
    cluster = json.loads(cluster)
for node in cluster.get("nodes", []):
    print(f"{node['address']} {node['ssh_host_key']}")
PY
chmod 600 "$known"
echo "pinned the SSH host keys of Pulumi.$STACK.yaml's nodes"
