# Write the cluster-wide Ceph config (/etc/pve/ceph.conf, shared by every node) with the
# public and cluster networks. Safe to re-run: an existing config is kept. One with other
# networks stops here, because moving Ceph to new networks is a manual procedure.
conf=/etc/pve/ceph.conf
if [ -f "$conf" ]; then
  public=$(ceph-conf -c "$conf" --lookup public_network || true)
  cluster=$(ceph-conf -c "$conf" --lookup cluster_network || true)
  if [ "$public" != "$PUBLIC_NETWORK" ] || [ "$cluster" != "$CLUSTER_NETWORK" ]; then
    echo "error: $conf has public_network '$public' and cluster_network '$cluster'," >&2
    echo "the spec wants $PUBLIC_NETWORK and $CLUSTER_NETWORK; change them by hand, not by re-running init" >&2
    exit 1
  fi
  echo "ceph already initialised: public $public, cluster $cluster"
  exit 0
fi
pveceph init --network "$PUBLIC_NETWORK" --cluster-network "$CLUSTER_NETWORK"
echo "ceph initialised: public $PUBLIC_NETWORK, cluster $CLUSTER_NETWORK"
