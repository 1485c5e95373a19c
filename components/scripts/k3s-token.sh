# Print the cluster's join token (written by the first server's install) alone on stdout, which
# Pulumi keeps secret; it embeds the cluster CA's hash, so a joining node verifies the server.
# Read-only: safe to re-run.
sudo -n cat "$TOKEN_PATH"
