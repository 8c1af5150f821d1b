#!/usr/bin/env bash
# paygate's benchmark with its baselines, in one run on this machine:
#   1. pgbench: the transaction a create must make durable (payment + event + job
#      rows in paygate's own schema), at the same concurrency as paygate's create;
#   2. redis-benchmark: LPUSH/RPUSH, the queue push;
#   3. paygate-bench scenarios against scaled mode (PostgreSQL + Redis: migrate,
#      sandbox with autopay, api, worker x N) and embedded mode (paygate serve);
#   4. a summary: each paygate figure next to its baseline or target, with the ratio.
# Own database (paygate_bench, dropped at the end), own Redis queue
# (paygate:bench), traffic to 127.0.0.1 only, every process it starts stopped on
# exit. About 6-7 minutes after the release build.
#
# Knobs (environment): BENCH_DURATION (s, default 10), BENCH_CONCURRENCY (16),
# BENCH_WORKERS (1), BENCH_WORKER_CONCURRENCY (256, scaled mode's workers; 1024 was slower
# on 2 cores, see PERFORMANCE.md), BENCH_EMBEDDED_WORKER_CONCURRENCY (1024, serve's one worker
# pool: with a 200 ms gateway a pipeline payment holds a slot for three calls, so 256 slots cap
# it at ~427/s; PERFORMANCE.md), BENCH_WORKER_DB_CONNECTIONS (4, the
# workers' PAYGATE_DB_MAX_CONNECTIONS; the API keeps 16), BENCH_WORKER_DB_PRIORITY_CONNECTIONS
# (the workers' PAYGATE_DB_PRIORITY_CONNECTIONS; paygate's default when unset), BENCH_PIPELINE_RATE (600),
# BENCH_PIPELINE_DURATION (8), BENCH_SLOW_MS (200), BENCH_WEBHOOK_ORDERS (2000),
# BENCH_PAYME_ORDERS (5000; the Payme pay phase ends when all are paid or after
# BENCH_DURATION), BENCH_PAYME_REPEATS (1; PerformTransaction re-sends per paid order),
# BENCH_CLICK_ORDERS (5000; likewise for Click's Prepare + Complete), BENCH_CLICK_REPEATS (1;
# Complete re-sends per paid order, each must answer -4), BENCH_SEED_WAIT_MS (3000; the
# seed route's wait in the seed-wait scenario: a second API process in scaled mode, a
# restart of serve at the end in embedded mode), BENCH_SEED_WAIT_CONNECTIONS ("64 256 1024";
# the seed route with its wait against a 200 ms gateway, scaled mode), BENCH_BACKLOG_SECONDS
# (8; /v1 creates at full speed with the workers paused, before the seed route is measured
# under that backlog), BENCH_PAGES (1000; open result pages following settled payments, scaled
# mode: first a GET a second each, as the pages' script did, then the long poll with
# Prefer: wait=10) for BENCH_PAGES_SECONDS (20),
# BENCH_PG_SCHEMA_SQL (SQL run once after the migrations, for schema experiments),
# BENCH_PG_SSLMODE (default "disable": plain TCP on loopback, for pgbench and paygate
# alike; set it empty for the libpq/sqlx default "prefer", which negotiates TLS even on
# loopback and costs both about 30% here), BENCH_PG_SOCKET (PostgreSQL's Unix socket
# directory, e.g. /var/run/postgresql: paygate and pgbench connect through it instead of TCP
# on loopback; measured in PERFORMANCE.md, not the default), BENCH_PG_URL_EXTRA (appended to
# paygate's DATABASE_URL only, for connection-setting experiments, e.g.
# "&options=-c%20synchronous_commit%3Doff"; PERFORMANCE.md says what it measured),
# BENCH_API_WAITED_SLOTS (the waited-job slots of
# the API the seed route waits on, default the workers' BENCH_WORKER_CONCURRENCY; see
# PERFORMANCE.md for 1024), BENCH_PAYGATE (the paygate binary to measure,
# default target/release/paygate: another build's, for A/B runs), BENCH_OUT (results folder,
# default target/bench), BENCH_SKIP_BUILD=1, BENCH_ONLY=scaled|embedded, BENCH_SCENARIOS (a
# subset, for experiments: any of seed_wait seed_slow backlog pipeline webhook payme click
# pages create; default all).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DUR=${BENCH_DURATION:-10}
CONC=${BENCH_CONCURRENCY:-16}
WORKERS=${BENCH_WORKERS:-1}
WORKER_CONC=${BENCH_WORKER_CONCURRENCY:-256}
EMB_WORKER_CONC=${BENCH_EMBEDDED_WORKER_CONCURRENCY:-1024}
WORKER_DB=${BENCH_WORKER_DB_CONNECTIONS:-4}
WORKER_DB_PRIO=${BENCH_WORKER_DB_PRIORITY_CONNECTIONS:-}
PIPE_RATE=${BENCH_PIPELINE_RATE:-600}
PIPE_DUR=${BENCH_PIPELINE_DURATION:-8}
SLOW_MS=${BENCH_SLOW_MS:-200}
WEBHOOK_ORDERS=${BENCH_WEBHOOK_ORDERS:-2000}
PAYME_ORDERS=${BENCH_PAYME_ORDERS:-5000}
PAYME_REPEATS=${BENCH_PAYME_REPEATS:-1}
CLICK_ORDERS=${BENCH_CLICK_ORDERS:-5000}
CLICK_REPEATS=${BENCH_CLICK_REPEATS:-1}
# The seed route's wait in the seed-wait scenario (paygate's default).
SEED_WAIT_MS=${BENCH_SEED_WAIT_MS:-3000}
SEED_WAIT_CONNS=${BENCH_SEED_WAIT_CONNECTIONS:-64 256 1024}
# Whether the API the seed route waits on runs the payment's first jobs itself
# (PAYGATE_API_RUNS_WAITED_JOBS; on by default with SECRET_KEY and the gateway set).
API_RUNS_WAITED=${BENCH_API_RUNS_WAITED_JOBS:-true}
# wait-idle counts the payments created since then (moved past payments left
# unpaid on purpose).
IDLE_SINCE=2000-01-01
BACKLOG_S=${BENCH_BACKLOG_SECONDS:-8}
PAGES=${BENCH_PAGES:-1000}
PAGES_S=${BENCH_PAGES_SECONDS:-20}
OUT=${BENCH_OUT:-$ROOT/target/bench}
ONLY=${BENCH_ONLY:-}
SCENARIOS=${BENCH_SCENARIOS:-}
want() { [ -z "$SCENARIOS" ] || [[ " $SCENARIOS " == *" $1 "* ]]; }

PG_HOST=127.0.0.1
PG_PORT=5432
PG_ADMIN="postgres://postgres@$PG_HOST:$PG_PORT/postgres"
DB=paygate_bench
SSLMODE=${BENCH_PG_SSLMODE-disable}
PG_URL="postgres://postgres@$PG_HOST:$PG_PORT/$DB${SSLMODE:+?sslmode=$SSLMODE}"
PG_SOCKET=${BENCH_PG_SOCKET:-}
PGB_HOST=$PG_HOST
if [ -n "$PG_SOCKET" ]; then
  PG_URL="postgres://postgres@localhost/$DB?host=$PG_SOCKET"
  PGB_HOST=$PG_SOCKET
fi
[ -n "$SSLMODE" ] && export PGSSLMODE=$SSLMODE
REDIS_URL="redis://127.0.0.1:6379"
QUEUE="paygate:bench"

