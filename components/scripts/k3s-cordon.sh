# Day-2: NODE's VM is parked, stopped, on a Proxmox host in maintenance (plan.placement.parked).
# Cordon it so nothing new lands there. Once Kubernetes sees it down, mark it out of service: its
# pods are then deleted and their RBD volumes detached at once, so a StatefulSet's pod starts on
# another node within a minute instead of after the ~6 minute force-detach timeout. The taint is
# only set on a node that is NotReady: force-detaching a volume that a running node still writes
# to could corrupt it. Then drain, which honours the PodDisruptionBudgets.
# Safe to re-run: each step leaves a node already in that state as it is.
sudo -n k3s kubectl cordon "$NODE"
ready=""
for _ in $(seq 1 24); do
  ready=$(sudo -n k3s kubectl get node "$NODE" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')
  if [ "$ready" != True ]; then
    break
  fi
  sleep 5
done
if [ "$ready" != True ]; then
  sudo -n k3s kubectl taint node "$NODE" "$OUT_OF_SERVICE" --overwrite
else
  echo "$NODE is still Ready: draining it without the out-of-service taint" >&2
fi
# Pods of a stopped node never confirm their deletion: stop waiting for them after a minute.
sudo -n k3s kubectl drain "$NODE" --ignore-daemonsets --delete-emptydir-data \
  --skip-wait-for-delete-timeout=60 --timeout="$TIMEOUT"
