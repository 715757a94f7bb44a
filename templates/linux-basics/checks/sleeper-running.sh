#!/bin/sh
# Passes when /tmp/notes/sleeper.pid names a running "sleep" process.
pid=$(cat /tmp/notes/sleeper.pid 2>/dev/null) || exit 1
[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || exit 1
grep -q sleep "/proc/$pid/cmdline"