PAYGATE=${BENCH_PAYGATE:-$ROOT/target/release/paygate}
BENCH="$ROOT/target/release/paygate-bench"
WORK=$(mktemp -d /tmp/paygate-bench.XXXXXX)
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/summary.txt  # a skipped scenario must not report an older run
PIDS=()

log() { printf '\n== %s (%s)\n' "$*" "$(date +%T)" >&2; }

cleanup() {
  local code=$?
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill -CONT "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
  done
  sleep 1
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
  done
  psql "$PG_ADMIN" -qtAc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  redis-cli -h 127.0.0.1 -p 6379 --scan --pattern "$QUEUE*" 2>/dev/null |
    xargs -r -n 100 redis-cli -h 127.0.0.1 -p 6379 del >/dev/null 2>&1 || true
  rm -rf "$WORK"
  exit $code
}
trap cleanup EXIT INT TERM

# CPU of every process named COMM over a window, in % of one core (per-pid deltas).
cpu_of_comm() { # comm delay-s window-s
  python3 - "$@" <<'PY'
import os, sys, time
def snap(comm):
    r = {}
    for p in os.listdir('/proc'):
        if not p.isdigit():
            continue
        try:
            if open(f'/proc/{p}/comm').read().strip() != comm:
                continue
            f = open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()
            r[p] = int(f[11]) + int(f[12])
        except OSError:
            pass
    return r
comm, delay, window = sys.argv[1], float(sys.argv[2]), max(float(sys.argv[3]), 1.0)
time.sleep(delay)
a = snap(comm); t = time.time(); time.sleep(window); b = snap(comm); w = time.time() - t
print(round(sum(v - a.get(p, 0) for p, v in b.items()) / os.sysconf('SC_CLK_TCK') / w * 100, 1))
PY
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_http() { # URL [seconds]
  local deadline=$((SECONDS + ${2:-60}))
  until curl -fsS -o /dev/null "$1" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { echo "bench.sh: $1 did not answer" >&2; return 1; }
    sleep 0.2
  done
}

# Starts a paygate subcommand in the background; its pid is in $STARTED.
start() { # name env-file args...
  local name=$1 envfile=$2; shift 2
  (set -a; . "$envfile"; set +a; exec "$PAYGATE" "$@") >"$WORK/$name.log" 2>&1 &
  STARTED=$!
  PIDS+=("$STARTED")
}

stop_all() {
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && { kill -CONT "$pid"; kill -TERM "$pid"; } 2>/dev/null || true
  done
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && { timeout 30 tail --pid="$pid" -f /dev/null 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; }
  done
  PIDS=()
}

jqr() { jq -r "$1" "$2"; }

# --------------------------------------------------------------------------
log "build (release)"
if [ -z "${BENCH_SKIP_BUILD:-}" ]; then
  cargo build --release -p paygate -p paygate-bench
fi
pg_isready -q -h $PG_HOST -p $PG_PORT || { echo "bench.sh: PostgreSQL is required on $PG_HOST:$PG_PORT" >&2; exit 1; }
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || { echo "bench.sh: Redis is required on 127.0.0.1:6379" >&2; exit 1; }

START_TIME=$SECONDS
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(git status --porcelain 2>/dev/null | grep -q . && echo "+dirty" || true)
echo "paygate bench: $(date -u +%FT%TZ), commit $COMMIT$DIRTY, $(nproc) cores, duration ${DUR}s, concurrency $CONC, PostgreSQL sslmode ${SSLMODE:-prefer (libpq default)}" >&2
echo "machine load before start: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

psql "$PG_ADMIN" -qtAc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
psql "$PG_ADMIN" -qtAc "CREATE DATABASE $DB" >/dev/null
redis-cli -h 127.0.0.1 -p 6379 --scan --pattern "$QUEUE*" | xargs -r -n 100 redis-cli -h 127.0.0.1 -p 6379 del >/dev/null

COMMON_ENV="$WORK/common.env"
cat >"$COMMON_ENV" <<EOF
DATABASE_URL='$PG_URL${BENCH_PG_URL_EXTRA:-}'
REDIS_URL=$REDIS_URL
PAYGATE_REDIS_QUEUE=$QUEUE
SECRET_KEY=paygate-bench-secret
PAYGATE_ENV=development
PAYGATE_SEED_WAIT_MS=0
PAYGATE_SAMPLE_INTERVAL_MS=500
PAYGATE_SHUTDOWN_GRACE_MS=2000
PAYGATE_LOG_FORMAT=text
RUST_LOG=warn
# The load generator creates thousands of payments a second from 127.0.0.1:
# the per-client rate limit is off here, and _config is reachable without a key.
PAYGATE_RATE_LIMIT_PER_SEC=0
PAYGATE_SANDBOX_OPEN_CONTROL=true
EOF
(set -a; . "$COMMON_ENV"; set +a; "$PAYGATE" migrate) >/dev/null
# Schema experiments (PERFORMANCE.md says which were tried): SQL run once after the migrations.
if [ -n "${BENCH_PG_SCHEMA_SQL:-}" ]; then
  log "schema experiment: $BENCH_PG_SCHEMA_SQL"
  psql "$PG_URL" -v ON_ERROR_STOP=1 -qtAc "$BENCH_PG_SCHEMA_SQL" >/dev/null
fi

# --------------------------------------------------------------------------
log "baseline 1: pgbench (payment + event + job in one transaction, paygate's schema)"
cat >"$WORK/create.sql" <<'EOF'
\set amount random(1000, 1000000)
BEGIN;
INSERT INTO payments (id, provider, merchant_ref, amount_minor, currency, description, status, created_at, updated_at) VALUES (gen_random_uuid()::text, 'pgbench', '09120000000', :amount, 'IRR', 'pgbench', 'pending', (extract(epoch from clock_timestamp()) * 1000)::bigint, (extract(epoch from clock_timestamp()) * 1000)::bigint) RETURNING id AS pid \gset
INSERT INTO payment_events (payment_id, kind, message, detail, created_at) VALUES (:pid, 'request', 'payment requested', '{"amount":100000,"currency":"IRR"}', (extract(epoch from clock_timestamp()) * 1000)::bigint);
INSERT INTO jobs (id, kind, payment_id, payload, dedupe_key, status, attempts, max_attempts, run_at, dispatched_at, created_at, updated_at) VALUES (gen_random_uuid()::text, 'fetch_user', :pid, 'null', 'fetch_user:' || :pid, 'queued', 0, 8, 0, 0, 0, 0) ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, kind;
COMMIT;
EOF
pgbench -n -M prepared -h $PGB_HOST -p $PG_PORT -U postgres -c "$CONC" -j 2 -T "$DUR" -f "$WORK/create.sql" "$DB" >"$WORK/pgbench.txt" 2>&1 &
PGB=$!
cpu_of_comm postgres 1 $((DUR - 2)) >"$WORK/pgbench-pg-cpu.txt" &
cpu_of_comm pgbench 1 $((DUR - 2)) >"$WORK/pgbench-client-cpu.txt"
wait "$PGB" || { cat "$WORK/pgbench.txt" >&2; exit 1; }
wait
PG_CPU=$(cat "$WORK/pgbench-pg-cpu.txt"); PGB_CPU=$(cat "$WORK/pgbench-client-cpu.txt")
PG_TPS=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$WORK/pgbench.txt" | head -n1)
PG_LAT=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' "$WORK/pgbench.txt" | head -n1)
echo "pgbench: $PG_TPS tps at $CONC clients (latency average $PG_LAT ms); CPU: postgres $PG_CPU%, pgbench $PGB_CPU% (100 = one core)" >&2

# The same transaction at a fixed rate: latency percentiles from the per-transaction log
# (with -R pgbench counts latency from the scheduled start, like paygate-bench's open loop).
pgbench_at_rate() { # rate -> prints "p50 p99"
  rm -f "$WORK"/pgblog*
  (cd "$WORK" && pgbench -n -M prepared -h $PGB_HOST -p $PG_PORT -U postgres -c "$CONC" -j 2 -T "$DUR" \
    -R "$1" -l --log-prefix=pgblog -f "$WORK/create.sql" "$DB" >"$WORK/pgbench-rate.txt" 2>&1)
  cat "$WORK"/pgblog* | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {
    if (NR == 0) { print "null null"; exit }
    i50 = int(NR*0.50); if (i50 < 1) i50 = 1; i99 = int(NR*0.99); if (i99 < 1) i99 = 1;
    printf "%.3f %.3f\n", a[i50]/1000, a[i99]/1000 }'
}
psql "$PG_URL" -qtAc "TRUNCATE payments, payment_events, jobs CASCADE" >/dev/null

# --------------------------------------------------------------------------
log "baseline 2: redis-benchmark (LPUSH/RPUSH)"
redis-benchmark -h 127.0.0.1 -p 6379 -c "$CONC" -n 200000 -t lpush,rpush -q 2>/dev/null | tr '\r' '\n' |
  grep 'requests per second' >"$WORK/redis.txt" || true
cat "$WORK/redis.txt" >&2
REDIS_LPUSH=$(sed -n 's/^LPUSH: \([0-9.]*\) requests.*/\1/p' "$WORK/redis.txt")
redis-cli -h 127.0.0.1 -p 6379 del mylist >/dev/null 2>&1 || true

# --------------------------------------------------------------------------
# The scenarios against one deployment. Args: mode api-url admin-key metrics-urls watch-args...
run_scenarios() {
  local mode=$1 api=$2 key=$3 metrics=$4 sandbox=$5 pausable=$6; shift 6
  local watch=("$@")
  local m=()
  for u in $metrics; do m+=(--metrics "$u"); done

  if want pipeline; then
  log "$mode: pipeline, gateway latency 0 ms, open loop $PIPE_RATE/s for ${PIPE_DUR}s"
  set_latency "$sandbox" 0
  "$BENCH" pipeline --api "$api" --label "$mode" --json "${watch[@]}" --admin-key "$key" "${m[@]}" \
    --rate "$PIPE_RATE" --duration "$PIPE_DUR" --drain 45 >"$OUT/$mode-pipeline-0ms.json"
  summary_line "$OUT/$mode-pipeline-0ms.json"

  log "$mode: pipeline, gateway latency $SLOW_MS ms"
  set_latency "$sandbox" "$SLOW_MS"
  "$BENCH" pipeline --api "$api" --label "$mode" --json "${watch[@]}" --admin-key "$key" "${m[@]}" \
    --rate "$PIPE_RATE" --duration "$PIPE_DUR" --drain 45 >"$OUT/$mode-pipeline-${SLOW_MS}ms.json"
  summary_line "$OUT/$mode-pipeline-${SLOW_MS}ms.json"
  set_latency "$sandbox" 0
  "$BENCH" wait-idle --since "$IDLE_SINCE" --api "$api" --admin-key "$key" --max-wait 30 --json >/dev/null
  fi

  if want webhook; then
  log "$mode: webhook ($WEBHOOK_ORDERS orders; each transaction's first delivery once, then ${DUR}s of redeliveries; closed loop $CONC)"
  "$BENCH" webhook --api "$api" --label "$mode" --json "${watch[@]}" --orders "$WEBHOOK_ORDERS" \
    --setup-concurrency 32 --concurrency "$CONC" --duration "$DUR" --warmup 0 >"$OUT/$mode-webhook.json"
  summary_line "$OUT/$mode-webhook.json"
  fi
  if want payme; then

  log "$mode: payme ($PAYME_ORDERS orders; each paid once by Check/Create/PerformTransaction for at most ${DUR}s, then PerformTransaction x$PAYME_REPEATS; closed loop $CONC)"
  "$BENCH" payme --api "$api" --label "$mode" --json "${watch[@]}" --orders "$PAYME_ORDERS" \
    --setup-concurrency 32 --concurrency "$CONC" --duration "$DUR" --repeats "$PAYME_REPEATS" >"$OUT/$mode-payme.json"
  summary_line "$OUT/$mode-payme.json"
  fi
  if want click; then

  log "$mode: click ($CLICK_ORDERS orders; each paid once by Prepare then Complete for at most ${DUR}s, then Complete x$CLICK_REPEATS; closed loop $CONC)"
  "$BENCH" click --api "$api" --label "$mode" --json "${watch[@]}" --orders "$CLICK_ORDERS" \
    --setup-concurrency 32 --concurrency "$CONC" --duration "$DUR" --repeats "$CLICK_REPEATS" >"$OUT/$mode-click.json"
  summary_line "$OUT/$mode-click.json"
  fi
  want create || return 0

  log "$mode: create /v1/payments, closed loop $CONC"
  "$BENCH" create --api "$api" --label "$mode" --json "${watch[@]}" --route v1 \
    --concurrency "$CONC" --duration "$DUR" >"$OUT/$mode-create-v1.json"
  summary_line "$OUT/$mode-create-v1.json"
  "$BENCH" wait-idle --since "$IDLE_SINCE" --api "$api" --admin-key "$key" --max-wait 45 --json >"$WORK/idle.json"
  echo "  backlog drained: $(jq -c . "$WORK/idle.json")" >&2

  local half
  half=$(jq -r '(.throughput_rps / 2 | floor)' "$OUT/$mode-create-v1.json")
  [ "$half" -ge 1 ] || half=1
  log "$mode: create /v1/payments, open loop at half that rate ($half/s)"
  "$BENCH" create --api "$api" --label "$mode" --json "${watch[@]}" --route v1 \
    --rate "$half" --duration "$DUR" >"$OUT/$mode-create-v1-open.json"
  summary_line "$OUT/$mode-create-v1-open.json"
  "$BENCH" wait-idle --since "$IDLE_SINCE" --api "$api" --admin-key "$key" --max-wait 30 --json >/dev/null

  log "$mode: create seed route (PAYGATE_SEED_WAIT_MS=0, so it acknowledges at once), closed loop $CONC"
  "$BENCH" create --api "$api" --label "$mode" --json "${watch[@]}" --route seed \
    --concurrency "$CONC" --duration "$DUR" >"$OUT/$mode-create-seed.json"
  summary_line "$OUT/$mode-create-seed.json"

  if [ -n "$pausable" ]; then
    # Last, because the backlog it leaves is never drained (the processes stop next).
    log "$mode: create /v1/payments, closed loop $CONC, workers paused (SIGSTOP): the acknowledgement path alone"
    kill -STOP ${pausable//,/ }
    "$BENCH" create --api "$api" --label "$mode-workers-paused" --json "${watch[@]}" --route v1 \
      --concurrency "$CONC" --duration "$DUR" >"$OUT/$mode-create-v1-paused.json"
    summary_line "$OUT/$mode-create-v1-paused.json"
    half=$(jq -r '(.throughput_rps / 2 | floor)' "$OUT/$mode-create-v1-paused.json")
    [ "$half" -ge 1 ] || half=1
    log "$mode: create /v1/payments, open loop at half that rate ($half/s), workers paused"
    "$BENCH" create --api "$api" --label "$mode-workers-paused" --json "${watch[@]}" --route v1 \
      --rate "$half" --duration "$DUR" >"$OUT/$mode-create-v1-paused-open.json"
    summary_line "$OUT/$mode-create-v1-paused-open.json"
    # The seed route's floor (PERFORMANCE.md, "The seed route's floor"): a
    # /v1 create, then the two gateway calls of its worker made by the load
    # generator, nothing else (workers still paused, no autopay callback).
    log "$mode: the seed route's floor: /v1 create + user fetch + gateway-send from the client, closed loop $CONC, workers paused, autopay off"
    set_autopay "$sandbox" false
    "$BENCH" floor --api "$api" --label "$mode-floor" --json "${watch[@]}" --gateway "$sandbox/sandbox/medogram" \
      --concurrency "$CONC" --duration "$DUR" >"$OUT/$mode-floor.json"
    set_autopay "$sandbox" true
    kill -CONT ${pausable//,/ }
    summary_line "$OUT/$mode-floor.json"
  fi
}

# The seed route WITH its bounded wait for the payment URL (woken by the
# payment's change announcement, not polling): the API it is given runs with
# PAYGATE_SEED_WAIT_MS=$SEED_WAIT_MS. Reports how many answers were 201 (with
# the URL) and how many 202 (the wait ran out first). Args: mode api-url watch-args...
seed_wait_scenario() {
  local mode=$1 api=$2; shift 2
  log "$mode: create seed route WITH its wait (PAYGATE_SEED_WAIT_MS=$SEED_WAIT_MS), closed loop $CONC"
  "$BENCH" create --api "$api" --label "$mode-seed-wait" --json "$@" --route seed \
    --concurrency "$CONC" --duration "$DUR" >"$OUT/$mode-create-seed-wait.json"
  summary_line "$OUT/$mode-create-seed-wait.json"
}

# The same with the sandbox's autopay off: every payment above is paid at once
# (its callback and verification run beside the next creates); here only the
# seed route's own work runs. Args: mode api-url sandbox-url watch-args...
seed_wait_unpaid_scenario() {
  local mode=$1 api=$2 sandbox=$3; shift 3
  log "$mode: create seed route WITH its wait, closed loop $CONC, autopay off (nobody pays)"
  set_autopay "$sandbox" false
  "$BENCH" create --api "$api" --label "$mode-seed-wait-unpaid" --json "$@" --route seed \
    --concurrency "$CONC" --duration "$DUR" >"$OUT/$mode-create-seed-wait-unpaid.json"
  set_autopay "$sandbox" true
  # Nobody pays those payments: the waits for an idle system that follow
  # count only payments created after them.
  IDLE_SINCE=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
  summary_line "$OUT/$mode-create-seed-wait-unpaid.json"
}

# Open result pages following payments that do not change: the cost of keeping
# $PAGES pages current, polled every second (the pages' script before the long
# poll) and long-polled (If-None-Match + Prefer: wait=10). Args: mode api-url
# admin-key watch-args...
pages_scenario() {
  local mode=$1 api=$2 key=$3; shift 3
  for pm in poll long; do
    log "$mode: $PAGES open result pages ($pm) for ${PAGES_S}s"
    "$BENCH" pages --api "$api" --label "$mode" --json "$@" --admin-key "$key" \
      --pages "$PAGES" --mode "$pm" --interval 1 --wait 10 --duration "$PAGES_S" \
      >"$OUT/$mode-pages-$pm.json"
  done
}

# The seed route with its wait against a slow gateway, at each of
# $SEED_WAIT_CONNS connections: two gateway calls of $SLOW_MS ms each are its
# floor. Args: mode api-url sandbox-url watch-args...
seed_wait_slow_scenario() {
  local mode=$1 api=$2 sandbox=$3; shift 3
  set_latency "$sandbox" "$SLOW_MS"
  for c in $SEED_WAIT_CONNS; do
    log "$mode: create seed route WITH its wait, gateway $SLOW_MS ms, closed loop $c"
    "$BENCH" create --api "$api" --label "$mode-seed-wait-${SLOW_MS}ms" --json "$@" --route seed \
      --concurrency "$c" --duration "$DUR" >"$OUT/$mode-create-seed-wait-${SLOW_MS}ms-c$c.json"
    summary_line "$OUT/$mode-create-seed-wait-${SLOW_MS}ms-c$c.json"
  done
  set_latency "$sandbox" 0
}

# The seed route with its wait under a backlog: ${BACKLOG_S}s of /v1 creates at
# full speed while the workers are paused (SIGSTOP), so every one of them is
# queued; then the workers resume and the seed route is measured at once
# (closed loop $CONC, gateway 0 ms) while they drain it; then the drain is
# timed. Args: mode ack-api wait-api admin-key pausable-pids watch-args...
seed_backlog_scenario() {
  local mode=$1 api=$2 wait_api=$3 key=$4 pausable=$5; shift 5
  log "$mode: backlog: /v1 creates for ${BACKLOG_S}s, closed loop $CONC, workers paused"
  kill -STOP ${pausable//,/ }
  "$BENCH" create --api "$api" --label "$mode-backlog" --json "$@" --route v1 \
    --concurrency "$CONC" --duration "$BACKLOG_S" --warmup 0 >"$OUT/$mode-backlog-fill.json"
  kill -CONT ${pausable//,/ }
  echo "  queued: $(jq -r .ok "$OUT/$mode-backlog-fill.json") payments" >&2
  log "$mode: create seed route WITH its wait under that backlog, closed loop $CONC"
  "$BENCH" create --api "$wait_api" --label "$mode-seed-wait-backlog" --json "$@" --route seed \
    --concurrency "$CONC" --duration "$DUR" --warmup 0 >"$OUT/$mode-create-seed-wait-backlog.json"
  summary_line "$OUT/$mode-create-seed-wait-backlog.json"
  "$BENCH" wait-idle --since "$IDLE_SINCE" --api "$api" --admin-key "$key" --max-wait 300 --json >"$OUT/$mode-backlog-drain.json"
  echo "  backlog drained: $(jq -c . "$OUT/$mode-backlog-drain.json")" >&2
}

# Changes the sandbox's medogram settings at run time. Args: sandbox-base jq-filter
medogram_config() {
  local cfg
  cfg=$(curl -fsS "$1/sandbox/medogram/_config")
  echo "$cfg" | jq -c "$2" |
    curl -fsS -X PUT -H 'content-type: application/json' --data-binary @- "$1/sandbox/medogram/_config" >/dev/null
}
set_latency() { medogram_config "$1" ".latency_ms = $2 | .autopay = true"; } # sandbox-base ms
set_autopay() { medogram_config "$1" ".autopay = $2"; } # sandbox-base true|false

summary_line() {
  jq -r '[.label, .scenario, (.route // ""), (.loop // ""),
          (if .scenario == "webhook" then "first: rps=\(.groups.first.throughput_rps) p50/p99=\(.groups.first.latency_ms.p50)/\(.groups.first.latency_ms.p99) ms; repeat: rps=\(.groups.repeat.throughput_rps) p50/p99=\(.groups.repeat.latency_ms.p50)/\(.groups.repeat.latency_ms.p99) ms; errors=\(.errors)"
           elif .scenario == "payme" then "payments/s=\(.payments_per_s) paid=\(.orders_paid)/\(.setup.orders_ready) p50/p99 ms: check=\(.calls.CheckPerformTransaction.latency_ms.p50)/\(.calls.CheckPerformTransaction.latency_ms.p99) create=\(.calls.CreateTransaction.latency_ms.p50)/\(.calls.CreateTransaction.latency_ms.p99) perform=\(.calls.PerformTransaction.latency_ms.p50)/\(.calls.PerformTransaction.latency_ms.p99); repeat perform: rps=\(.repeat.throughput_rps // null) p50/p99=\(.repeat.latency_ms.p50 // null)/\(.repeat.latency_ms.p99 // null) ms; errors=\(.errors + (.repeat.errors // 0))"
           elif .scenario == "click" then "payments/s=\(.payments_per_s) paid=\(.orders_paid)/\(.setup.orders_ready) p50/p99 ms: prepare=\(.calls.prepare.latency_ms.p50)/\(.calls.prepare.latency_ms.p99) complete=\(.calls.complete.latency_ms.p50)/\(.calls.complete.latency_ms.p99); repeat complete: rps=\(.repeat.throughput_rps // null) p50/p99=\(.repeat.latency_ms.p50 // null)/\(.repeat.latency_ms.p99 // null) ms; errors=\(.errors + (.repeat.errors // 0))"
           elif .scenario == "pipeline" then "completed/s=\(.completed_per_s) full=\(.completed_per_s_steady) p50/p99 create->completed=\(.create_to_completed_ms.p50)/\(.create_to_completed_ms.p99) ms created=\(.created) completed=\(.completed) failed=\(.failed)"
           else "rps=\(.throughput_rps) p50/p99=\(.latency_ms.p50)/\(.latency_ms.p99) ms errors=\(.errors)\(if .seed_answers then " answers 201 (URL)/202 (pending)=\(.seed_answers.with_payment_url_201)/\(.seed_answers.still_pending_202)" else "" end)" end),
          "cpu=\(.cpu_pct | tostring)"] | join("  ")' "$1" >&2
}

# --------------------------------------------------------------------------
if [ "$ONLY" != "embedded" ]; then
  log "scaled mode: sandbox, api x1, worker x$WORKERS (concurrency $WORKER_CONC each)"
  SB_PORT=$(free_port); API_PORT=$(free_port)
  SANDBOX="http://127.0.0.1:$SB_PORT"
  API="http://127.0.0.1:$API_PORT"
  SCALED_ENV="$WORK/scaled.env"
  cat "$COMMON_ENV" >"$SCALED_ENV"
  cat >>"$SCALED_ENV" <<EOF
PAYMENT_GATEWAY_URL=$SANDBOX/sandbox/medogram
PAYMENT_API_KEY=sandbox-medogram-api-key
PAYGATE_PUBLIC_URL=$API
ATMOS_API_BASE=$SANDBOX/sandbox/atmos
ATMOS_CHECKOUT_BASE=$SANDBOX/sandbox/atmos
ATMOS_CONSUMER_KEY=sandbox-consumer-key
ATMOS_CONSUMER_SECRET=sandbox-consumer-secret
ATMOS_STORE_ID=8157
ATMOS_API_KEY=sandbox-atmos-api-key
PAYGATE_WORKER_CONCURRENCY=$WORKER_CONC
PAYGATE_DB_MAX_CONNECTIONS=16
PAYGATE_SANDBOX_MEDOGRAM_AUTOPAY=true
PAYGATE_SANDBOX_MEDOGRAM_API_KEY=sandbox-medogram-api-key
PAYGATE_SANDBOX_ATMOS_CONSUMER_KEY=sandbox-consumer-key
PAYGATE_SANDBOX_ATMOS_CONSUMER_SECRET=sandbox-consumer-secret
PAYGATE_SANDBOX_ATMOS_STORE_ID=8157
PAYGATE_SANDBOX_ATMOS_API_KEY=sandbox-atmos-api-key
PAYGATE_SANDBOX_ATMOS_CALLBACK_URL=$API/atmos/webhook/
PAYME_ID=5e730e8e0b852a417aa49ceb
PAYME_KEY=sandbox-payme-key-0123456789abcdefgh
PAYME_CHECKOUT_URL=$SANDBOX/sandbox/payme
CLICK_SERVICE_ID=41001
CLICK_MERCHANT_ID=17001
CLICK_SECRET_KEY=sandbox-click-secret-key
CLICK_CHECKOUT_URL=$SANDBOX/sandbox/click/services/pay
EOF
  KEY=$(set -a; . "$SCALED_ENV"; set +a; "$PAYGATE" apikey create --name bench --admin 2>/dev/null)
  { cat "$SCALED_ENV"; echo "PAYGATE_LISTEN=127.0.0.1:$SB_PORT"; } >"$WORK/sandbox.env"
  start sandbox "$WORK/sandbox.env" sandbox; SB_PID=$STARTED
  { cat "$SCALED_ENV"; echo "PAYGATE_LISTEN=127.0.0.1:$API_PORT"; } >"$WORK/api.env"
  start api "$WORK/api.env" api; API_PID=$STARTED
  METRICS=""; WORKER_PIDS=""
  for i in $(seq 1 "$WORKERS"); do
    mp=$(free_port)
    { cat "$SCALED_ENV"; echo "PAYGATE_METRICS_LISTEN=127.0.0.1:$mp"
      echo "PAYGATE_DB_MAX_CONNECTIONS=$WORKER_DB"
      [ -n "$WORKER_DB_PRIO" ] && echo "PAYGATE_DB_PRIORITY_CONNECTIONS=$WORKER_DB_PRIO"; } >"$WORK/worker$i.env"
    start "worker$i" "$WORK/worker$i.env" worker
    METRICS="$METRICS http://127.0.0.1:$mp/metrics"
    WORKER_PIDS="${WORKER_PIDS:+$WORKER_PIDS,}$STARTED"
  done
  wait_http "$SANDBOX/sandbox/medogram/_config"
  wait_http "$API/readyz"
  for u in $METRICS; do wait_http "$u"; done
  # A second API process with the seed route's real wait (the first one
  # acknowledges at once): its waiters are woken over Redis by the workers.
  WAIT_PORT=$(free_port); WAIT_API="http://127.0.0.1:$WAIT_PORT"
  { cat "$SCALED_ENV"; echo "PAYGATE_LISTEN=127.0.0.1:$WAIT_PORT"
    echo "PAYGATE_SEED_WAIT_MS=$SEED_WAIT_MS"
    echo "PAYGATE_API_RUNS_WAITED_JOBS=$API_RUNS_WAITED"
    [ -n "${BENCH_API_WAITED_SLOTS:-}" ] && echo "PAYGATE_WORKER_CONCURRENCY=$BENCH_API_WAITED_SLOTS"; } >"$WORK/api-wait.env"
  start api-wait "$WORK/api-wait.env" api; WAIT_PID=$STARTED
  wait_http "$WAIT_API/readyz"
  WAIT_WATCH=(--watch "api=$WAIT_PID" --watch "workers=$WORKER_PIDS" --watch "sandbox=$SB_PID"
    --watch "postgres=comm:postgres" --watch "redis=comm:redis-server")
  if want seed_wait; then
    seed_wait_scenario scaled "$WAIT_API" "${WAIT_WATCH[@]}"
    seed_wait_unpaid_scenario scaled "$WAIT_API" "$SANDBOX" "${WAIT_WATCH[@]}"
    "$BENCH" wait-idle --since "$IDLE_SINCE" --api "$API" --admin-key "$KEY" --max-wait 45 --json >/dev/null
  fi
  if want seed_slow; then
    seed_wait_slow_scenario scaled "$WAIT_API" "$SANDBOX" "${WAIT_WATCH[@]}"
    "$BENCH" wait-idle --since "$IDLE_SINCE" --api "$API" --admin-key "$KEY" --max-wait 60 --json >/dev/null
  fi
  want backlog && seed_backlog_scenario scaled "$API" "$WAIT_API" "$KEY" "$WORKER_PIDS" "${WAIT_WATCH[@]}"
  want pages && pages_scenario scaled "$API" "$KEY" --watch "api=$API_PID" \
    --watch "workers=$WORKER_PIDS" --watch "postgres=comm:postgres" --watch "redis=comm:redis-server"
  run_scenarios scaled "$API" "$KEY" "$METRICS" "$SANDBOX" "$WORKER_PIDS" \
    --watch "api=$API_PID" --watch "workers=$WORKER_PIDS" --watch "sandbox=$SB_PID" \
    --watch "postgres=comm:postgres" --watch "redis=comm:redis-server"
  stop_all
fi

if [ "$ONLY" != "scaled" ]; then
  log "embedded mode: paygate serve (SQLite, in-process queue, worker pool of $EMB_WORKER_CONC and simulators)"
  mkdir -p "$WORK/embedded"
  SERVE_PORT=$(free_port)
  SERVE="http://127.0.0.1:$SERVE_PORT"
  cat >"$WORK/serve.env" <<EOF
PAYGATE_LISTEN=127.0.0.1:$SERVE_PORT
DATABASE_URL=sqlite://$WORK/embedded/paygate.db
SECRET_KEY=paygate-bench-secret
PAYGATE_SEED_WAIT_MS=0
PAYGATE_SAMPLE_INTERVAL_MS=500
PAYGATE_WORKER_CONCURRENCY=$EMB_WORKER_CONC
PAYGATE_API_RUNS_WAITED_JOBS=$API_RUNS_WAITED
PAYGATE_SANDBOX_MEDOGRAM_AUTOPAY=true
PAYGATE_RATE_LIMIT_PER_SEC=0
PAYGATE_SANDBOX_OPEN_CONTROL=true
RUST_LOG=warn
EOF
  (cd "$WORK/embedded" && env -u DATABASE_URL -u REDIS_URL bash -c "set -a; . '$WORK/serve.env'; set +a; exec '$PAYGATE' serve") \
    >"$WORK/serve.log" 2>&1 &
  SERVE_PID=$!; PIDS+=("$SERVE_PID")
  wait_http "$SERVE/readyz"
  for _ in $(seq 1 50); do grep -q 'admin API key' "$WORK/serve.log" && break; sleep 0.1; done
  EKEY=$(grep -o 'pgk_[A-Za-z0-9_-]*' "$WORK/serve.log" | head -n1)
  run_scenarios embedded "$SERVE" "$EKEY" "$SERVE/metrics" "$SERVE" "" \
    --watch "serve=$SERVE_PID"
  stop_all

  # One process holds the embedded database: the seed route's real wait needs
  # a restart with it (same database; its backlog drained first).
  (cd "$WORK/embedded" && env -u DATABASE_URL -u REDIS_URL bash -c "set -a; . '$WORK/serve.env'; PAYGATE_SEED_WAIT_MS=$SEED_WAIT_MS; set +a; exec '$PAYGATE' serve") \
    >"$WORK/serve-wait.log" 2>&1 &
  SERVE_PID=$!; PIDS+=("$SERVE_PID")
  wait_http "$SERVE/readyz"
  "$BENCH" wait-idle --since "$IDLE_SINCE" --api "$SERVE" --admin-key "$EKEY" --max-wait 60 --json >/dev/null
  want seed_wait && seed_wait_scenario embedded "$SERVE" --watch "serve=$SERVE_PID"
  stop_all
fi

# --------------------------------------------------------------------------
log "summary"
f() { [ -f "$OUT/$1" ] && jq -r "$2" "$OUT/$1" || echo null; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "null" || b == "null" || b == 0) print "-"; else printf "%.2f", a / b }'; }
S_CREATE=$(f scaled-create-v1.json .throughput_rps)
S_PAUSED=$(f scaled-create-v1-paused.json .throughput_rps)
S_PAUSED_PG=$(f scaled-create-v1-paused.json .cpu_pct.postgres)
S_PAUSED_OPEN_RATE=$(f scaled-create-v1-paused-open.json .rate)
S_PAUSED_OPEN_P99=$(f scaled-create-v1-paused-open.json .latency_ms.p99)
E_CREATE=$(f embedded-create-v1.json .throughput_rps)
S_OPEN_RATE=$(f scaled-create-v1-open.json .rate)
S_OPEN_P99=$(f scaled-create-v1-open.json .latency_ms.p99)
E_OPEN_P99=$(f embedded-create-v1-open.json .latency_ms.p99)
read -r PG_HALF_P50 PG_HALF_P99 < <(if [ "$S_OPEN_RATE" != null ]; then pgbench_at_rate "$S_OPEN_RATE"; else echo "null null"; fi)
read -r PG_PHALF_P50 PG_PHALF_P99 < <(if [ "$S_PAUSED_OPEN_RATE" != null ]; then pgbench_at_rate "$S_PAUSED_OPEN_RATE"; else echo "null null"; fi)
S_SEED=$(f scaled-create-seed.json .throughput_rps)
E_SEED=$(f embedded-create-seed.json .throughput_rps)
S_SEED_WAIT=$(f scaled-create-seed-wait.json .throughput_rps)
S_SEED_UNPAID=$(f scaled-create-seed-wait-unpaid.json .throughput_rps)
S_FLOOR=$(f scaled-floor.json .throughput_rps)
S_FLOOR_ERR=$(f scaled-floor.json .errors)
E_SEED_WAIT=$(f embedded-create-seed-wait.json .throughput_rps)
pages_line() { # file -> "requests/s, CPU of the API and PostgreSQL"
  f "$1" '"\(.requests_per_s) req/s, api \(.cpu_pct.api)%, postgres \(.cpu_pct.postgres)%, changed \(.answers.changed), errors \(.answers.errors)"'
}
seed_wait_line() { # file -> "p50/p99 ms, 201 n / 202 m"
  f "$1" '"p50/p99 \(.latency_ms.p50)/\(.latency_ms.p99) ms, answers 201 (URL) \(.seed_answers.with_payment_url_201 // null) / 202 (pending) \(.seed_answers.still_pending_202 // null)"'
}
# "met" when every awk condition given holds ("a >= b" ...), "missed" when one
# fails, "-" when a figure is missing.
verdict() {
  awk -v expr="$*" 'BEGIN {
    n = split(expr, parts, " && ")
    for (i = 1; i <= n; i++) {
      split(parts[i], t, " ")
      if (t[1] == "null" || t[3] == "null" || t[1] == "" || t[3] == "") { print "-"; exit }
      a = t[1] + 0; b = t[3] + 0
      ok = (t[2] == ">=") ? a >= b : (t[2] == "<=") ? a <= b : (t[2] == "<") ? a < b : (t[2] == "==") ? a == b : 0
      if (!ok) { print "missed"; exit }
    }
    print "met" }'
}
SW() { f "scaled-create-seed-wait-${SLOW_MS}ms-c$1.json" "$2"; }
# One line of the CPU budget: what a payment cost each watched process and the
# machine in a scenario (cpu_pct x 10 / rate = ms of one core per payment), and
# the most it may cost for the target's rate on this machine (capacity x 10 /
# rate). "not any of them" is the machine's CPU outside the watched processes
# (kernel threads, interrupts, anything else running). Args: label, JSON file, jq
# path of the rate, the target's rate or null.
budget() {
  [ -f "$OUT/$2" ] || return 0
  jq -r --arg name "$1" --argjson rate "$(f "$2" "$3")" --argjson need "${4:-null}" '
    def ms(pct; rate): if pct == null or rate == null or rate == 0 then "-"
      else (pct * 10 / rate * 100 | round) / 100 | tostring end;
    (.cpu_pct // {}) as $c
    | "\($name): \($rate)/s; "
      + ([$c | to_entries[] | select(.key != "machine" and .key != "machine_capacity")
          | "\(.key) \(ms(.value; $rate))"] | join(", "))
      + ", not any of them \(ms($c.machine - ([$c | to_entries[]
          | select(.key != "machine" and .key != "machine_capacity") | .value] | add); $rate))"
      + "; machine \(ms($c.machine; $rate))"
      + (if $need == null or $c.machine_capacity == null then ""
         else "; \($need | round)/s leaves \(ms($c.machine_capacity; $need))" end)' "$OUT/$2" ||
    echo "$1: -"  # the summary goes on without this line
}

