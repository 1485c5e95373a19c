# Trust the Proxmox cluster's own CA for this job's TLS, when the stack names one: the system's
# CA bundle plus homelab:proxmoxCaCertificate from Pulumi.$STACK.yaml and the home's own CA
# (the spec's gateway.private_ca.certificate, which signs the nodes' certificates once the
# program has installed them: components/node_certificates.py), exported as SSL_CERT_FILE,
# which Go's TLS (the Pulumi CLI and its provider plugins) reads on Linux. Both are in the
# bundle from the first run, so the API stays verified across the run that swaps the nodes'
# certificates. The system CAs stay in the bundle, so the Pulumi backend and registries are
# still trusted.
set -euo pipefail
system=${SYSTEM_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}  # overridable for tests
if [ -z "${STACK:-}" ]; then
  echo "error: STACK is not set: the job names the stack it works on" >&2
  exit 1
fi
stack_file="Pulumi.$STACK.yaml"
ca=$(python3 - "$stack_file" <<'PY'
import sys
import yaml
config = (yaml.safe_load(open(sys.argv[1])) or {}).get("config") or {}
cluster = config.get("homelab:cluster") or {}
home_ca = ((cluster.get("gateway") or {}).get("private_ca") or {}).get("certificate") or ""
found = [c.strip() for c in (config.get("homelab:proxmoxCaCertificate") or "", home_ca) if c.strip()]
print("\n".join(found), end="")
PY
)
if [ -z "$ca" ]; then
  echo "$stack_file names no Proxmox CA: the nodes' certificate must be one the system trusts (ACME)"
  exit 0
fi
bundle="${RUNNER_TEMP:-/tmp}/homelab-ca-bundle.pem"
{ cat "$system"; printf '%s\n' "$ca"; } >"$bundle"
echo "SSL_CERT_FILE=$bundle" >>"$GITHUB_ENV"
echo "trusting the Proxmox CA of $stack_file for this job"
