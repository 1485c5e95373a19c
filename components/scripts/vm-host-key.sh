# Print a VM's SSH host key as the VM itself holds it, read through Proxmox, not over the network:
# the QEMU guest agent reads the file over the VM's virtio serial channel (qemu-server
# src/PVE/API2/Qemu/Agent.pm, file-read), on whichever node the VM runs now, asked from this node
# (reached with its pinned host key). The program then checks that key on every SSH connection
# to the VM, so whoever answers at the VM's address on the LAN gets nothing.
# VMID; waits (bounded) for the agent, which cloud-init installs at the first boot. Read-only.
key=""
for _ in $(seq 1 "$TRIES"); do
  node=$(pvesh get /cluster/resources --type vm --output-format json 2>/dev/null |
    perl -MJSON::PP -e 'my $vms = decode_json(do { local $/; <STDIN> });
      print map { $_->{vmid} == $ARGV[0] ? $_->{node} : () } @$vms' "$VMID" || true)
  if [ -n "$node" ] && read_back=$(pvesh get "/nodes/$node/qemu/$VMID/agent/file-read" \
    --file /etc/ssh/ssh_host_ed25519_key.pub --output-format json 2>/dev/null); then
    key=$(perl -MJSON::PP -e 'print decode_json(do { local $/; <STDIN> })->{content} // ""' <<<"$read_back" |
      awk '$1 == "ssh-ed25519" && $2 ~ /^AAAA[A-Za-z0-9+\/]+=*$/ { print $1, $2; exit }')
    [ -z "$key" ] || break
  fi
  sleep "$WAIT_SECONDS"
done
if [ -z "$key" ]; then
  echo "error: could not read VM $VMID's SSH host key through its guest agent after $TRIES tries" \
    "(is it running, and is qemu-guest-agent up in it?)" >&2
  exit 1
fi
echo "$key"
