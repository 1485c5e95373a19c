# homelab-power-cut: the cluster's orderly shutdown on a power cut, and its return.
#
#   homelab-power-cut shutdown   on the UPS node, when NUT's ride-through timer ran out
#   homelab-power-cut return     on every node at boot: after a power cut, clear noout, arm HA
#
# The order (plan/ups.py shutdown_steps): disarm HA, shut down the k3s agents and the other
# guests, then the k3s servers, `ceph osd set noout`, then NUT's forced shutdown powers off the
# secondary nodes, then this one, and the UPS cuts its output. Until that last step, power
# coming back cancels it: the guests this run stopped start again, noout is cleared, HA armed.
action=${1:-}
marker="$PVE_DIR/homelab-power-cut"
stopped="$STATE_DIR/stopped"

log() {
  logger -t homelab-power -- "$*" || true
  printf '%s\n' "$*"
}

address_of() { # NODE -> its LAN address
  local pair
  for pair in $NODES; do
    if [ "${pair%%=*}" = "$1" ]; then
      printf '%s\n' "${pair#*=}"
      return 0
    fi
  done
  return 1
}

on_node() { # NODE COMMAND... : run it there (root SSH between the nodes is Proxmox's own)
  local node=$1
  shift
  if [ "$node" = "$(hostname)" ]; then
    "$@"
  else
    # A node's host key is kept in pmxcfs under its name, as Proxmox's own SSH calls read it
    # (pve-cluster src/PVE/SSHInfo.pm ssh_info_to_ssh_opts): not in root's known_hosts.
    # shellcheck disable=SC2029 # quoted here on purpose, for the remote shell
    ssh -o BatchMode=yes -o ConnectTimeout=10 -o HostKeyAlias="$node" \
      -o UserKnownHostsFile="$PVE_DIR/nodes/$node/ssh_known_hosts" -o GlobalKnownHostsFile=none \
      "root@$(address_of "$node")" "$(printf '%q ' "$@")"
  fi
}

