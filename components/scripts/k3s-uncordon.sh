# Day-2: NODE's Proxmox host is back from maintenance and its VM runs again: lift the
# out-of-service taint and let pods schedule on it.
# Safe to re-run: a node without the taint, or already schedulable, is left as it is.
taints=$(sudo -n k3s kubectl get node "$NODE" -o 'jsonpath={.spec.taints[*].key}')
if grep -qF "${OUT_OF_SERVICE%%=*}" <<<"$taints"; then
  sudo -n k3s kubectl taint node "$NODE" "$OUT_OF_SERVICE-"
fi
sudo -n k3s kubectl uncordon "$NODE"
