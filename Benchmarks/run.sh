#!/usr/bin/env bash
# Runs every benchmark; each prints its figures beside its baseline.
set -euo pipefail
cd "$(dirname "$0")"
for b in ./*.sh; do
  [ "$b" = "./run.sh" ] && continue
  echo "== $b"
  "$b"
done
