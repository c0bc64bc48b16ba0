# Sourced by the long-run scripts under docs/. `left HH:MM`: the seconds from now until then, at least 1, for
# `timeout` (whose 0 means no limit, so a time already past must not give 0). The time is taken as the one on the
# clock face nearest now, within 12 h either way, so that 00:14 asked for at 23:56 is 18 min ahead and 23:55 asked
# for at 00:05 is past.
left() {
  local s=$(( $(date -d "$1" +%s) - $(date +%s) ))
  if [ "$s" -lt -43200 ]; then s=$(( s + 86400 )); fi
  if [ "$s" -gt 43200 ]; then s=$(( s - 86400 )); fi
  if [ "$s" -gt 0 ]; then echo "$s"; else echo 1; fi
}
