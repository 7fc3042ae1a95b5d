#!/usr/bin/env bash
# Installs what Slipway needs to build, run and test on Debian/Ubuntu, idempotently.
# Needs root (or sudo). Swift itself must already be installed.
set -euo pipefail

. "$(dirname "$0")/lib.sh"

# Build: libssh (SSH front and key parsing), SQLite (state), zlib and libstdc++ (dependencies).
# Run and test: git (repos), the OpenSSH client and ssh-keygen (tests, keys), nginx (the
# proxy in front of the apps), curl (tests), python3-paramiko (the SSH attack tests' scripted
# client: forged and SHA-1 signatures, NUL in an exec string, which OpenSSH's client never sends).
packages=(libssh-dev libsqlite3-dev sqlite3 pkg-config zlib1g-dev libstdc++-12-dev git openssh-client ca-certificates nginx curl openssl procps python3-paramiko
  docker-registry)  # the Distribution registry: the kubernetes scheduler's end-to-end tests push to one on loopback

install_missing setup "${packages[@]}"

# Automatic certificates (letsencrypt:*): Debian's lego is the ACME client Slipway runs;
# pebble, Let's Encrypt's test CA, lets the end-to-end tests issue and renew offline.
install_missing acme lego pebble

# Hermetic package sources for the build tests and Benchmarks/buildpacks.sh: Tests/Fixtures/package_index.py
# makes a Python index and an npm registry from these Debian packages' installed files (Flask and
# its dependencies, express and its node-* closure, six and is-number as the "one more" packages),
# so no test reaches the internet. The tests write package-lock.json with npm: from Debian's
# package unless the host's Node.js already brings one (NodeSource's does, and conflicts with it).
install_missing fixtures python3-flask python3-six node-express node-is-number nodejs
command -v npm >/dev/null || install_missing fixtures npm

# The schema check of rendered Kubernetes objects (SchemaValidationTests, issue 20): PyPI's
# kubernetes-validate carries the official schemas of each Kubernetes release and works offline
# once installed. In a venv of its own (Debian's python3 refuses a system-wide pip install),
# linked into /usr/local/bin.
if ! command -v kubernetes-validate >/dev/null; then
  install_missing kubernetes python3-venv
  as_root python3 -m venv /opt/slipway-tools/kubernetes-validate
  as_root /opt/slipway-tools/kubernetes-validate/bin/pip install -q kubernetes-validate==1.37.0
  as_root ln -sf /opt/slipway-tools/kubernetes-validate/bin/kubernetes-validate /usr/local/bin/kubernetes-validate
fi

# The container engine (podman and its Docker-compatible API service).
"$(dirname "$0")/engine.sh"

command -v swift >/dev/null || { echo "setup: swift is not on PATH; install Swift 6 first (https://www.swift.org/install/linux/)" >&2; exit 1; }
echo "setup: ok"
