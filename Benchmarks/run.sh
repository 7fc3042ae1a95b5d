#!/usr/bin/env bash
# Runs every benchmark; each prints its figures beside its baseline.
set -euo pipefail
cd "$(dirname "$0")"
for b in ./*.sh; do
  case "$b" in ./run.sh|./lib.sh) continue ;; esac
  echo "== $b"
  "$b"
done
