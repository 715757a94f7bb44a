#!/bin/sh
# Passes when the process recorded in /tmp/notes/sleeper.pid no longer runs.
pid=$(cat /tmp/notes/sleeper.pid 2>/dev/null) || exit 1
[ -n "$pid" ] || exit 1
! kill -0 "$pid" 2>/dev/null
