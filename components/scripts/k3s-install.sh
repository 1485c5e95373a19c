# Install k3s at the pinned VERSION on this guest. ROLE: `server-init` (the first server, which
# starts the embedded etcd cluster), `server-join` (another server, joining through the API VIP)
# or `agent`. Joining nodes read the join token on stdin, so it is neither on a command line
# nor in this script's text.
# Safe to re-run: files are rewritten only when they differ, and the installer runs only when the
# pinned version is not the one installed and active; an upgrade is a new VERSION in the spec.

# The login user is not root: every change to the system goes through sudo (-n: fail at once
# instead of waiting for a password prompt nobody answers).
put() { # put PATH MODE: write stdin to PATH (root-owned, made private first) when it differs
  local path=$1 mode=$2 content
  content=$(cat)
  if ! printf '%s\n' "$content" | sudo -n cmp -s - "$path"; then
    sudo -n install -d -m 0755 "${path%/*}"
    printf '%s\n' "$content" | sudo -n sh -c 'umask 077 && cat >"$1"' put "$path"
    echo "wrote $path"
  fi
  sudo -n chmod "$mode" "$path"
}

case "$ROLE" in
  server-init | server-join) service=k3s ;;
  agent) service=k3s-agent ;;
  *)
    echo "error: ROLE must be server-init, server-join or agent, not '$ROLE'" >&2
    exit 1
    ;;
esac

if [ "$ROLE" != server-init ]; then
  token=$(cat)
  if [ -z "$token" ]; then
    echo "error: no join token on stdin" >&2
    exit 1
  fi
  printf '%s' "$token" | put "$TOKEN_FILE" 0600
fi

# cloud-init may still be installing packages (holding the apt lock) or creating users. Its own
# exit status reports its own problems, which are not this script's to fail on.
if command -v cloud-init >/dev/null 2>&1; then
  sudo -n cloud-init status --wait >/dev/null || true
fi

# ceph-csi maps RBD images with the kernel's rbd module, on every node a pod with a volume may use.
printf 'rbd\n' | put /etc/modules-load.d/rbd.conf 0644
sudo -n modprobe rbd

if [ "$service" = k3s ]; then
  # k3s applies every manifest in this folder: kube-vip, which holds the API VIP.
  printf '%s\n' "$KUBE_VIP_MANIFEST" | put "$MANIFESTS/kube-vip.yaml" 0600
fi

installed=$(k3s --version 2>/dev/null | awk 'NR == 1 {print $3}' || true)
if [ "$installed" = "$VERSION" ] && systemctl is-active --quiet "$service"; then
  echo "k3s $VERSION already installed and $service active"
  exit 0
fi

args=(--node-name "$NODE_NAME" --node-ip "$NODE_IP" --node-label "$NODE_LABEL")
if [ "$ROLE" != server-init ]; then
  # Joins go through the VIP: a fixed registration address that does not die with one server.
  for attempt in $(seq 1 60); do
    if curl -ksf --max-time 5 "https://$API_VIP:6443/cacerts" >/dev/null; then
      break
    fi
    if [ "$attempt" -eq 60 ]; then
      echo "error: the API VIP $API_VIP does not answer on 6443 after 5 minutes; is kube-vip running?" >&2
      exit 1
    fi
    sleep 5
  done
  args+=(--server "https://$API_VIP:6443" --token-file "$TOKEN_FILE")
fi
if [ "$service" = k3s ]; then
  # servicelb and traefik: kube-vip announces LoadBalancer addresses, and traefik's own
  # LoadBalancer Service would take an address from the pool a workload may have asked for.
  # local-storage: volumes come from Ceph, so a pod is never tied to one VM's disk.
  args+=(
    --tls-san "$API_VIP"
    --disable servicelb --disable traefik --disable local-storage
    --etcd-snapshot-schedule-cron "$SNAPSHOT_CRON" --etcd-snapshot-retention "$SNAPSHOT_RETENTION"
  )
  if [ "$ROLE" = server-init ]; then
    args=(server --cluster-init "${args[@]}")
  else
    args=(server "${args[@]}")
  fi
else
  args=(agent "${args[@]}")
fi

echo "installing k3s $VERSION as $ROLE (was: ${installed:-not installed})"
curl -sfL "$INSTALLER" | sudo -n env INSTALL_K3S_VERSION="$VERSION" sh -s - "${args[@]}"
