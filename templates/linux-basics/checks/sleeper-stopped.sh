#!/bin/sh
# Passes when the process recorded in /tmp/notes/sleeper.pid no longer runs.
pid=$(cat /tmp/notes/sleeper.pid 2>/dev/null) || exit 1
[ -n "$pid" ] || exit 1
if kill -0 "$pid" 2>/dev/null; then
  # a zombie (ended, not yet reaped by its parent) has stopped too
  state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -c1)
  [ "$state" = Z ] || exit 1
fi
exit 0
