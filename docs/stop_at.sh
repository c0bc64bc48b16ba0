# Sourced by the long-run scripts under docs/. `left HH:MM`: the seconds from now until then, at least 1, for
# `timeout` (whose 0 means no limit, so a time already past must not give 0).
left() {
  local s=$(( $(date -d "$1" +%s) - $(date +%s) ))
  if [ "$s" -gt 0 ]; then echo "$s"; else echo 1; fi
}
