# upssched's CMDSCRIPT on the UPS node, run as NUT's unprivileged user with the timer's name
# when the ride-through timer runs out. It only asks: the root path unit homelab-power-cut.path
# sees the request and starts the orderly shutdown.
case "${1:-}" in
"$TIMER")
  logger -t homelab-power -- "on battery for the whole ride-through time: asking for the orderly shutdown" || true
  touch "$REQUEST"
  ;;
*)
  logger -t homelab-power -- "upssched: no action for ${1:-nothing}" || true
  ;;
esac
