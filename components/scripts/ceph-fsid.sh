# Print the Ceph cluster's fsid, the cluster id ceph-csi wants. Read-only.
ceph --connect-timeout 30 fsid
