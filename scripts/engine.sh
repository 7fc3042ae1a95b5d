#!/usr/bin/env bash
# Installs and starts the container engine Slipway talks to: podman (with runc) and
# its Docker-compatible REST API on /run/podman/podman.sock. Idempotent.
# Why each step: the comments beside it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
sock=${SLIPWAY_ENGINE_SOCKET:-/run/podman/podman.sock}

# User namespaces: every app's containers run as its own range of host uids (see
# TenantSandbox.swift), taken from the upper half of the id space, which podman
# reads as the `containers` user's subordinate ids. Added once, beside any others.
for file in /etc/subuid /etc/subgid; do
  grep -q '^containers:' "$file" 2>/dev/null || echo "containers:2147483648:2147483648" | as_root tee -a "$file" >/dev/null
done

ping() { curl -fsS --max-time 10 --unix-socket "$sock" http://d/_ping >/dev/null 2>&1; }
if ping; then echo "engine: answering on $sock"; exit 0; fi
# A service already running but slow to answer (a loaded host) is waited for, never
# doubled: a second service takes the socket over and the first one's clients get
# "connection refused" mid-request (seen while a CI run and end-to-end tests shared
# this host).
if pgrep -f "podman system service .*unix://$sock" >/dev/null; then
  for _ in $(seq 30); do ping && { echo "engine: answering on $sock"; exit 0; }; sleep 1; done
  echo "engine: podman's API service runs but does not answer on $sock; see /var/log/podman-service.log" >&2
  exit 1
fi

# iptables: port publishing fails without it; catatonit: Init (PID 1 that forwards signals).
packages=(podman runc netavark aardvark-dns catatonit iptables curl debootstrap)
install_missing engine "${packages[@]}"

# Without this: crun refuses hybrid cgroups and setrlimit(NOFILE) fails past the hard limit.
conf=/etc/containers/containers.conf
if ! grep -q "slipway" "$conf" 2>/dev/null; then
  nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] && nofile=1048576
  as_root mkdir -p /etc/containers
  as_root tee "$conf" >/dev/null <<CONF
# Written by slipway scripts/engine.sh
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=32768:32768"]
[engine]
runtime = "runc"
[network]
network_backend = "netavark"
CONF
fi

# podman deletes its events log when it passes events_logfile_max_size (1 MB by default):
# under a test run that was every few minutes, and the end-to-end tests that read back
# what a hostile image made the engine do (the events of a 10 s helper) found nothing.
# Added to a file written by an earlier version too; read when the service starts.
if ! grep -q '^events_logfile_max_size' "$conf"; then
  as_root sed -i 's/^\[engine\]$/[engine]\nevents_logfile_max_size = "64m"/' "$conf"
fi

as_root mkdir -p "$(dirname "$sock")"
echo "engine: starting podman system service on $sock"
# From the socket's directory: conmon writes an `oom` file into its working directory
# when a container is OOM-killed, which would otherwise litter the caller's checkout.
as_root sh -c "cd $(dirname "$sock") && nohup podman system service --time=0 unix://$sock >/var/log/podman-service.log 2>&1 &"
for _ in $(seq 100); do ping && { echo "engine: answering on $sock"; exit 0; }; sleep 0.1; done
echo "engine: podman's API did not answer on $sock; see /var/log/podman-service.log" >&2
exit 1
