# Install k3s at the pinned VERSION on this guest, configured by K3S_CONFIG (written to
# CONFIG_FILE). ROLE: `server-init` (the first server, which starts the embedded etcd cluster),
# `server-join` (another server, joining through the API VIP) or `agent`. Joining nodes read the
# join token on stdin, so it is neither on a command line nor in this script's text.
# Safe to re-run: files are rewritten only when they differ; the installer runs only when the
# pinned version is not the one installed and active (an upgrade is a new VERSION in the spec),
# and a running k3s is restarted only when its config file changed; a stopped one is started.

# The login user is not root: every change to the system goes through sudo (-n: fail at once
# instead of waiting for a password prompt nobody answers).
put() { # put PATH MODE: write stdin to PATH (root-owned, made private first) when it differs
  local path=$1 mode=$2 content
  content=$(cat)
  if ! printf '%s\n' "$content" | sudo -n cmp -s - "$path"; then
    sudo -n install -d -m 0755 "${path%/*}"
    printf '%s\n' "$content" | sudo -n sh -c 'umask 077 && cat >"$1"' put "$path"
    echo "wrote $path"
    wrote=true # seen by the caller only when put runs in this shell (input from < <(...))
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

# The token first, before any other command could read from stdin.
if [ "$ROLE" != server-init ]; then
  token=$(cat)
  if [ -z "$token" ]; then
    echo "error: no join token on stdin" >&2
    exit 1
  fi
  printf '%s' "$token" | put "$TOKEN_FILE" 0600
fi

# cloud-init may still be installing packages (curl among them, holding the apt lock) or creating
# users. Its own exit status reports its own problems, which are not this script's to fail on.
if command -v cloud-init >/dev/null 2>&1; then
  sudo -n cloud-init status --wait >/dev/null || true
fi
if ! command -v curl >/dev/null 2>&1; then
  echo "error: curl is not installed on $NODE_NAME (cloud-init installs it): cannot reach the installer or the API VIP" >&2
  exit 1
fi

vip_answers() { # vip_answers TRIES: whether a k3s API answers on the VIP, asking TRIES times 5 s apart
  local attempt
  for attempt in $(seq 1 "$1"); do
    if curl -ksf --max-time 5 "https://$API_VIP:6443/cacerts" >/dev/null; then
      return 0
    fi
    if [ "$attempt" -lt "$1" ]; then
      sleep 5
    fi
  done
  return 1
}

# A cluster already holds the VIP and this node has no etcd data (a rebuilt first server):
# `cluster-init` here would start a second cluster fighting the first for the VIP. Asked a few
# times, so a VIP moving between servers is not taken for silence.
if [ "$ROLE" = server-init ] && ! sudo -n test -d "$DATA_DIR/server/db" && vip_answers 3; then
  echo "error: a k3s API already answers on $API_VIP:6443, but $NODE_NAME has no etcd data; starting" \
    "a new cluster here would split it. If $NODE_NAME was rebuilt, list it last in k3s.servers so it" \
    "joins the running cluster." >&2
  exit 1
fi

# A server whose etcd was started without secrets encryption cannot have it added by a restart
# (k3s does not support enabling it later): the new config would stop it at its next start, and
# the servers would disagree on a value they must share. Nothing is changed.
if [ "$ROLE" != agent ] && sudo -n test -d "$DATA_DIR/server/db" && ! sudo -n test -f "$ENCRYPTION_CONFIG"; then
  echo "error: $NODE_NAME's k3s was started without secrets encryption, which k3s cannot turn on" \
    "for a running cluster; its config now asks for it. Back up the apps' volumes and rebuild the" \
    "k3s VMs: a new cluster starts encrypted." >&2
  exit 1
fi

# ceph-csi maps RBD images with the kernel's rbd module, on every node a pod with a volume may use.
printf 'rbd\n' | put /etc/modules-load.d/rbd.conf 0644
sudo -n modprobe rbd

if [ "$service" = k3s ]; then
  # k3s applies every manifest in this folder: kube-vip, which holds the API VIP.
  printf '%s\n' "$KUBE_VIP_MANIFEST" | put "$MANIFESTS/kube-vip.yaml" 0600
fi

# Every flag is in the config file, which k3s reads at each start.
wrote=false
put "$CONFIG_FILE" 0600 < <(printf '%s' "$K3S_CONFIG")
config_changed=$wrote

installed=$(k3s --version 2>/dev/null | awk 'NR == 1 {print $3}' || true)
# A unit that still carries flags (written by an older install that passed them to the installer)
# would override the config file: the installer rewrites it with the bare command.
flags_in_unit=false
if sudo -n grep -q -- "'--" "/etc/systemd/system/$service.service" 2>/dev/null; then
  flags_in_unit=true
fi
if [ "$installed" = "$VERSION" ] && [ "$flags_in_unit" = false ] && systemctl is-active --quiet "$service"; then
  if [ "$config_changed" != true ]; then
    echo "k3s $VERSION already installed and $service active"
    exit 0
  fi
  echo "k3s config changed: restarting $service"
  sudo -n systemctl restart "$service"
else
  # The join goes through the VIP: wait until kube-vip on an earlier server holds it.
  if [ "$ROLE" != server-init ] && ! vip_answers 30; then
    echo "error: the API VIP $API_VIP does not answer on 6443 after 5 minutes; is kube-vip running?" >&2
    exit 1
  fi
  command=server
  if [ "$service" = k3s-agent ]; then
    command=agent
  fi
  echo "installing k3s $VERSION as $ROLE (was: ${installed:-not installed})"
  # A service that failed too often refuses to start until its failure count is reset.
  sudo -n systemctl reset-failed "$service" >/dev/null 2>&1 || true
  # The installer is run only once its bytes are the ones pinned in the repository: whoever
  # answers for the download (or changed it upstream) gets nothing run as root.
  download=$(mktemp)
  if ! curl -sfL --proto '=https' -o "$download" "$INSTALLER"; then
    rm -f "$download"
    echo "error: cannot download the k3s installer from $INSTALLER" >&2
    exit 1
  fi
  got=$(sha256sum "$download" | awk '{print $1}')
  if [ "$got" != "$INSTALLER_SHA256" ]; then
    rm -f "$download"
    echo "error: the k3s installer from $INSTALLER has sha256 $got, not the pinned $INSTALLER_SHA256;" \
      "nothing was installed" >&2
    exit 1
  fi
  # The installer starts the service only when its binary, unit or env file changed (k3s
  # install.sh, service_enable_and_start): forced, so a crashed or stopped node at the pinned
  # version comes back, with a config written while it was down.
  status=0
  sudo -n env INSTALL_K3S_VERSION="$VERSION" INSTALL_K3S_FORCE_RESTART=true sh "$download" "$command" || status=$?
  rm -f "$download"
  if [ "$status" -ne 0 ]; then
    echo "error: the k3s installer failed on $NODE_NAME (exit $status)" >&2
    exit 1
  fi
fi

if [ "$service" = k3s ]; then
  # The next server restarts or joins only once this one is back: its API server ready (etcd
  # included) and its node Ready. etcd loses one member at a time.
  for attempt in $(seq 1 60); do
    if sudo -n k3s kubectl get --raw /readyz >/dev/null 2>&1 &&
      sudo -n k3s kubectl wait --for=condition=Ready "node/$NODE_NAME" --timeout=5s >/dev/null 2>&1; then
      break
    fi
    if [ "$attempt" -eq 60 ]; then
      echo "error: k3s node $NODE_NAME is not Ready after 5 minutes" >&2
      exit 1
    fi
    sleep 5
  done
fi
