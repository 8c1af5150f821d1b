#!/usr/bin/env bash
# Compares paygate binaries on the embedded pipeline, alternating runs so the
# host's drift falls on all of them alike (PERFORMANCE.md, "SQLite's hand-offs").
#
#   scripts/ab-embedded.sh ROUNDS BINARY [BINARY ...]
#
# Each run: a fresh `BINARY serve` (SQLite, autopay simulator, settings as in
# scripts/bench.sh), `paygate-bench pipeline` at AB_RATE/s (600) for 8 s, then
# one line per binary: completed/s (the whole run, and once the pipeline is
# full), serve's and the machine's CPU, and two figures that move far less
# between runs than the rate does: context switches and CPU milliseconds of
# serve per payment (from /proc, summed over its threads).
# AB_THREADS=1 also prints each thread's CPU over 5 s of the run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:?rounds}; shift
BENCH=${AB_BENCH:-target/release/paygate-bench}
RATE=${AB_RATE:-600}
DURATION=8
PORT=${AB_PORT:-18080}
API=http://127.0.0.1:$PORT

cpu_ticks() { # pid -> utime+stime of the whole process
  local s rest
  s=$(cat "/proc/$1/stat"); rest=${s#*) }
  set -- $rest
  echo $(( ${12} + ${13} ))
}

ctx_switches() { # pid -> voluntary + involuntary switches over all threads
  cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {s += $2} END {print s}'
}

thread_cpu() { # pid seconds -> per-thread CPU % over the window
  local pid=$1 secs=$2 snap
  snap() { for t in /proc/"$pid"/task/*; do
    local s rest; s=$(cat "$t/stat" 2>/dev/null) || continue; rest=${s#*) }
    set -- $rest; echo "${t##*/} $(cat "$t/comm" | tr ' ' _) $(( ${12} + ${13} ))"; done | sort; }
  local a b; a=$(snap); sleep "$secs"; b=$(snap)
  join <(echo "$a") <(echo "$b") | awk -v s="$secs" '{printf "    %s %s %.1f%%\n", $1, $2, ($5 - $3) / s}'
}

run_once() { # binary
  local bin work pid key
  bin=$(realpath "$1")
  work=$(mktemp -d)
  (cd "$work" && env -u DATABASE_URL -u REDIS_URL PAYGATE_LISTEN=127.0.0.1:$PORT \
    DATABASE_URL="sqlite://$work/paygate.db" SECRET_KEY=paygate-ab-secret PAYGATE_SEED_WAIT_MS=0 \
    PAYGATE_SAMPLE_INTERVAL_MS=500 PAYGATE_WORKER_CONCURRENCY=256 \
    PAYGATE_SANDBOX_MEDOGRAM_AUTOPAY=true PAYGATE_RATE_LIMIT_PER_SEC=0 \
    PAYGATE_SANDBOX_OPEN_CONTROL=true RUST_LOG=warn "$bin" serve) >"$work/serve.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do curl -fs "$API/readyz" >/dev/null && break; sleep 0.1; done
  for _ in $(seq 1 50); do grep -q 'admin API key' "$work/serve.log" && break; sleep 0.1; done
  key=$(grep -o 'pgk_[A-Za-z0-9_-]*' "$work/serve.log" | head -n1 || true)
  if [ -z "$key" ]; then
    echo "ab-embedded.sh: $bin serve did not start; its log:" >&2
    cat "$work/serve.log" >&2
    kill "$pid" 2>/dev/null || true
    exit 1
  fi
  "$BENCH" pipeline --api "$API" --json --watch "serve=$pid" --admin-key "$key" \
    --metrics "$API/metrics" --rate "$RATE" --duration "$DURATION" --drain 45 >"$work/pipeline.json" &
  local b=$!
  if [ -n "${AB_THREADS:-}" ]; then sleep 6; thread_cpu "$pid" 5; fi
  wait "$b"
  local n cs ticks
  n=$(jq '.completed' "$work/pipeline.json")
  cs=$(ctx_switches "$pid"); ticks=$(cpu_ticks "$pid")
  jq -r --arg bin "$(basename "$bin")" --argjson n "$n" --argjson cs "$cs" --argjson t "$ticks" \
    '"\($bin): completed/s=\(.completed_per_s) once full=\(.completed_per_s_steady) serve=\(.cpu_pct.serve)% machine=\(.cpu_pct.machine)% switches/payment=\(($cs / $n) | floor) cpu_ms/payment=\(($t * 10 / $n * 100 | floor) / 100)"' \
    "$work/pipeline.json"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$work"
}

for _ in $(seq 1 "$ROUNDS"); do
  for bin in "$@"; do run_once "$bin"; done
done
