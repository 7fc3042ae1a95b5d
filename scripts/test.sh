#!/usr/bin/env bash
# Sets up everything the tests need, then runs the whole suite (unit and end to end).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Everything the build and the tests leave in the temporary folder goes with this run's own.
TMPDIR=$(mktemp -d /tmp/slipway-test-run.XXXXXX)
export TMPDIR
# A run cut short can leave a mount inside it (debootstrap's /proc in a builder root):
# detached first, or rm stops at it and the folder stays.
cleanup() {
    findmnt -rn -o TARGET | grep "^$TMPDIR/" | sort -r | xargs -r -n1 umount -l || true
    rm -rf "$TMPDIR"
}
trap cleanup EXIT
started=$SECONDS
swift build --build-tests
echo "test.sh: built in $((SECONDS - started)) s"
swift test --skip-build "$@"
echo "test.sh: built and tested in $((SECONDS - started)) s"