S_SW0_PENDING=$(f scaled-create-seed-wait.json '.seed_answers.still_pending_202 // null')
S_SW0_ERR=$(f scaled-create-seed-wait.json .errors)
S_BL_QUEUED=$(f scaled-backlog-fill.json .ok)
S_BL_RPS=$(f scaled-create-seed-wait-backlog.json .throughput_rps)
S_BL_P99=$(f scaled-create-seed-wait-backlog.json .latency_ms.p99)
S_BL_PENDING=$(f scaled-create-seed-wait-backlog.json '.seed_answers.still_pending_202 // null')
S_BL_ERR=$(f scaled-create-seed-wait-backlog.json .errors)
S_BL_IDLE=$(f scaled-backlog-drain.json 'if .idle then 1 else 0 end')
S_BL_DRAIN=$(f scaled-backlog-drain.json .waited_s)
S_WH_FIRST=$(f scaled-webhook.json .groups.first.throughput_rps)
S_WH_REPEAT=$(f scaled-webhook.json .groups.repeat.throughput_rps)
E_WH_FIRST=$(f embedded-webhook.json .groups.first.throughput_rps)
E_WH_REPEAT=$(f embedded-webhook.json .groups.repeat.throughput_rps)
S_PAYME=$(f scaled-payme.json .payments_per_s)
E_PAYME=$(f embedded-payme.json .payments_per_s)
S_CLICK=$(f scaled-click.json .payments_per_s)
E_CLICK=$(f embedded-click.json .payments_per_s)
# p50/p99 of each call: "check a/b, create c/d, perform e/f, repeated perform g/h".
payme_calls() {
  f "$1" '[(.calls | to_entries[] | "\(.key | sub("Transaction$"; "")) \(.value.latency_ms.p50)/\(.value.latency_ms.p99)"),
           "repeated Perform \(.repeat.latency_ms.p50 // null)/\(.repeat.latency_ms.p99 // null)"] | join(", ")'
}
click_calls() {
  f "$1" '"prepare \(.calls.prepare.latency_ms.p50)/\(.calls.prepare.latency_ms.p99), complete \(.calls.complete.latency_ms.p50)/\(.calls.complete.latency_ms.p99), repeated complete \(.repeat.latency_ms.p50 // null)/\(.repeat.latency_ms.p99 // null)"'
}
# The pipeline's rate once it is full (targets 3a-3c), and beside it the
# whole run's (first create to last completion, which also counts the first
# payment's own create->completed time; PERFORMANCE.md, "The pipeline's rate
# once it is full").
S_PIPE=$(f scaled-pipeline-0ms.json .completed_per_s_steady)
S_PIPE_SLOW=$(f "scaled-pipeline-${SLOW_MS}ms.json" .completed_per_s_steady)
E_PIPE=$(f embedded-pipeline-0ms.json .completed_per_s_steady)
E_PIPE_SLOW=$(f "embedded-pipeline-${SLOW_MS}ms.json" .completed_per_s_steady)
S_PIPE_RUN=$(f scaled-pipeline-0ms.json .completed_per_s)
S_PIPE_SLOW_RUN=$(f "scaled-pipeline-${SLOW_MS}ms.json" .completed_per_s)
E_PIPE_RUN=$(f embedded-pipeline-0ms.json .completed_per_s)
E_PIPE_SLOW_RUN=$(f "embedded-pipeline-${SLOW_MS}ms.json" .completed_per_s)

