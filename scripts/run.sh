#!/usr/bin/env bash
# Sets up, builds and starts Slipway on its defaults.
# For now Slipway is the local CLI (the SSH front arrives next): this builds it,
# installs it to /usr/local/bin and shows the commands available to the local admin.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release --product slipway
bin="$(swift build -c release --show-bin-path)/slipway"
if [ "$(id -u)" -eq 0 ]; then install -m 0755 "$bin" /usr/local/bin/slipway; bin=/usr/local/bin/slipway; fi
echo
"$bin" help
echo
echo "slipway is ready at $bin; try: $bin users:add alice --admin"
