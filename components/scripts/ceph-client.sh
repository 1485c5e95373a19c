# The Ceph client Kubernetes (ceph-csi) uses: RBD on its own pool and nothing else. Prints its
# key alone on stdout, which Pulumi keeps secret; every message goes to stderr.
# Safe to re-run: the key is kept, and caps are rewritten only when they differ.
entity="client.$CLIENT"
mon_caps="profile rbd"
osd_caps="profile rbd pool=$POOL"
mgr_caps="profile rbd pool=$POOL"
if current=$(ceph --connect-timeout 30 auth get "$entity" 2>/dev/null); then
  if grep -Fq "caps mon = \"$mon_caps\"" <<<"$current" &&
    grep -Fq "caps osd = \"$osd_caps\"" <<<"$current" &&
    grep -Fq "caps mgr = \"$mgr_caps\"" <<<"$current"; then
    echo "$entity already exists with its caps" >&2
  else
    ceph auth caps "$entity" mon "$mon_caps" osd "$osd_caps" mgr "$mgr_caps" >&2
    echo "$entity caps set to RBD on pool $POOL" >&2
  fi
else
  ceph auth get-or-create "$entity" mon "$mon_caps" osd "$osd_caps" mgr "$mgr_caps" >/dev/null
  echo "$entity created for RBD on pool $POOL" >&2
fi
ceph auth print-key "$entity"
