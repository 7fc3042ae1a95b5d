#!/usr/bin/env bash
# Installs what Slipway needs to build, run and test on Debian/Ubuntu, idempotently.
# Needs root (or sudo). Swift itself must already be installed.
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Build: libssh (SSH front and key parsing), SQLite (state), zlib and libstdc++ (dependencies).
# Run and test: git (repos), the OpenSSH client and ssh-keygen (tests, keys).
packages=(libssh-dev libsqlite3-dev sqlite3 pkg-config zlib1g-dev libstdc++-12-dev git openssh-client ca-certificates)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The container engine (podman and its Docker-compatible API service).
"$(dirname "$0")/engine.sh"

command -v swift >/dev/null || { echo "setup: swift is not on PATH; install Swift 6 first (https://www.swift.org/install/linux/)" >&2; exit 1; }
echo "setup: ok"
