#!/usr/bin/env bash
# Sets up, builds and starts Slipway on its defaults: the SSH front on 127.0.0.1:2222.
# The first time, the invoking user's ~/.ssh/id_*.pub becomes the first admin (a key
# is generated if there is none).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release --product slipway
bin="$(swift build -c release --show-bin-path)/slipway"
if [ "$(id -u)" -eq 0 ]; then
  install -m 0755 "$bin" /usr/local/bin/slipway
  bin=/usr/local/bin/slipway
  data=${SLIPWAY_DATA_DIR:-/var/lib/slipway}
else
  data=${SLIPWAY_DATA_DIR:-$HOME/.local/share/slipway}
fi
slipway() { "$bin" --data-dir "$data" "$@"; }

if [ "$(slipway users:list --format json | tr -d ' \n')" = "[]" ]; then
  key=$(ls "$HOME"/.ssh/id_ed25519.pub "$HOME"/.ssh/id_ecdsa.pub "$HOME"/.ssh/id_rsa.pub 2>/dev/null | head -n 1 || true)
  if [ -z "$key" ]; then
    mkdir -p "$HOME/.ssh" && chmod 700 "$HOME/.ssh"
    ssh-keygen -q -t ed25519 -N '' -f "$HOME/.ssh/id_ed25519"
    key=$HOME/.ssh/id_ed25519.pub
    echo "run: generated $key"
  fi
  name=$(id -un | tr 'A-Z_.' 'a-z--' | sed 's/^[^a-z]*//' | cut -c1-32)
  slipway users:add "${name:-admin}" --admin
  slipway ssh-keys:add "${name:-admin}" < "$key"
fi

echo
echo "Slipway is starting on 127.0.0.1:2222 (data: $data). Try, from another terminal:"
echo "  ssh -p 2222 127.0.0.1 apps:create web"
echo "  git push ssh://127.0.0.1:2222/web main"
exec "$bin" --data-dir "$data" serve --listen 127.0.0.1:2222
