#!/bin/bash
# Container health probe for the chat binaries, used by docker-compose healthchecks:
# GET http://127.0.0.1:PORT/PATH and succeed only on HTTP 200. The runtime image carries no
# curl or wget, so this speaks HTTP/1.1 over bash's /dev/tcp.
#   healthcheck 8080 /readyz
set -euo pipefail

port="${1:?usage: healthcheck PORT [PATH]}"
path="${2:-/readyz}"

exec 3<>"/dev/tcp/127.0.0.1/${port}"
printf 'GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' "${path}" >&3
status_line=""
IFS= read -r -t 5 status_line <&3 || true
exec 3<&-

case "${status_line}" in
  "HTTP/1."?" 200 "*) exit 0 ;;
  *) echo "unhealthy: GET ${path} -> ${status_line%$'\r'}" >&2; exit 1 ;;
esac
