#!/usr/bin/env bash
# Local `config:get` latency with 1 app vs 1,000 apps and 10,000 config vars, same run.
# Target: the 1,000-app median within 1.1x of the 1-app median.
# Usage: Benchmarks/config-get.sh [path/to/slipway]   (default: a release build)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { apt-get install -y -qq hyperfine >/dev/null; }
command -v sqlite3 >/dev/null || { apt-get install -y -qq sqlite3 >/dev/null; }
bin=${1:-}
if [ -z "$bin" ]; then
  swift build -c release --product slipway >/dev/null
  bin="$(swift build -c release --show-bin-path)/slipway"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
small=$work/small big=$work/big

"$bin" --data-dir "$small" apps:create web >/dev/null
"$bin" --data-dir "$small" config:set web GREETING=hello >/dev/null

# The big state: the schema comes from slipway itself, the bulk rows from one SQL transaction.
"$bin" --data-dir "$big" apps:create web >/dev/null
"$bin" --data-dir "$big" config:set web GREETING=hello >/dev/null
{
  echo "BEGIN;"
  for i in $(seq 1 999); do
    echo "INSERT INTO apps (name, created_at, locked) VALUES ('app-$i', datetime('now'), 0);"
  done
  echo "INSERT INTO config_vars (app_id, key, value) SELECT apps.id, 'VAR_' || n.value, 'value ' || n.value FROM apps, (WITH RECURSIVE c(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM c WHERE value < 10) SELECT value FROM c) n ;"
  echo "COMMIT;"
} | sqlite3 "$big/slipway.db"
apps=$(sqlite3 "$big/slipway.db" "select count(*) from apps")
vars=$(sqlite3 "$big/slipway.db" "select count(*) from config_vars")

hyperfine -N --warmup 10 --runs 300 --style none --export-json "$work/r.json" \
  -n "1 app" "$bin --data-dir $small config:get web GREETING" \
  -n "$apps apps, $vars vars" "$bin --data-dir $big config:get web GREETING" >/dev/null
python3 - "$work/r.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
med = [x["median"] * 1000 for x in r]
print(f"{'case':<28}{'median ms':>10}{'mean ms':>10}{'p95 ms':>10}")
for x, m in zip(r, med):
    t = sorted(x["times"]); p95 = t[int(len(t) * 0.95)] * 1000
    print(f"{x['command']:<28}{m:>10.2f}{x['mean']*1000:>10.2f}{p95:>10.2f}")
print(f"ratio big/small: {med[1]/med[0]:.3f}  (target <= 1.10)")
PY
