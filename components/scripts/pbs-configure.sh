# Make this Proxmox Backup Server what the spec says: the datastore, the user the cluster's
# nodes log in as (its password from the stack's secret), its role, and PBS's own prune,
# garbage-collection and verify jobs; then print the certificate's fingerprint, which the
# nodes pin. Safe to re-run: it converges to the spec and changes nothing else.
#
# The cluster's user may back up and restore what it owns, and nothing more (DatastoreBackup):
# a node that is taken over cannot delete the history. PBS prunes, by its own job.
# `section: id` lines of one of PBS's section config files (absent until the first entry).
has_section() { # FILE TYPE ID
  [ -f "$CONFIG_DIR/$1" ] && grep -qxF "$2: $3" "$CONFIG_DIR/$1"
}
# One property of one section, e.g. a datastore's path.
section_value() { # FILE TYPE ID KEY
  [ -f "$CONFIG_DIR/$1" ] || return 0
  awk -v head="$2: $3" -v key="$4" '
    $0 == head { inside = 1; next }
    /^[^ \t]/ { inside = 0 }
    inside && $1 == key { sub(/^[ \t]*[^ \t]+[ \t]+/, ""); print; exit }
  ' "$CONFIG_DIR/$1"
}

# PBS takes a password of 5 to 64 characters (pbs-api-types PBS_PASSWORD_SCHEMA): checked
# before anything changes.
if [ "${#PASSWORD}" -lt 5 ] || [ "${#PASSWORD}" -gt 64 ]; then
  echo "error: homelab:pbsPassword has ${#PASSWORD} characters; PBS takes 5 to 64" >&2
  exit 1
fi

if has_section datastore.cfg datastore "$DATASTORE"; then
  path=$(section_value datastore.cfg datastore "$DATASTORE" path)
  if [ "$path" != "$DATASTORE_PATH" ]; then
    echo "error: datastore $DATASTORE is at $path, the spec says $DATASTORE_PATH: move it by hand (PBS cannot), or fix the spec" >&2
    exit 1
  fi
  proxmox-backup-manager datastore update "$DATASTORE" --gc-schedule "$GC_SCHEDULE"
else
  mkdir -p "$(dirname "$DATASTORE_PATH")"
  proxmox-backup-manager datastore create "$DATASTORE" "$DATASTORE_PATH" --gc-schedule "$GC_SCHEDULE"
fi

if has_section user.cfg user "$USERNAME"; then
  # `user update --password` is accepted and ignored since PBS 3.3 (proxmox-backup
  # src/api2/access/user.rs): the password is set through PUT /access/password, which root may
  # call for any user without the old one (src/api2/access/mod.rs, change_password).
  proxmox-backup-manager user update "$USERNAME" --enable true
  proxmox-backup-debug api set /access/password --userid "$USERNAME" --password "$PASSWORD"
else
  proxmox-backup-manager user create "$USERNAME" --password "$PASSWORD" --comment "the homelab cluster's nodes"
fi
proxmox-backup-manager acl update "/datastore/$DATASTORE" DatastoreBackup --auth-id "$USERNAME"

# The prune job keeps what the spec's retention keeps; a keep option the spec no longer has is
# deleted from it. Updated in place, not made again: removing a job drops its last-run state
# (proxmox-backup src/api2/config/prune.rs), and a missed run would not be caught up.
keep_args=()
drop_args=()
for option in keep-last keep-hourly keep-daily keep-weekly keep-monthly keep-yearly; do
  count=""
  for wanted in $KEEP; do
    if [ "${wanted%%=*}" = "$option" ]; then count=${wanted#*=}; fi
  done
  if [ -n "$count" ]; then
    keep_args+=("--$option" "$count")
  else
    drop_args+=(--delete "$option")
  fi
done
if has_section prune.cfg prune "$PRUNE_JOB"; then
  proxmox-backup-manager prune-job update "$PRUNE_JOB" --store "$DATASTORE" --schedule "$PRUNE_SCHEDULE" \
    "${keep_args[@]}" "${drop_args[@]}"
else
  proxmox-backup-manager prune-job create "$PRUNE_JOB" --store "$DATASTORE" --schedule "$PRUNE_SCHEDULE" "${keep_args[@]}"
fi
# A copy verified in the last 30 days is not read again: each copy is re-read about once a month.
verify_args=(--store "$DATASTORE" --schedule "$VERIFY_SCHEDULE" --ignore-verified true --outdated-after 30)
if has_section verification.cfg verification "$VERIFY_JOB"; then
  proxmox-backup-manager verify-job update "$VERIFY_JOB" "${verify_args[@]}"
else
  proxmox-backup-manager verify-job create "$VERIFY_JOB" "${verify_args[@]}"
fi

fingerprint=$(proxmox-backup-manager cert info | sed -n 's/^Fingerprint (sha256): *//p')
if ! printf '%s\n' "$fingerprint" | grep -Eqx '([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}'; then
  echo "error: no sha256 fingerprint in \`proxmox-backup-manager cert info\`" >&2
  exit 1
fi
printf '%s\n' "$fingerprint"
