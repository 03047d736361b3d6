#!/usr/bin/env bash
# The cost of metrics (issue 18), run by bench/run.sh (`make bench`) or on its own:
#
#   BENCH_SKIP_BUILD=1 bash bench/metrics.sh
#
# 1. webhook throughput with METRICS=on against METRICS=off: the same load as the main
#    webhook run (new signed texts from BENCH_USERS users, BENCH_CONNECTIONS connections,
#    BENCH_DURATION s), on a fresh SQLite file each, alternating BENCH_METRICS_ROUNDS
#    times; the medians are compared (target: on within 5 % of off);
# 2. GET /metrics latency with 100,000 memories (seeded through the webhook) and 10,000
#    jobs (inserted beside them: done, queued, dead and running) in the database:
#    BENCH_SCRAPES scrapes one after another on one connection, p50/p95/max (target:
#    p95 <= 20 ms).
#
# Writes KEY=VALUE lines to $BENCH_METRICS_OUT (default: bench-results/metrics.kv) and
# prints a summary. Rate limits are off: this measures throughput, not pacing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
DURATION=${BENCH_DURATION:-15}
CONNECTIONS=${BENCH_CONNECTIONS:-16}
USERS=${BENCH_USERS:-50}
ROUNDS=${BENCH_METRICS_ROUNDS:-3}
SEED_COUNT=${BENCH_SEED_COUNT:-100000}
JOB_COUNT=${BENCH_JOB_COUNT:-10000}
SCRAPES=${BENCH_SCRAPES:-500}
OUT=${BENCH_METRICS_OUT:-$ROOT/bench-results/metrics.kv}
TARGET_DROP_PCT=5
TARGET_SCRAPE_P95_MS=20

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SERVER_BIN=$TARGET_DIR/release/whatsapp-memory
LOADGEN=$TARGET_DIR/release/examples/loadgen
log() { printf '==> %s\n' "$*" >&2; }

if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    log "building whatsapp-memory and examples/loadgen (release)"
    cargo build --release --quiet --bin whatsapp-memory --example loadgen
fi
for bin in "$SERVER_BIN" "$LOADGEN"; do [[ -x $bin ]] || { echo "missing $bin" >&2; exit 1; }; done

WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/whatsapp-memory-metrics.XXXXXX")
SERVER_PID=
cleanup() {
    local rc=$?
    if [[ -n $SERVER_PID ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    [[ ${BENCH_KEEP:-0} == 1 ]] && echo "kept $WORK" >&2 || rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT

hex16() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }
TOKEN=$(hex16)
ACCOUNT_SID=AC$(hex16)
METRICS_TOKEN=$(hex16)
PORT=$("$LOADGEN" free-port)
BASE=http://127.0.0.1:$PORT

# start_server DB [VAR=value...]: `serve` on $BASE over a fresh SQLite file DB.
start_server() {
    local db=$1
    shift
    (
        cd "$WORK"
        export DATABASE_URL="sqlite://$db?mode=rwc" APP_HOST=127.0.0.1 APP_PORT=$PORT ENV=production \
            API_KEYS=$TOKEN-api TWILIO_AUTH_TOKEN=$TOKEN TWILIO_ACCOUNT_SID=$ACCOUNT_SID \
            TWILIO_WHATSAPP_NUMBER=+14155238886 PUBLIC_BASE_URL=$BASE STORAGE_DIR=$WORK/storage \
            SEMANTIC_SEARCH=off OCR=off TRANSCRIBER=none USER_RATE_LIMIT=off API_RATE_LIMIT=off \
            METRICS_TOKEN=$METRICS_TOKEN RUST_LOG=${RUST_LOG:-warn}
        exec env "$@" "$SERVER_BIN" serve
    ) >"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    "$LOADGEN" wait-ready --url "$BASE/readyz" --timeout 60 || { tail -20 "$WORK/server.log" >&2; exit 1; }
}
stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}
kv() { awk -F= -v k="$2" '$1 == k { print substr($0, length(k) + 2) }' "$WORK/$1.kv" 2>/dev/null || true; }
COMMON=(--url "$BASE/webhook" --token "$TOKEN" --account-sid "$ACCOUNT_SID" --to-number +14155238886)

# 1. Throughput, metrics on and off, alternating.
for round in $(seq "$ROUNDS"); do
    for mode in off on; do
        db=$WORK/webhook-$mode-$round.db
        log "webhook throughput, METRICS=$mode, round $round"
        start_server "$db" METRICS=$mode
        "$LOADGEN" webhook "${COMMON[@]}" --verify-db "$db" --duration "$DURATION" --connections "$CONNECTIONS" \
            --users "$USERS" --out "$WORK/webhook_${mode}_$round.kv" >/dev/null || true
        stop_server
    done
done
median() { for round in $(seq "$ROUNDS"); do kv "webhook_$1_$round" rps; done | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
RPS_ON=$(median on)
RPS_OFF=$(median off)
ALL_ON=$(for r in $(seq "$ROUNDS"); do kv "webhook_on_$r" rps; done | paste -sd' ')
ALL_OFF=$(for r in $(seq "$ROUNDS"); do kv "webhook_off_$r" rps; done | paste -sd' ')
DROP_PCT=$(awk -v on="$RPS_ON" -v off="$RPS_OFF" 'BEGIN { printf "%.1f", (off - on) / off * 100 }')

# 2. A scrape with 100,000 memories and 10,000 jobs.
db=$WORK/scrape.db
start_server "$db"
log "seeding $SEED_COUNT memories through the webhook"
"$LOADGEN" seed "${COMMON[@]}" --verify-db "$db" --count "$SEED_COUNT" --connections "$CONNECTIONS" --user 9999 \
    --out "$WORK/seed.kv" >/dev/null || true
log "inserting $JOB_COUNT jobs beside them, and timing $SCRAPES scrapes of /metrics"
python3 - "$db" "$JOB_COUNT" "$PORT" "$METRICS_TOKEN" "$SCRAPES" >"$WORK/scrape.kv" <<'PY'
import http.client, sqlite3, sys, time
db, jobs, port, token, scrapes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
con = sqlite3.connect(db, timeout=30)
far = "2099-01-01T00:00:00.000000+00:00"
past = "2026-01-01T00:00:00.000000+00:00"
kinds = ["media.ingest", "whatsapp.send", "mem0.index", "transcribe", "ocr"]
rows = []
for i in range(jobs):
    # 90 % done, then queued (due far ahead: no worker takes them), dead and running.
    state = "done" if i % 10 < 9 else ["queued", "dead", "queued", "running"][i % 4]
    lease = far if state == "running" else None
    rows.append((f"bench.{kinds[i % len(kinds)]}", "{}", state, 1, 5, far, lease, past, past, 1))
with con:
    con.executemany(
        "INSERT INTO jobs (kind, payload, state, attempts, max_attempts, due_at, lease_until, created_at, updated_at, priority) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
memories = con.execute("SELECT count(*) FROM memories").fetchone()[0]
total_jobs = con.execute("SELECT count(*) FROM jobs").fetchone()[0]
connection = http.client.HTTPConnection("127.0.0.1", port)
headers = {"Authorization": f"Bearer {token}"}
times, size = [], 0
for i in range(scrapes + 20):
    started = time.perf_counter()
    connection.request("GET", "/metrics", headers=headers)
    response = connection.getresponse()
    body = response.read()
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status == 200, response.status
    if i >= 20:  # the first scrapes warm the connection and the pool
        times.append(elapsed)
        size = len(body)
times.sort()
pick = lambda q: times[min(len(times) - 1, int(q * len(times)))]
print(f"memories={memories}\njobs={total_jobs}\nscrapes={len(times)}\nbytes={size}")
print(f"p50_ms={pick(0.5):.2f}\np95_ms={pick(0.95):.2f}\nmax_ms={times[-1]:.2f}")
PY
stop_server

P95=$(kv scrape p95_ms)
# A negative cost (metrics on measured faster than off: run-to-run noise) is no cost.
verdict() { awk -v a="$1" -v op="$2" -v b="$3" 'BEGIN { if (a !~ /^-?[0-9.]+$/) { print "MISS"; exit } ok = (op == "<=") ? a <= b : a >= b; print ok ? "PASS" : "MISS" }'; }
mkdir -p "$(dirname "$OUT")"
{
    echo "webhook_rps_metrics_on=$RPS_ON"
    echo "webhook_rps_metrics_off=$RPS_OFF"
    echo "webhook_rps_on_runs=$ALL_ON"
    echo "webhook_rps_off_runs=$ALL_OFF"
    echo "metrics_drop_pct=$DROP_PCT"
    echo "scrape_memories=$(kv scrape memories)"
    echo "scrape_jobs=$(kv scrape jobs)"
    echo "scrape_bytes=$(kv scrape bytes)"
    echo "scrape_p50_ms=$(kv scrape p50_ms)"
    echo "scrape_p95_ms=$P95"
    echo "scrape_max_ms=$(kv scrape max_ms)"
} >"$OUT"
{
    echo "metrics (issue 18): webhook throughput, $ROUNDS alternating runs each, medians"
    printf '  metrics on    %s req/s (runs: %s)\n' "$RPS_ON" "$ALL_ON"
    printf '  metrics off   %s req/s (runs: %s)\n' "$RPS_OFF" "$ALL_OFF"
    printf '  cost          %s %%      target <= %-6s %s\n' "$DROP_PCT" "$TARGET_DROP_PCT" "$(verdict "$DROP_PCT" '<=' "$TARGET_DROP_PCT")"
    echo "GET /metrics with $(kv scrape memories) memories and $(kv scrape jobs) jobs ($(kv scrape bytes) bytes)"
    printf '  p50 ms        %s\n' "$(kv scrape p50_ms)"
    printf '  p95 ms        %-10s target <= %-6s %s\n' "$P95" "$TARGET_SCRAPE_P95_MS" "$(verdict "$P95" '<=' "$TARGET_SCRAPE_P95_MS")"
    printf '  max ms        %s\n' "$(kv scrape max_ms)"
} | tee "${OUT%.kv}.txt"