{
  echo "paygate bench $(date -u +%F) commit $COMMIT$DIRTY: $(nproc) cores, load generator on the same machine, concurrency $CONC, ${DUR}s runs, PostgreSQL sslmode ${SSLMODE:-prefer}"
  printf '%-52s %12s %14s %7s %s\n' "figure" "paygate" "baseline" "ratio" "target"
  row() { printf '%-52s %12s %14s %7s %s\n' "$1" "$2" "$3" "$(ratio "$2" "$3")" "$4"; }
  row "scaled create /v1 (req/s, closed $CONC)" "$S_CREATE" "$PG_TPS" ">=0.60 x pgbench tps"
  row "scaled create /v1, workers paused (req/s)" "$S_PAUSED" "$PG_TPS" "(ack path alone vs pgbench)"
  row "scaled create /v1 p99 ms, open at ${S_OPEN_RATE}/s" "$S_OPEN_P99" "$PG_HALF_P99" "p99 < 25 ms (baseline: pgbench -R same rate)"
  row "scaled create /v1 p99 ms, open at ${S_PAUSED_OPEN_RATE}/s, paused" "$S_PAUSED_OPEN_P99" "$PG_PHALF_P99" "p99 < 25 ms (workers paused)"
  row "scaled create seed route (req/s)" "$S_SEED" "$PG_TPS" "(pgbench tps)"
  row "scaled create /v1 vs Redis LPUSH (req/s)" "$S_CREATE" "$REDIS_LPUSH" "(redis-benchmark)"
  row "scaled webhook first deliveries (req/s)" "$S_WH_FIRST" "$PG_TPS" "(pgbench tps)"
  row "scaled webhook repeats (req/s)" "$S_WH_REPEAT" "$PG_TPS" "(pgbench tps)"
  row "scaled pipeline completed/s, gateway 0 ms" "$S_PIPE_RUN" "500" "(whole run; targets below)"
  row "scaled pipeline completed/s, gateway ${SLOW_MS} ms" "$S_PIPE_SLOW_RUN" "$S_PIPE_RUN" "(whole run; its 0 ms figure)"
  row "embedded create /v1 (req/s, closed $CONC)" "$E_CREATE" "$S_CREATE" ">= 0.50 x scaled create"
  row "embedded create /v1 p99 ms, open at half rate" "$E_OPEN_P99" "null" ""
  row "embedded create seed route (req/s)" "$E_SEED" "$S_SEED" "(scaled)"
  row "embedded webhook first deliveries (req/s)" "$E_WH_FIRST" "$S_WH_FIRST" "(scaled)"
  row "embedded webhook repeats (req/s)" "$E_WH_REPEAT" "$S_WH_REPEAT" "(scaled)"
  row "scaled payme payments/s (3 RPC calls each)" "$S_PAYME" "$PG_TPS" "(pgbench tps)"
  row "embedded payme payments/s (3 RPC calls each)" "$E_PAYME" "$S_PAYME" "(scaled)"
  row "scaled click payments/s (Prepare + Complete)" "$S_CLICK" "$PG_TPS" "(pgbench tps)"
  row "embedded click payments/s (Prepare + Complete)" "$E_CLICK" "$S_CLICK" "(scaled)"
  row "embedded pipeline completed/s, gateway 0 ms" "$E_PIPE_RUN" "$S_PIPE_RUN" "(whole run; scaled)"
  row "embedded pipeline completed/s, gateway ${SLOW_MS} ms" "$E_PIPE_SLOW_RUN" "$E_PIPE_RUN" "(whole run; its 0 ms figure)"
  row "scaled seed route with its wait (req/s)" "$S_SEED_WAIT" "$S_SEED" "(seed route, no wait)"
  row "embedded seed route with its wait (req/s)" "$E_SEED_WAIT" "$E_SEED" "(seed route, no wait)"
  echo
  echo "the seed route's contract and the pipeline (issue 16 targets; scaled = api + worker x$WORKERS, concurrency $WORKER_CONC; embedded concurrency $EMB_WORKER_CONC):"
  printf '%-66s %-44s %s\n' "target" "figure" "verdict"
  trow() { printf '%-66s %-44s %s\n' "$1" "$2" "$3"; }
  trow "seed route with its wait, gw 0 ms, closed $CONC: >= 0.60 x /v1 create" \
    "$S_SEED_WAIT/s = $(ratio "$S_SEED_WAIT" "$S_CREATE") x $S_CREATE; 202s $S_SW0_PENDING, errors $S_SW0_ERR" \
    "$(verdict "$(ratio "$S_SEED_WAIT" "$S_CREATE" | sed 's/^-$/null/') >= 0.6 && $S_SW0_PENDING == 0 && $S_SW0_ERR == 0")"
  trow "  the same, nobody paying (no callback, no verification)" \
    "$S_SEED_UNPAID/s = $(ratio "$S_SEED_UNPAID" "$S_CREATE") x" "(what the payer's payment costs)"
  trow "  its floor: /v1 create + the worker's 2 gateway calls, nothing else" \
    "$S_FLOOR/s = $(ratio "$S_FLOOR" "$S_CREATE") x $S_CREATE; errors $S_FLOOR_ERR" "(the most target 1 can be)"
  for c in $SEED_WAIT_CONNS; do
    rps=$(SW "$c" .throughput_rps); p50=$(SW "$c" .latency_ms.p50); err=$(SW "$c" .errors)
    pend=$(SW "$c" '.seed_answers.still_pending_202 // null')
    case $c in
      64) want="p50 <= 415 ms"; cond="$p50 <= 415" ;;
      256) want=">= 550/s, p50 <= 430 ms"; cond="$rps >= 550 && $p50 <= 430" ;;
      1024) want="zero errors, >= 550/s"; cond="$err == 0 && $rps >= 550" ;;
      *) want="(no target)"; cond="" ;;
    esac
    trow "seed route with its wait, gw ${SLOW_MS} ms, closed $c: $want" \
      "$rps/s p50 $p50 ms; 202s $pend, errors $err" "$([ -n "$cond" ] && verdict "$cond" || echo -)"
  done
  trow "scaled pipeline, gw 0 ms: >= 500 payments/s" "$S_PIPE/s (whole run $S_PIPE_RUN/s)" "$(verdict "$S_PIPE >= 500")"
  trow "scaled pipeline, gw ${SLOW_MS} ms: >= 0.9 x gw 0 ms" \
    "$S_PIPE_SLOW/s = $(ratio "$S_PIPE_SLOW" "$S_PIPE") x (whole run $S_PIPE_SLOW_RUN/s = $(ratio "$S_PIPE_SLOW_RUN" "$S_PIPE_RUN") x)" \
    "$(verdict "$(ratio "$S_PIPE_SLOW" "$S_PIPE" | sed 's/^-$/null/') >= 0.9")"
  trow "embedded pipeline, gw 0 ms: >= 500 payments/s" "$E_PIPE/s (whole run $E_PIPE_RUN/s)" "$(verdict "$E_PIPE >= 500")"
  trow "embedded pipeline, gw ${SLOW_MS} ms: >= 0.9 x gw 0 ms" \
    "$E_PIPE_SLOW/s = $(ratio "$E_PIPE_SLOW" "$E_PIPE") x (whole run $E_PIPE_SLOW_RUN/s = $(ratio "$E_PIPE_SLOW_RUN" "$E_PIPE_RUN") x)" \
    "$(verdict "$(ratio "$E_PIPE_SLOW" "$E_PIPE" | sed 's/^-$/null/') >= 0.9")"
  trow "under a backlog >= 10000: seed route all 201, p99 < 1000 ms, drains" \
    "queued $S_BL_QUEUED; $S_BL_RPS/s p99 $S_BL_P99 ms; 202s $S_BL_PENDING; drained in ${S_BL_DRAIN}s" \
    "$(verdict "$S_BL_QUEUED >= 10000 && $S_BL_P99 < 1000 && $S_BL_PENDING == 0 && $S_BL_ERR == 0 && $S_BL_IDLE == 1")"
  echo
  echo "CPU per payment (ms of one core; each process, then the machine) against what the target leaves (the whole machine's capacity / the target's rate):"
  budget "1. seed route with its wait, gw 0 ms" scaled-create-seed-wait.json .throughput_rps \
    "$(awk -v c="$S_CREATE" 'BEGIN { if (c == "null" || c == "") print "null"; else print 0.6 * c }')"
  budget "   the same, nobody paying" scaled-create-seed-wait-unpaid.json .throughput_rps null
  budget "   /v1 create, workers running (its yardstick)" scaled-create-v1.json .throughput_rps null
  for c in $SEED_WAIT_CONNS; do
    case $c in 256 | 1024) need=550 ;; *) need=null ;; esac
    budget "2. seed route with its wait, gw ${SLOW_MS} ms, closed $c" \
      "scaled-create-seed-wait-${SLOW_MS}ms-c$c.json" .throughput_rps "$need"
  done
  budget "3a. scaled pipeline, gw 0 ms" scaled-pipeline-0ms.json .completed_per_s 500
  budget "3c. embedded pipeline, gw 0 ms" embedded-pipeline-0ms.json .completed_per_s 500
  echo
  echo "pgbench at ${S_OPEN_RATE}/s: p50 ${PG_HALF_P50} ms, p99 ${PG_HALF_P99} ms; at ${S_PAUSED_OPEN_RATE}/s: p50 ${PG_PHALF_P50} ms, p99 ${PG_PHALF_P99} ms"
  echo "payme per call p50/p99 ms: scaled: $(payme_calls scaled-payme.json); embedded: $(payme_calls embedded-payme.json)"
  echo "click per call p50/p99 ms: scaled: $(click_calls scaled-click.json); embedded: $(click_calls embedded-click.json)"
  echo "seed route with its ${SEED_WAIT_MS} ms wait: scaled: $(seed_wait_line scaled-create-seed-wait.json); embedded: $(seed_wait_line embedded-create-seed-wait.json)"
  echo "$PAGES open result pages, scaled: polled every 1 s: $(pages_line scaled-pages-poll.json); long poll: $(pages_line scaled-pages-long.json)"
  echo "PostgreSQL CPU: ${PG_CPU}% of a core for $PG_TPS pgbench tps; ${S_PAUSED_PG}% for $S_PAUSED creates/s (workers paused)"
  echo "Redis LPUSH: $REDIS_LPUSH req/s (redis-benchmark -c $CONC)"
  echo "results (JSON, with CPU per process): $OUT"
  echo "wall time: $((SECONDS - START_TIME)) s"
} | tee "$OUT/summary.txt"
