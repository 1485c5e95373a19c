# Download an LXC template with Proxmox's appliance manager onto this node. Safe to re-run.
if pveam list "$STORAGE" | awk '{ print $1 }' | grep -qxF "$STORAGE:vztmpl/$TEMPLATE"; then
  echo "$TEMPLATE already on $STORAGE"
  exit 0
fi
pveam update
pveam download "$STORAGE" "$TEMPLATE"
