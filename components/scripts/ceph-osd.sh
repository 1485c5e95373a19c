# Create a Ceph OSD (BlueStore) on DEVICE. Safe to re-run: does nothing when the device holds
# an OSD of this cluster. Never wipes data: a device with partitions, a file system, other LVM
# or another cluster's OSD stops the script with the reason. The one thing it clears is the
# empty Ceph volume group an interrupted create leaves behind (no OSD was written to it).
if ! lsblk --nodeps "$DEVICE" >/dev/null 2>&1; then
  echo "error: $DEVICE is not a block device on $(hostname)" >&2
  exit 1
fi
dev=$(readlink -f "$DEVICE")
# The cluster's config lives in /etc/pve (pveceph init writes it there); /etc/ceph/ceph.conf
# only exists on nodes with a monitor or manager, so `ceph fsid` fails on an OSD-only node.
# ceph-conf reads the file without asking a monitor.
fsid=$(ceph-conf -c "${CEPH_CONF:-/etc/pve/ceph.conf}" --lookup fsid)

# ceph-volume reports the OSDs on the device, each LV tagged with its OSD id and cluster fsid.
report=$(ceph-volume lvm list "$dev" --format json)
if grep -q '"ceph.osd_id"' <<<"$report"; then
  if ! grep -q "\"ceph.cluster_fsid\": \"$fsid\"" <<<"$report"; then
    echo "error: $DEVICE holds an OSD of another Ceph cluster; refusing to wipe it" >&2
    echo "if its data is not needed: ceph-volume lvm zap --destroy $dev, then run again" >&2
    exit 1
  fi
  id=$(sed -n 's/.*"ceph.osd_id": "\([0-9]*\)".*/\1/p' <<<"$report" | head -n 1)
  if ! systemctl is-active --quiet "ceph-osd@$id.service"; then
    echo "osd.$id on $DEVICE is prepared but not running: activating it"
    ceph-volume lvm activate --all
  fi
  echo "$DEVICE already holds osd.$id"
  exit 0
fi

signatures=$(wipefs --noheadings --output TYPE "$dev")
children=$(lsblk --noheadings --raw --output NAME "$dev" | tail -n +2)
if [ "$signatures" = "LVM2_member" ]; then
  vg=$(pvs --noheadings --options vg_name "$dev" | tr -d '[:space:]')
  # ceph-volume names its volume groups ceph-<uuid> and tags the OSD's LV once prepared.
  if [[ "$vg" == ceph-* ]] && ! lvs --noheadings --options lv_tags "$vg" | grep -q 'ceph.osd_id='; then
    echo "clearing the empty volume group $vg an interrupted create left on $DEVICE"
    ceph-volume lvm zap --destroy "$dev"
    signatures=""
    children=""
  fi
fi
if [ -n "$signatures" ] || [ -n "$children" ]; then
  echo "error: $DEVICE is not empty; refusing to wipe it. Found:" >&2
  [ -z "$signatures" ] || echo "  signatures: $(tr '\n' ' ' <<<"$signatures")" >&2
  [ -z "$children" ] || echo "  partitions or volumes: $(tr '\n' ' ' <<<"$children")" >&2
  echo "if its data is not needed: wipefs --all $dev (and remove its partitions), then run again" >&2
  exit 1
fi
pveceph osd create "$dev" --crush-device-class "$DEVICE_CLASS"
echo "OSD created on $DEVICE ($DEVICE_CLASS)"
