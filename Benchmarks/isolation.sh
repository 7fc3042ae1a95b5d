#!/usr/bin/env bash
# The cost of tenant isolation (user namespaces, a network per app), before and
# after, measured in one run with two release builds of Slipway:
#  1. `ssh host run web true` (median of 20, after 3 warm-ups);
#  2. push-to-first-200: a new Procfile app pushed until nginx answers 200 for it
#     (median of 5, a new app each time, so each pays for its network).
# Target: after <= 1.15x before, for both.
# Usage: Benchmarks/isolation.sh [before-commit]   (default: 2235c9a, the last commit
# without isolation); the "before" binary is built in a git worktree under
# .build-baseline-src and built into .build-baseline (both ignored by git).
. "$(dirname "$0")/baseline.sh" "${1:-2235c9a}"

measure() {  # $1: label, $2: binary; prints "label run_ms push_ms"
  ( . Benchmarks/lib.sh "$2"
    push_web
    run=$(ssh_median run web true)
    pushes=()
    for i in 1 2 3 4 5; do pushes+=($(push_to_200 "app$i")); done
    echo "$1 $run $(median "${pushes[@]}") ${pushes[*]}" )
}

compare "ssh run web true (target <= 1.15x)" "push to first 200 (target <= 1.15x)"
