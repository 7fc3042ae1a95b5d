#!/usr/bin/env bash
# Cron (app.json `cron`), each figure beside its baseline from the same run:
#  1. `ssh host cron:run APP ID` vs `ssh host run APP <the entry's command>`, the same
#     command (`true`) on the same app: medians of 30 runs each, taken in turns after 3
#     warm-ups. Target: cron:run <= 1.05x run.
#  2. Scheduling accuracy: an entry `* * * * *` whose command prints the time it
#     started; the delay from the scheduled minute to that first output, median and max
#     over RUNS runs (default 10, so about RUNS + 1 minutes). Target: median under 1 s.
#     Shown beside the time `ssh host run APP <the same command>` takes to its first
#     output, which is what a run costs before the scheduler adds anything.
# Usage: [RUNS=10] Benchmarks/cron.sh [path/to/slipway]   (default: a release build)
. "$(dirname "$0")/lib.sh" "$@"
runs=${RUNS:-10}

repo=$work/app
git init -q -b main "$repo"
printf 'web: python3 -m http.server $PORT\n' > "$repo/Procfile"
# Entry 0 prints the moment it starts, with ns; entry 1 is the `true` of benchmark 1.
cat > "$repo/app.json" <<'JSON'
{"cron": [{"command": "date +%s.%N", "schedule": "* * * * *"},
          {"command": "true", "schedule": "@yearly"}]}
JSON
git -C "$repo" add . && git -C "$repo" -c user.email=b@b -c user.name=b commit -qm v1
git -C "$repo" push -q "ssh://127.0.0.1:$port/web" main 2>/dev/null
sshs() { ssh $ssh_opts -p "$port" 127.0.0.1 "$@"; }
ids=($(sshs cron:list web --format json | python3 -c 'import json,sys; print(" ".join(e["id"] for e in json.load(sys.stdin)))'))
clock=${ids[0]} noop=${ids[1]}

echo "== 1. cron:run vs run of the same command (median of 30 pairs, interleaved, after 3 warm-ups)"
# The minutely entry is suspended meanwhile, so its runs do not land inside the timings.
# Interleaved pair by pair (not hyperfine's all-of-one-then-the-other), so the load of
# a busy machine drifts over both alike.
sshs cron:suspend web "$clock" 2>/dev/null
python3 - "$noop" $ssh_opts -p "$port" 127.0.0.1 <<'PY'
import statistics, subprocess, sys, time
noop, ssh = sys.argv[1], ["ssh"] + sys.argv[2:]
commands = {"cron:run web " + noop: ssh + ["cron:run", "web", noop], "run web true": ssh + ["run", "web", "true"]}
def once(argv):
    start = time.perf_counter(); subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.perf_counter() - start) * 1000
for argv in commands.values():
    for _ in range(3): once(argv)
times = {name: [] for name in commands}
for _ in range(30):
    for name, argv in commands.items(): times[name].append(once(argv))
for name, values in times.items(): print(f"  {name:<24} median {statistics.median(values):7.1f} ms   min {min(values):7.1f} ms")
cron, run = (statistics.median(v) for v in times.values())
print(f"  ratio cron:run / run: {cron / run:.2f}  (target <= 1.05)")
PY

echo "== 2. scheduling accuracy over $runs runs of a * * * * * entry"
# Baseline: the same command through `ssh run`, from the moment ssh starts to the
# time the command prints (median of 5).
base=()
for _ in 1 2 3 4 5; do
  a=$(date +%s.%N); b=$(sshs run web date +%s.%N)
  base+=("$(python3 -c "print(round(($b - $a) * 1000))")")
done
sshs cron:resume web "$clock" 2>/dev/null
# Each run's output is kept (cron:logs shows the latest): collect one per minute.
starts=()
declare -A seen=()
deadline=$(( $(date +%s) + (runs + 2) * 60 ))
while [ "${#starts[@]}" -lt "$runs" ] && [ "$(date +%s)" -lt "$deadline" ]; do
  line=$(sshs cron:logs web "$clock" -n 1 2>/dev/null | tail -n 1 || true)
  if [[ "$line" =~ ^[0-9]+\.[0-9]+$ ]] && [ -z "${seen[$line]:-}" ]; then
    seen[$line]=1; starts+=("$line")
  fi
  sleep 5
done
sshs cron:suspend web 2>/dev/null
python3 - "${#starts[@]}" "$runs" "${base[*]}" "${starts[@]}" <<'PY'
import statistics, sys
got, wanted, base = int(sys.argv[1]), int(sys.argv[2]), [int(x) for x in sys.argv[3].split()]
delays = [(float(s) - int(float(s)) // 60 * 60) * 1000 for s in sys.argv[4:]]
if got < wanted: print(f"  only {got} of {wanted} runs were seen in time")
if delays:
    print(f"  scheduled minute -> first output  median {statistics.median(delays):7.0f} ms   max {max(delays):7.0f} ms"
          f"   (target: median < 1000 ms; {len(delays)} runs)")
print(f"  ssh run -> first output (baseline) median {statistics.median(base):7.0f} ms   max {max(base):7.0f} ms   (5 runs)")
print("  raw delays (ms): " + " ".join(f"{d:.0f}" for d in delays))
PY
