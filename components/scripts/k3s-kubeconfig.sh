# Print the admin kubeconfig with the API VIP as its server instead of 127.0.0.1, so it works
# from the LAN and keeps working when any one server is down. Read-only: safe to re-run.
sudo -n k3s kubectl config view --raw | sed "s#https://127.0.0.1:6443#https://$API_VIP:6443#"
