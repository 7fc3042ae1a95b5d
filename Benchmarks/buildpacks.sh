#!/usr/bin/env bash
# Apps without a Dockerfile whose dependencies Slipway installs (issue 16), one Flask app in
# one run, packages served by a local index (Tests/Fixtures/package_index.py, from Debian's
# files: no internet), each push timed from `git push` to the first 200 with the new body
# through nginx:
#  1. first push, code-only push, one-dependency-added push (six).
#     Target: code-only push <= 0.3x the first push.
#  2. the code-only push vs the same app as a hand-made two-stage Dockerfile (stage one makes
#     the venv from requirements.txt, stage two copies it and the code), pushed the same way:
#     first push, then a code-only push (the engine's layer cache keeps stage one).
#     Target: <= 1.1x the Dockerfile's code-only push.
# Usage: Benchmarks/buildpacks.sh [path/to/slipway]   (default: a release build)
. "$(dirname "$0")/lib.sh" "$@"

# The package index, stopped and removed with everything else.
index_pid=
buildpacks_cleanup() {
  # `|| true`: the killed index's status (143) must not end the trap before bench_cleanup.
  if [ -n "$index_pid" ]; then kill "$index_pid" 2>/dev/null || true; wait "$index_pid" 2>/dev/null || true; fi
  # Dependency images are not builds (bench_cleanup removes those): slipway/deps-app-<id>:<key>.
  if [ -d "$work/data/build-cache" ]; then
    for dir in "$work"/data/build-cache/*/installs/*; do
      [ -d "$dir" ] || continue
      id=$(basename "$(dirname "$(dirname "$dir")")")
      curl -s --unix-socket $sock -X DELETE "http://d/v1.41/images/slipway/deps-app-$id:$(basename "$dir")" >/dev/null
    done
  fi
  bench_cleanup
}
trap buildpacks_cleanup EXIT

python3 Tests/Fixtures/package_index.py build "$work/index" >/dev/null
index_port=$(free_port)
python3 Tests/Fixtures/package_index.py serve "$work/index" "$index_port" "$work/index.log" >/dev/null 2>&1 &
index_pid=$!
# Builds reach the host at its own address, from every podman bridge network.
host=$(hostname -I | tr ' ' '\n' | grep -v -e : -e '^10\.88\.' -e '^$' | head -1)
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$index_port/simple/" && break; sleep 0.05; done
index_config=("PIP_INDEX_URL=http://$host:$index_port/simple" "PIP_TRUSTED_HOST=$host")

flask_app() {  # $1: directory, $2: version, $3: requirements
  mkdir -p "$1"
  # The run's own nonce: no build of this run hits the layer cache of an earlier one.
  cat > "$1/app.py" <<PY
# run ${work##*/}
import os
from flask import Flask
app = Flask(__name__)
@app.get("/")
def index():
    return "hello $2\n"
if __name__ == "__main__":
    app.run(host="0.0.0.0", port=int(os.environ["PORT"]))
PY
  printf '%s' "$3" > "$1/requirements.txt"
  printf 'web: python app.py\n' > "$1/Procfile"
}
# The same app, built by a Dockerfile its author wrote: stage one depends on requirements.txt
# only, so the engine's layer cache keeps it across code changes.
handmade() {  # $1: directory
  rm -f "$1/Procfile"
  # The two ARGs take the app's config of the same names (as every Dockerfile ARG does).
  cat > "$1/Dockerfile" <<'DOCKERFILE'
FROM slipway/builder:bookworm-app AS deps
ARG PIP_INDEX_URL
ARG PIP_TRUSTED_HOST
USER root
COPY requirements.txt /deps/requirements.txt
RUN python3 -m venv /deps/.venv && /deps/.venv/bin/pip install --disable-pip-version-check --no-input -r /deps/requirements.txt

FROM slipway/builder:bookworm-app
COPY --from=deps /deps/.venv /app/.venv
COPY . /app
ENV PATH=/app/.venv/bin:$PATH
CMD ["python", "/app/app.py"]
DOCKERFILE
}

now() { date +%s%N; }
until_200() {  # $1: url, $2: expected body
  for _ in $(seq 6000); do [ "$(curl -s -m 2 "$1" 2>/dev/null)" = "$2" ] && return 0; sleep 0.02; done; echo "no 200 from $1" >&2; return 1
}
push() {  # $1: app, $2: version, $3: requirements, $4: "dockerfile" for the hand-made one; prints ms
  local repo=$work/repo-$1 a b p
  [ -d "$repo" ] || git init -q -b main "$repo"
  flask_app "$repo" "$2" "$3"
  [ "${4:-}" = dockerfile ] && handmade "$repo"
  git -C "$repo" add -A; git -C "$repo" -c user.email=b@b -c user.name=b commit -qm "$2"
  a=$(now)
  git -C "$repo" push -q "ssh://127.0.0.1:$port/$1" main 2>"$work/push-$1.err" &
  p=$!
  until_200 "http://$1.localhost:$proxy/" "hello $2" || { wait $p; cat "$work/push-$1.err" >&2; exit 1; }
  b=$(now)
  wait $p
  ms "$a" "$b"
}
secs() { python3 -c "print(f'{$1/1000:.1f} s')"; }
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }

for app in flask handmade; do
  s apps:create "$app" >/dev/null
  s config:set --no-restart "$app" "${index_config[@]}" >/dev/null
done

echo "== 1. the Flask app without a Dockerfile: push to first 200"
first=$(push flask v1 $'Flask\n')
wheels_first=$(grep -c '\.whl ' "$work/index.log" || true)
: > "$work/index.log"
code=$(push flask v2 $'Flask\n')
requests_code=$(wc -l < "$work/index.log")
: > "$work/index.log"
added=$(push flask v3 $'Flask\nsix\n')
wheels_added=$(grep -c '\.whl ' "$work/index.log" || true)
echo "  first push:            $(secs "$first")   ($wheels_first wheels downloaded)"
echo "  code-only push:        $(secs "$code")   ($requests_code index requests)   ratio to first $(ratio "$code" "$first")  (target <= 0.3)"
echo "  one dependency added:  $(secs "$added")   ($wheels_added wheels downloaded)   ratio to first $(ratio "$added" "$first")"

echo "== 2. code-only push: without a Dockerfile vs a hand-made two-stage Dockerfile"
hand_first=$(push handmade v1 $'Flask\n' dockerfile)
hand_code=$(push handmade v2 $'Flask\n' dockerfile)
echo "  hand-made Dockerfile:  first push $(secs "$hand_first"), code-only push $(secs "$hand_code")"
echo "  code-only push:        without a Dockerfile $(secs "$code")   hand-made $(secs "$hand_code")   ratio $(ratio "$code" "$hand_code")  (target <= 1.1)"
