# Label k3s node NODE with the Proxmox host its VM runs on (LABEL=key=value), so pods spread
# across physical hosts. The install sets it when the node registers; this keeps it right when
# the VM moves to another host. Safe to re-run: --overwrite sets the same value again.
for attempt in $(seq 1 60); do
  if sudo -n k3s kubectl get node "$NODE" >/dev/null 2>&1; then
    break
  fi
  if [ "$attempt" -eq 60 ]; then
    echo "error: node $NODE has not registered after 5 minutes" >&2
    exit 1
  fi
  sleep 5
done
sudo -n k3s kubectl label node "$NODE" "$LABEL" --overwrite
