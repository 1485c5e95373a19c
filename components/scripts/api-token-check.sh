# Check that the API token holds every privilege the program needs, path by path, as Proxmox
# computes them for it (a privilege-separated token: what both it and its user hold). Run as root
# on the first node, where the token must live: `pvesh` asks the same permission code the API
# uses (pve-access-control src/PVE/API2/AccessControl.pm, permissions). Changes nothing.
# REQUIRED: one line per ACL path, "path privilege privilege ...".
lacking=()
paths=0
empty=0
errors=$(mktemp)
trap 'rm -f "$errors"' EXIT
while read -r path needed; do
  [ -n "$path" ] || continue
  paths=$((paths + 1))
  if ! granted=$(pvesh get /access/permissions --userid "$TOKEN_ID" --path "$path" --output-format json 2>"$errors"); then
    echo "error: cannot read the privileges of API token $TOKEN_ID on $(hostname): $(cat "$errors")" >&2
    echo "Create it on this node (the first in the spec) as the README says, before the cluster forms." >&2
    exit 1
  fi
  # shellcheck disable=SC2086 # one argument per needed privilege
  missing=$(perl -MJSON::PP -e '
    my ($path, @needed) = @ARGV;
    my $granted = decode_json(do { local $/; <STDIN> })->{$path} // {};
    print join(" ", grep { !exists $granted->{$_} } @needed);
  ' "$path" $needed <<<"$granted")
  [ -z "$missing" ] || lacking+=("  $path: $missing")
  [ "$missing" != "$(xargs <<<"$needed")" ] || empty=$((empty + 1))
done <<<"$REQUIRED"
if [ "$empty" -eq "$paths" ]; then
  # Proxmox answers an unknown token with no privileges rather than an error (pve-access-control
  # src/PVE/RPCEnvironment.pm, permissions).
  echo "error: API token $TOKEN_ID has no privileges at all on $(hostname): it does not exist on this node" \
    "(the first in the spec), or neither it nor its user has the role. Create both as the README says" \
    "(\"The API token\"), before the cluster forms." >&2
  exit 1
fi
if [ "${#lacking[@]}" -gt 0 ]; then
  echo "error: API token $TOKEN_ID lacks privileges the program needs:" >&2
  printf '%s\n' "${lacking[@]}" >&2
  echo "Grant the role in the README (\"The API token\") to the token and to its user, on /." >&2
  exit 1
fi
echo "API token $TOKEN_ID holds every privilege the program needs"
