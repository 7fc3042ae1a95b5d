#!/usr/bin/env bash
# Sets up everything the tests need, then runs the whole suite (unit and end to end).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build --build-tests
swift test --skip-build "$@"
