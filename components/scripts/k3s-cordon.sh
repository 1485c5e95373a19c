# Day-2: NODE's VM is parked, stopped, on a Proxmox host in maintenance (plan.placement.parked).
# Cordon it so nothing new lands there. Once Kubernetes has lost contact with it (Ready is
# Unknown: its kubelet stopped reporting), mark it out of service: its pods are then deleted and
# their RBD volumes detached at once, so a StatefulSet's pod starts on another node within a
# minute instead of after the ~6 minute force-detach timeout. Ready=False is not enough: that is
# a running kubelet reporting a problem, and force-detaching a volume a live node still writes to
# could corrupt it. Then drain (its PodDisruptionBudgets apply to pods still running).
# Safe to re-run: each step leaves a node already in that state as it is.
sudo -n k3s kubectl cordon "$NODE"
ready=""
# The node controller marks a silent node Unknown after its grace period (40-50 s).
for _ in $(seq 1 24); do
  ready=$(sudo -n k3s kubectl get node "$NODE" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')
  if [ "$ready" = Unknown ]; then
    break
  fi
  sleep 5
done
if [ "$ready" = Unknown ]; then
  sudo -n k3s kubectl taint node "$NODE" "$OUT_OF_SERVICE" --overwrite
else
  echo "$NODE still reports to the API (Ready=$ready): draining it without the out-of-service taint" >&2
fi
# Pods of a stopped node never confirm their deletion: stop waiting for them after a minute.
sudo -n k3s kubectl drain "$NODE" --ignore-daemonsets --delete-emptydir-data \
  --skip-wait-for-delete-timeout=60 --timeout="$TIMEOUT"
