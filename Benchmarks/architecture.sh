#!/usr/bin/env bash
# Before/after a reshaping of the code (issue 13), in one run with two release builds:
#  1. `ssh host apps:list` latency (median of 20, after 3 warm-ups);
#  2. push-to-first-200 of a new Procfile app (median of 3, a new app each time);
#  3. `config:set --no-restart` latency on one app while another app is being deployed
#     (median and worst of every call made during 3 deploys): a routing reload held
#     inside a write transaction would stall it.
# Target: no regression beyond noise.
# Usage: Benchmarks/architecture.sh [before-commit]   (default: 1a8c4c5, the last commit
# before the reshaping); the "before" binary is built in a git worktree under
# .build-baseline-src and built into .build-baseline (both ignored by git). AFTER_BIN:
# a release build of this tree made elsewhere (e.g. --scratch-path .build-release).
. "$(dirname "$0")/baseline.sh" "${1:-1a8c4c5}"

measure() {  # $1: label, $2: binary; prints "label list_ms push_ms set_median_ms set_worst_ms"
  ( . Benchmarks/lib.sh "$2"
    ssh_cmd() { ssh $ssh_opts -p "$port" 127.0.0.1 "$@"; }
    push_web
    list=$(ssh_median apps:list)
    pushes=()
    for i in 1 2 3; do pushes+=($(push_to_200 "app$i")); done
    # config:set on web while app1 redeploys (its processes, health check, routing switch).
    sets=()
    for i in 1 2 3; do
      ssh_cmd ps:restart app1 >/dev/null 2>&1 &
      deploy=$!
      n=0
      while kill -0 "$deploy" 2>/dev/null; do
        a=$(date +%s%N)
        ssh_cmd config:set --no-restart web "K=$i-$n" >/dev/null
        sets+=($(ms "$a" "$(date +%s%N)"))
        n=$((n + 1))
      done
      wait "$deploy"
    done
    worst=$(printf '%s\n' "${sets[@]}" | sort -n | tail -1)
    echo "$1 $list $(median "${pushes[@]}") $(median "${sets[@]}") $worst ${#sets[@]}" )
}

compare "ssh apps:list" "push to first 200" "config:set during a deploy, median" "config:set during a deploy, worst"
