#!/usr/bin/env bash
# Backing services (postgres:), each figure beside its baseline from the same run:
#  1. `postgres:create` to the first accepted connection, the image present: the time
#     create takes, and from its start until `select 1` first succeeds through
#     `postgres:connect` (polled; one connect costs about an ssh round trip, shown as
#     its baseline). Median of RUNS services (default 3), each destroyed after.
#  2. A simple-query round trip (`SELECT 1`, pgbench's simple protocol, one client, one
#     connection, 5 s) from a container on a linked app's network, reaching the
#     service by its alias there, vs from a container on the service's own network,
#     reaching its address there. Both clients are the service image's pgbench (the
#     app's image has no Postgres client); they only differ in the network path, which
#     is what linking adds. Interleaved, 4 rounds each; medians and the ratio.
#     Target: linked <= 1.1x own network.
# Usage: [RUNS=3] Benchmarks/services.sh [path/to/slipway]   (default: a release build)
. "$(dirname "$0")/lib.sh" "$@"
runs=${RUNS:-3}
sshs() { ssh $ssh_opts -p "$port" 127.0.0.1 "$@"; }
now() { date +%s%N; }
suffix=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')   # service containers are postgres.NAME engine-wide
# The bench's own containers and the services it makes go whatever happens.
services=()
services_cleanup() {
  for name in "${services[@]}"; do sshs postgres:unlink "$name" web --no-restart >/dev/null 2>&1 || true; sshs postgres:destroy "$name" --force >/dev/null 2>&1 || true; done
  bench_cleanup
}
trap services_cleanup EXIT
# "image present": made once, before any timing, when this engine lacks it.
podman image exists slipway/postgres:15 || s services:bootstrap postgres >/dev/null

echo "== 1. postgres:create to the first accepted connection (image present; median of $runs)"
base=(); created=(); accepted=()
for i in $(seq "$runs"); do
  name="bench$i-$suffix"; services+=("$name")
  t0=$(now)
  sshs postgres:create "$name" >/dev/null
  t1=$(now)
  until echo 'select 1' | sshs postgres:connect "$name" >/dev/null 2>&1; do :; done
  t2=$(now)
  a=$(now); echo 'select 1' | sshs postgres:connect "$name" >/dev/null; b=$(now)
  created+=("$(ms "$t0" "$t1")"); accepted+=("$(ms "$t0" "$t2")"); base+=("$(ms "$a" "$b")")
  sshs postgres:destroy "$name" --force >/dev/null
done
echo "  postgres:create returns          median $(median "${created[@]}") ms   raw: ${created[*]}"
echo "  create -> first accepted select  median $(median "${accepted[@]}") ms   raw: ${accepted[*]}"
echo "  one postgres:connect select 1    median $(median "${base[@]}") ms   raw: ${base[*]}   (baseline: the poll's granularity)"

echo "== 2. SELECT 1 round trip: linked app's network vs the service's own network"
name="rtt-$suffix"; services+=("$name")
sshs postgres:create "$name" >/dev/null
sshs apps:create web >/dev/null
sshs postgres:link "$name" web --no-restart >/dev/null
until echo 'select 1' | sshs postgres:connect "$name" >/dev/null 2>&1; do sleep 0.2; done
password=$(sshs postgres:info "$name" --show-password --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["password"])')
database=$(sshs postgres:info "$name" --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["database"])')
networks=$(curl -s --unix-socket $sock "http://d/v1.41/containers/postgres.$name/json" | python3 -c '
import json,sys
for net, v in json.load(sys.stdin)["NetworkSettings"]["Networks"].items(): print(net, v["IPAddress"])')
app_net=$(awk '/-app-/ {print $1}' <<<"$networks")
svc_net=$(awk '/-svc-/ {print $1}' <<<"$networks"); svc_ip=$(awk '/-svc-/ {print $2}' <<<"$networks")
# pgbench's "latency average" for 5 s of SELECT 1 from a container on network $1 to host $2.
latency() {
  podman run --rm --label org.slipway.bench=1 --network "$1" -e PGPASSWORD="$password" slipway/postgres:15 \
    sh -c "echo 'SELECT 1;' > /tmp/q.sql && pgbench -n -M simple -c 1 -T 5 -f /tmp/q.sql -h $2 -U postgres $database" 2>/dev/null |
    sed -n 's/^latency average = \([0-9.]*\) ms$/\1/p'
}
linked=(); own=()
for _ in 1 2 3 4; do
  linked+=("$(latency "$app_net" "postgres-$name")")
  own+=("$(latency "$svc_net" "$svc_ip")")
done
python3 - "${linked[*]}" "${own[*]}" <<'PY'
import statistics, sys
linked, own = ([float(x) for x in a.split()] for a in sys.argv[1:3])
print(f"  linked app's network (alias)     median {statistics.median(linked):.3f} ms   raw: {' '.join(map(str, linked))}")
print(f"  service's own network (address)  median {statistics.median(own):.3f} ms   raw: {' '.join(map(str, own))}")
print(f"  ratio linked / own: {statistics.median(linked) / statistics.median(own):.2f}  (target <= 1.1)")
PY