guest_node() { # vm:ID or ct:ID -> the node it is on now (its config's folder in pmxcfs)
  local kind=${1%%:*} id=${1#*:} dir=qemu-server config
  [ "$kind" = ct ] && dir=lxc
  for config in "$PVE_DIR"/nodes/*/"$dir/$id.conf"; do
    if [ -e "$config" ]; then
      basename "$(dirname "$(dirname "$config")")"
      return 0
    fi
  done
  return 1
}

tool() { # vm:ID or ct:ID -> qm or pct
  if [ "${1%%:*}" = ct ]; then echo pct; else echo qm; fi
}

power_is_back() {
  local status
  status=$(upsc "$UPS" ups.status 2>/dev/null) || return 1
  [[ " $status " == *" OL "* && " $status " != *" OB "* ]]
}

is_ha() {
  [[ " $HA_GUESTS " == *" $1 "* ]]
}

ha_disarmed() {
  ha-manager status 2>/dev/null | grep -q '^fencing disarmed, resource mode: ignore'
}

# Each running guest of the group gets a shutdown at once; each has GRACE seconds (its pods'
# grace, then its OS) before Proxmox stops it hard.
shut_down() { # GUEST...
  local guest node status pids=()
  for guest in "$@"; do
    node=$(guest_node "$guest") || {
      log "no node holds $guest: skipped"
      continue
    }
    if ! status=$(on_node "$node" "$(tool "$guest")" status "${guest#*:}"); then
      log "could not ask $node about $guest: its node's shutdown stops it"
      continue
    fi
    [ "$status" = "status: running" ] || continue
    if is_ha "$guest" && ! ha_disarmed; then
      # A shutdown now would go through HA and leave the guest stopped for good
      # (qemu-server vm_shutdown: `ha-manager crm-command stop`): its node's shutdown stops it.
      log "HA is not disarmed: $guest is left to its node's shutdown"
      continue
    fi
    echo "$guest" >>"$stopped"
    log "shutting down $guest on $node"
    on_node "$node" "$(tool "$guest")" shutdown "${guest#*:}" --timeout "$GRACE" --forceStop 1 &
    pids+=("$!")
  done
  local pid
  for pid in "${pids[@]}"; do
    wait "$pid" || log "a guest's shutdown failed (pid $pid): its node stops it"
  done
}

come_back() { # after a cancelled shutdown: undo what this run did, in reverse
  log "power is back: the shutdown is cancelled"
  ceph osd unset noout || log "ceph osd unset noout failed: clear it by hand"
  # Every guest this run stopped starts again, HA's too, while HA is still disarmed (then they
  # are not HA-managed, so qm/pct act directly): arming HA alone would not start them, as each
  # node's LRM still holds the result of its last start (pve-ha-manager src/PVE/HA/LRM.pm).
  local guest node
  if [ -f "$stopped" ]; then
    while read -r guest; do
      node=$(guest_node "$guest") || continue
      log "starting $guest on $node"
      on_node "$node" "$(tool "$guest")" start "${guest#*:}" </dev/null || log "starting $guest failed"
    done <"$stopped"
  fi
  if [ -n "$HA_GUESTS" ]; then
    ha-manager crm-command arm-ha || log "arming HA failed: run ha-manager crm-command arm-ha"
  fi
  rm -f "$marker" "$stopped"
  exit 0
}

check_power() {
  if power_is_back; then come_back; fi
}

wait_for() { # SECONDS DESCRIPTION COMMAND...: true once COMMAND succeeds, false at the deadline
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "gave up waiting for $what"
      return 1
    fi
    sleep 5
  done
}

all_osds_up() {
  local stat
  stat=$(ceph osd stat 2>/dev/null) || return 1
  # "3 osds: 3 up (since 2m), 3 in (since 5d); epoch: e120"
  [[ $stat =~ ^([0-9]+)\ osds:\ ([0-9]+)\ up ]] && [ "${BASH_REMATCH[1]}" = "${BASH_REMATCH[2]}" ]
}

quorate() {
  pvecm status 2>/dev/null | grep -q '^Quorate: *Yes'
}

case "$action" in
shutdown)
  mkdir -p "$STATE_DIR"
  rm -f "$stopped"
  log "on battery for the ride-through time: the orderly shutdown starts"
  # pmxcfs is read-only without quorum (a node already down): then `return` has no marker to
  # find, and the owner clears noout and arms HA by hand (README).
  date -u +%FT%TZ >"$marker" || log "could not write $marker: after the cut, run \`homelab-power-cut return\` by hand"
  if [ -n "$HA_GUESTS" ]; then
    # No recovery and no fencing while nodes go down (pve-ha-manager 5.1.3+, disarm-ha): HA
    # forgets nothing, it only stops acting; `return` arms it again.
    ha-manager crm-command disarm-ha ignore || log "disarming HA failed: its guests are left to their nodes"
    wait_for "$HA_DISARM_SECONDS" "HA to disarm" ha_disarmed || true
  fi
  check_power
  # shellcheck disable=SC2086 # lists of guest IDs
  shut_down $FIRST
  check_power
  # shellcheck disable=SC2086
  shut_down $LAST
  check_power
  # Only noout: pause or nodown would keep the cluster from coming back by itself.
  ceph osd set noout || log "ceph osd set noout failed: Ceph may rebalance while the nodes are off"
  check_power
  log "forced shutdown: the secondary nodes, then this one, then the UPS's output"
  upsmon -c fsd
  ;;
return)
  # After a power cut only: the marker in pmxcfs says this boot follows the shutdown above.
  wait_for "$QUORUM_WAIT_SECONDS" "quorum" quorate || exit 0
  [ -e "$marker" ] || exit 0
  log "back from a power cut (shut down at $(cat "$marker")): waiting for every OSD"
  if wait_for "$OSD_WAIT_SECONDS" "every OSD to be up" all_osds_up; then
    ceph osd unset noout || log "ceph osd unset noout failed: clear it by hand"
  else
    log "an OSD is still down: noout stays set until it is back or replaced (ceph osd unset noout)"
  fi
  if [ -n "$HA_GUESTS" ] && ! ha-manager crm-command arm-ha; then
    log "arming HA failed: run ha-manager crm-command arm-ha (this boot's note stays)"
    exit 1
  fi
  rm -f "$marker"
  # The guests start on boot (pve-guests, while HA was disarmed), or HA starts them once armed.
  log "HA armed: every guest runs again"
  ;;
*)
  echo "usage: homelab-power-cut shutdown|return" >&2
  exit 2
  ;;
esac
