#!/bin/sh
# Lab Orchestrator check agent: runs the tool's check commands as root, out of band (never on a
# console the student sees). The same script serves both backends:
#   lab-agent          one request on stdin, its reply on stdout (a TCP socket; systemd Accept=yes
#                      or busybox nc -ll -e), as on KubeVirt
#   lab-agent port     serves the virtio-serial port named "lab.agent" for ever, as on QEMU
# Protocol (src/backends/guest/agentProtocol.ts), one line each way:
#   request: <token> <id> <timeoutSeconds> <maxBytes> <base64 env file or -> <base64 script>
#   reply:   R <id> <exit> <stdoutBytes> <stderrBytes>\n<base64 stdout>\n<base64 stderr>\n
#            (each stream cut to maxBytes here), or E <reason>\n
# The env file holds `export NAME='value'` lines written by the tool (values single-quoted there):
# the lab's variables reach the command as environment variables, never as part of its text.
# POSIX sh: runs with busybox and with coreutils (timeout exits 124 there, 143 in busybox).
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
HOME=/root; export HOME
umask 077
TOKEN_FILE=/etc/lab-agent/token

handle() { # $1: one request line; prints the reply
  set -f
  # shellcheck disable=SC2086 # split on blanks on purpose
  set -- $1
  set +f
  [ $# -eq 6 ] || { echo "E bad request"; return 0; }
  [ -n "$1" ] && [ "$1" = "$(cat "$TOKEN_FILE" 2>/dev/null)" ] || { echo "E denied"; return 0; }
  id=$2 t=$3 max=$4 envb64=$5 b64=$6
  case "$id" in *[!A-Za-z0-9]* | '') echo "E bad request"; return 0 ;; esac
  case "$t:$max" in *[!0-9:]* | :* | *:) echo "E bad request"; return 0 ;; esac
  d="$(mktemp -d)" || { echo "E no temp dir"; return 0; }
  : >"$d/env"
  if ! printf '%s' "$b64" | base64 -d >"$d/cmd" 2>/dev/null; then rm -rf "$d"; echo "E bad script"; return 0; fi
  if [ "$envb64" != - ] && ! printf '%s' "$envb64" | base64 -d >"$d/env" 2>/dev/null; then rm -rf "$d"; echo "E bad env"; return 0; fi
  # its own session, so that at the timeout the whole process group goes, not only the shell
  (cd / && timeout "$t" setsid sh -c 'echo $$ >"$1/pg"; . "$1/env"; exec sh "$1/cmd"' sh "$d" </dev/null >"$d/out" 2>"$d/err")
  rc=$?
  case "$rc" in 124 | 143) pg="$(cat "$d/pg" 2>/dev/null)"; [ -n "$pg" ] && kill -KILL "-$pg" 2>/dev/null ;; esac
  echo "R $id $rc $(wc -c <"$d/out") $(wc -c <"$d/err")"
  head -c "$max" "$d/out" | base64 | tr -d '\n'; echo
  head -c "$max" "$d/err" | base64 | tr -d '\n'; echo
  rm -rf "$d"
}

serve_port() { # the virtio-serial port "lab.agent"; gives up quietly when the machine has none
  exec </dev/null >/dev/null 2>&1
  port= n=0
  while [ -z "$port" ]; do
    for p in /sys/class/virtio-ports/*; do [ "$(cat "$p/name" 2>/dev/null)" = lab.agent ] && port="/dev/${p##*/}"; done
    [ -n "$port" ] && break
    n=$((n + 1)); [ "$n" -ge 60 ] && exit 0
    sleep 1
  done
  until exec 3<>"$port"; do sleep 1; done
  # The port stays open for good. The host connects anew for each request, right after the last
  # reply; closing the port between two connections would lose a request that arrived meanwhile
  # (the guest kernel discards a port's unread data when it is closed).
  while :; do
    # 3<&-: the command (and busybox timeout's watcher) must not hold the port
    while IFS= read -r line <&3; do handle "$line" >&3 3<&-; done
    sleep 0.2 # no host connected: reads end at once until one is (short: a request waits at most this long)
  done
}

case "${1:-}" in
  port) serve_port ;;
  *) IFS= read -r line || exit 0; handle "$line" ;;
esac
