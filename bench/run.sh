#!/usr/bin/env bash
# The benchmark the issue asks for; `make bench` runs it. See bench/README.md.
#
#   bash bench/run.sh
#
# 1. builds the server and examples/loadgen.rs in release;
# 2. starts `whatsapp-memory serve` on a fresh SQLite file, signature checking on;
# 3. drives POST /webhook for 15 s over 16 connections: new signed text messages from 50 users;
#    then checks that the rows in the file match the 200 answers, one for one;
# 4. seeds 100,000 memories for one more user and times 2,000 `/search` messages from them;
# 5. stops that server and starts another on a fresh SQLite file, with its Twilio API on a
#    loopback fake (bench/fake_twilio.py) and 2 job workers; drives POST /webhook for 15 s
#    over 16 connections with new signed photo messages (NumMedia=1) while the workers
#    fetch, decode and reply; checks every 200 has its interaction and its media job;
# 6. voice notes: a third server whose fake Twilio serves the WhatsApp voice note; drives
#    POST /webhook with voice-note messages from BENCH_VOICE_USERS users (each user's first
#    note is new and is decoded and transcribed by the local Whisper model, the rest are
#    duplicates) while the workers transcribe; waits for the transcriptions, reads the
#    server's peak RSS, then times one note's decode + transcription on a quiet machine
#    (examples/transcribe_latency.rs);
# 6b. text in photos: renders a 1080 x 2400 phone screenshot (ImageMagick) and writes a
#    10-page PDF with a text layer, times their reading on one thread
#    (examples/ocr_latency.rs), then a fourth server (OCR on, MiniLM and Whisper configured)
#    whose fake Twilio serves the screenshot: POST /webhook with photo messages from
#    BENCH_OCR_USERS users (each user's first photo is new and recognised, the rest are
#    duplicates) while the workers recognise them; waits for the recognitions and reads the
#    server's peak RSS;
# 7. times 2,000 near-duplicate photo lookups for one user holding 100,000 images
#    (examples/near_duplicate.rs, fresh SQLite; also PostgreSQL if BENCH_POSTGRES_URL is set);
# 7b. with BENCH_POSTGRES_URL: the text-webhook load of step 3 on PostgreSQL (a fresh
#    database per run, alternating with SQLite's runs), then "two servers on PostgreSQL":
#    two `serve` processes on one database, the load split over both, one killed (-9)
#    half-way; every acknowledged message is looked up (lost / duplicated counts);
# 7c. reminders: 1,000 due within one minute, sent by the job queue's workers, lateness
#    p50/p99; then 100,000 pending and the workers' idle CPU (examples/reminder_delivery.rs);
# 7d. metrics (bench/metrics.sh): webhook throughput with metrics on and off, and
#    GET /metrics latency with 100,000 memories and 10,000 jobs;
# 7e. the soak (bench/soak.sh): SOAK_SECONDS (600) of mixed traffic (texts, redeliveries,
#    commands, photos, voice notes, REST) at half step 3's rate, on a fresh server; errors,
#    p50/p99 and the server's RSS per minute; fails on any error, RSS growth over 5 % after
#    minute 1, or a later minute's p99 over twice minute 2's (or 5 ms above it);
# 8. prints a summary with PASS/MISS per target and writes it to bench-results/latest.txt.
#
# Exit status: non-zero when a request failed or rows do not match the answers (or the
# server did not start); a missed performance target is reported, not fatal.
#
# Knobs (environment): BENCH_DURATION=15 BENCH_CONNECTIONS=16 BENCH_USERS=50
# BENCH_SEED_COUNT=100000 BENCH_SEARCH_COUNT=2000 BENCH_SEARCH_CONNECTIONS=1
# BENCH_MEDIA_DURATION=$BENCH_DURATION BENCH_MEDIA_CONNECTIONS=$BENCH_CONNECTIONS
# BENCH_MEDIA_USERS=$BENCH_USERS BENCH_MEDIA_WORKERS=2 BENCH_PHOTO=<a JPEG>
# BENCH_VOICE_DURATION=$BENCH_DURATION BENCH_VOICE_USERS=20 BENCH_VOICE_NOTE=<an Ogg/Opus note>
# BENCH_OCR_USERS=20 BENCH_WHISPER_MODEL=models/ggml-tiny.en.bin BENCH_NEAR_DUP_IMAGES=100000 BENCH_NEAR_DUP_LOOKUPS=2000 BENCH_POSTGRES_URL=<server URL>
# BENCH_ONLY=webhook (only the text-webhook runs: SQLite, and PostgreSQL when set)
# BENCH_ONLY=search (only step 4: words, then hybrid, at BENCH_SEED_COUNT memories)
# BENCH_ONLY=ocr (only step 6b: OCR of a screenshot and a PDF, the webhook while recognising)
# BENCH_ONLY=soak (only the soak, after a capacity run of its mix for its rate unless SOAK_RATE
# is set) SOAK_SECONDS=600 SOAK_RATE=<requests/s> SOAK_WINDOW=60 SOAK_CONNECTIONS=32
# SOAK_USERS=1000 SOAK_MEDIA_USERS=20 SOAK_MIX=<kind=weight,...>
# BENCH_SERVER_BIN=<a whatsapp-memory binary> (another commit's server, same load and checks)
# BENCH_SKIP_BUILD=1 (use the binaries already built) BENCH_KEEP=1 (keep the temp dir with
# the databases and server logs) BENCH_TMPDIR=<dir for the temp dir> RUST_LOG=warn.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

DURATION=${BENCH_DURATION:-15}
CONNECTIONS=${BENCH_CONNECTIONS:-16}
USERS=${BENCH_USERS:-50}
SEED_COUNT=${BENCH_SEED_COUNT:-100000}
SEARCH_COUNT=${BENCH_SEARCH_COUNT:-2000}
SEARCH_CONNECTIONS=${BENCH_SEARCH_CONNECTIONS:-1}
SEARCH_USER=9999 # whatsapp:+15550009999, outside the throughput run's users 0000-0049
MEDIA_DURATION=${BENCH_MEDIA_DURATION:-$DURATION}
MEDIA_CONNECTIONS=${BENCH_MEDIA_CONNECTIONS:-$CONNECTIONS}
MEDIA_USERS=${BENCH_MEDIA_USERS:-$USERS}
MEDIA_WORKERS=${BENCH_MEDIA_WORKERS:-2}
PHOTO=${BENCH_PHOTO:-$ROOT/../shared/samples/photo_penne.jpg}
VOICE_DURATION=${BENCH_VOICE_DURATION:-$DURATION}
VOICE_USERS=${BENCH_VOICE_USERS:-20}
VOICE_NOTE=${BENCH_VOICE_NOTE:-$ROOT/../shared/samples/voice_note_basil.ogg}
WHISPER_MODEL=${BENCH_WHISPER_MODEL:-$ROOT/models/ggml-tiny.en.bin}
NEAR_DUP_IMAGES=${BENCH_NEAR_DUP_IMAGES:-100000}
NEAR_DUP_LOOKUPS=${BENCH_NEAR_DUP_LOOKUPS:-2000}
POSTGRES_URL=${BENCH_POSTGRES_URL:-}
# 1: every phase; 0 (BENCH_ONLY=webhook): the text-webhook runs alone, for a quick comparison.
FULL=1
[[ ${BENCH_ONLY:-} == webhook ]] && FULL=0
[[ ${BENCH_ONLY:-} == soak ]] && FULL=0
[[ ${BENCH_ONLY:-} == search ]] && FULL=0
[[ ${BENCH_ONLY:-} == ocr ]] && FULL=0
SEMANTIC_ROUNDS=${BENCH_SEMANTIC_ROUNDS:-3}

# Targets from the issue.
TARGET_RPS=3000
TARGET_P99_MS=20
TARGET_SEARCH_P95_MS=5
TARGET_MEDIA_P99_MS=50
TARGET_NEAR_DUP_P99_MS=1
TARGET_API_P95_MS=5
TARGET_TRANSCRIBE_MS=1500
TARGET_RSS_MB=400
TARGET_HYBRID_P95_MS=20
TARGET_SEMANTIC_DROP_PCT=10
TARGET_CATEGORY_RECALL=0.8
TARGET_OCR_MS=1500
TARGET_PDF_MS=200
TARGET_OCR_WEBHOOK_P99_MS=20
TARGET_OCR_RSS_MB=450
# Issue 16: PostgreSQL with group commit, and SQLite no slower than before it.
TARGET_PG_RPS=4000
TARGET_PG_P99_MS=20
TARGET_SQLITE_RPS=6400
TARGET_SQLITE_P99_MS=10
OCR_USERS=${BENCH_OCR_USERS:-20}

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SERVER_BIN=${BENCH_SERVER_BIN:-$TARGET_DIR/release/whatsapp-memory}
LOADGEN=$TARGET_DIR/release/examples/loadgen
NEAR_DUP=$TARGET_DIR/release/examples/near_duplicate
API_LATENCY=$TARGET_DIR/release/examples/api_latency
TRANSCRIBE=$TARGET_DIR/release/examples/transcribe_latency
EMBED_THROUGHPUT=$TARGET_DIR/release/examples/embed_throughput
CATEGORY_RECALL=$TARGET_DIR/release/examples/category_recall
SEED_VECTORS=$TARGET_DIR/release/examples/seed_vectors
OCR_LATENCY=$TARGET_DIR/release/examples/ocr_latency
REMINDER_BENCH=$TARGET_DIR/release/examples/reminder_delivery
EMBED_MODEL_DIR=${BENCH_EMBED_MODEL_DIR:-$ROOT/models/all-minilm-l6-v2}
RESULTS_DIR=$ROOT/bench-results

log() { printf '==> %s\n' "$*" >&2; }

if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]] && [[ ${BENCH_ONLY:-} == search ]]; then
    log "building whatsapp-memory, loadgen, api_latency and seed_vectors (release)"
    cargo build --release --quiet --bin whatsapp-memory --example loadgen --example api_latency --example seed_vectors
    scripts/embed-model/provision.sh
elif [[ ${BENCH_SKIP_BUILD:-0} != 1 ]] && [[ ${BENCH_ONLY:-} == ocr ]]; then
    log "building whatsapp-memory, loadgen and ocr_latency (release)"
    cargo build --release --quiet --bin whatsapp-memory --example loadgen --example ocr_latency
    scripts/ocr-tools.sh test
    scripts/whisper-model/provision.sh
    scripts/embed-model/provision.sh
elif [[ ${BENCH_SKIP_BUILD:-0} != 1 ]] && ((!FULL)); then
    log "building whatsapp-memory and loadgen (release)"
    cargo build --release --quiet --bin whatsapp-memory --example loadgen
elif [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    log "building whatsapp-memory and the bench examples (release)"
    cargo build --release --quiet --bin whatsapp-memory --example loadgen --example near_duplicate \
        --example api_latency --example transcribe_latency --example embed_throughput --example seed_vectors \
        --example category_recall --example ocr_latency --example reminder_delivery
    scripts/ocr-tools.sh test
    scripts/whisper-model/provision.sh
    scripts/embed-model/provision.sh
fi
command -v python3 >/dev/null || { echo "python3 is needed for bench/fake_twilio.py" >&2; exit 1; }
NEEDED=("$SERVER_BIN" "$LOADGEN")
[[ ${BENCH_ONLY:-} == search ]] && NEEDED+=("$API_LATENCY" "$SEED_VECTORS")
[[ ${BENCH_ONLY:-} == ocr ]] && NEEDED+=("$OCR_LATENCY")
((FULL)) && NEEDED+=("$NEAR_DUP" "$API_LATENCY" "$TRANSCRIBE" "$EMBED_THROUGHPUT" "$SEED_VECTORS" "$CATEGORY_RECALL" "$OCR_LATENCY" "$REMINDER_BENCH")
for bin in "${NEEDED[@]}"; do
    [[ -x $bin ]] || { echo "missing $bin" >&2; exit 1; }
done

WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/whatsapp-memory-bench.XXXXXX")
DB=$WORK/bench.db
mkdir -p "$WORK/storage"
SERVER_PID=
SERVER2_PID=
SERVER_LOG=$WORK/server.log
FAKE_PID=
# PostgreSQL databases this run created (dropped at exit unless BENCH_KEEP=1).
PG_DATABASES=()

# stop_pid PID [SECONDS]: SIGTERM, then SIGKILL after SECONDS (default 5); only our children.
stop_pid() {
    local pid=$1 tenths=$((${2:-5} * 10))
    [[ -n $pid ]] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq "$tenths"); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    stop_pid "$SERVER_PID"
    stop_pid "$SERVER2_PID"
    stop_pid "$FAKE_PID"
    if [[ ${BENCH_KEEP:-0} != 1 ]]; then
        for name in "${PG_DATABASES[@]}"; do
            psql "$POSTGRES_URL" -qAtX -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null 2>&1 || true
        done
    elif ((${#PG_DATABASES[@]} > 0)); then
        echo "kept the PostgreSQL databases ${PG_DATABASES[*]}" >&2
    fi
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then
        echo "kept $WORK (bench.db, media.db, server*.log, fake_twilio.*, *.kv)" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

server_log_tail() {
    echo "--- last lines of $(basename "$SERVER_LOG") ---" >&2
    tail -n 40 "$SERVER_LOG" >&2 || true
}

# A random token and account: the server checks every signature against them.
hex16() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }
TOKEN=$(hex16)
ACCOUNT_SID=AC$(hex16)
WHATSAPP_NUMBER=+14155238886
PORT=$("$LOADGEN" free-port)
BASE=http://127.0.0.1:$PORT
# Nothing listens there: the Cloud API's replies fail fast and wait in the queue (the
# Twilio text phases answer inline and send nothing).
META_GRAPH=http://127.0.0.1:$("$LOADGEN" free-port)

# start_server DB STORAGE LOG [VAR=value...]: starts `serve` on $BASE with signatures on,
# the extra variables added, and waits up to 60 s for GET /readyz (exit 1 if it fails).
# DB is an SQLite file, or a postgres:// URL.
start_server() {
    local db=$1 storage=$2 url
    SERVER_LOG=$3
    shift 3
    url="sqlite://$db?mode=rwc"
    [[ $db == postgres* ]] && url=$db
    log "starting the server on $BASE with a fresh database $db"
    # From the temp dir, so that a developer's .env in the repo cannot change the setup.
    (
        cd "$WORK"
        export DATABASE_URL="$url" APP_HOST=127.0.0.1 APP_PORT=$PORT \
            ENV=production API_KEYS=$TOKEN-api TWILIO_AUTH_TOKEN=$TOKEN TWILIO_ACCOUNT_SID=$ACCOUNT_SID \
            TWILIO_WHATSAPP_NUMBER=$WHATSAPP_NUMBER PUBLIC_BASE_URL=$BASE \
            META_APP_SECRET=$TOKEN-meta META_VERIFY_TOKEN=$TOKEN-verify META_ACCESS_TOKEN=$TOKEN-graph \
            META_PHONE_NUMBER_ID=106540352242922 META_GRAPH_BASE_URL=$META_GRAPH \
            STORAGE_DIR=$storage EMBED_MODEL_DIR=$EMBED_MODEL_DIR RUST_LOG=${RUST_LOG:-warn} \
            USER_RATE_LIMIT=off API_RATE_LIMIT=off # throughput, not pacing: 50 users send thousands each
        exec env "$@" "$SERVER_BIN" serve
    ) >"$SERVER_LOG" 2>&1 &
    SERVER_PID=$!

    local ready_by=$((SECONDS + 60))
    until "$LOADGEN" wait-ready --url "$BASE/readyz" --timeout 1 2>/dev/null; do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "the server exited during start-up" >&2
            server_log_tail
            exit 1
        fi
        if ((SECONDS >= ready_by)); then
            echo "GET /readyz did not answer 200 within 60 s" >&2
            server_log_tail
            exit 1
        fi
    done
    log "server ready (pid $SERVER_PID)"
}

# start_fake_twilio NAME FLAG FILE [FLAG...]: the fake Twilio API serving FILE (--jpeg or
# --ogg; the soak gives both, and its own --max-seconds) on $FAKE_BASE, its counts in
# $WORK/NAME.kv once stopped.
start_fake_twilio() {
    local name=$1
    log "starting the fake Twilio API (bench/fake_twilio.py $2)"
    TWILIO_AUTH_TOKEN=$TOKEN python3 "$ROOT/bench/fake_twilio.py" --account-sid "$ACCOUNT_SID" \
        --port-file "$WORK/$name.port" --stats-file "$WORK/$name.kv" \
        --max-seconds $((MEDIA_DURATION + VOICE_DURATION + 900)) "${@:2}" >"$WORK/$name.log" 2>&1 &
    FAKE_PID=$!
    local fake_by=$((SECONDS + 10))
    until [[ -s $WORK/$name.port ]]; do
        if ! kill -0 "$FAKE_PID" 2>/dev/null || ((SECONDS >= fake_by)); then
            echo "the fake Twilio API did not start" >&2
            cat "$WORK/$name.log" >&2 || true
            exit 1
        fi
        sleep 0.1
    done
    FAKE_BASE=http://127.0.0.1:$(<"$WORK/$name.port")
}

WORDS_DB=$WORK/words.db
COMMON=(--url "$BASE/webhook" --token "$TOKEN" --account-sid "$ACCOUNT_SID"
    --to-number "$WHATSAPP_NUMBER" --verify-db "$WORDS_DB")
FAILED=()

# run_phase NAME LOADGEN-ARGS...: runs one loadgen mode, results in $WORK/NAME.kv.
run_phase() {
    local name=$1 rc=0
    shift
    log "$name"
    "$LOADGEN" "$@" --out "$WORK/$name.kv" || rc=$?
    if ((rc == 3)); then
        FAILED+=("$name: failed requests or rows that do not match the answers")
    elif ((rc != 0)); then
        FAILED+=("$name: loadgen exited with status $rc")
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        FAILED+=("$name: the server died")
        server_log_tail
        return 1
    fi
}

# kv PHASE KEY: one value from a phase's results ("n/a" when missing).
kv() {
    local v=
    [[ -f $WORK/$1.kv ]] && v=$(awk -F= -v k="$2" '$1 == k { print substr($0, length(k) + 2) }' "$WORK/$1.kv")
    echo "${v:-n/a}"
}
# verdict VALUE OP TARGET: PASS or MISS (MISS when VALUE is not a number).
verdict() {
    awk -v a="$1" -v op="$2" -v b="$3" 'BEGIN {
        if (a !~ /^[0-9.]+$/) { print "MISS"; exit }
        ok = (op == ">=") ? (a + 0 >= b + 0) : (a + 0 <= b + 0)
        print (ok ? "PASS" : "MISS") }'
}

# search_phases SUFFIX: /search over the chat and the REST API for the seeded user.
search_phases() {
    local suffix=$1 rc=0
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        expect=()
        [[ $(kv seed pass) == true ]] && expect=(--expect-user-memories "$SEED_COUNT")
        run_phase "search$suffix" search "${COMMON[@]}" --count "$SEARCH_COUNT" \
            --connections "$SEARCH_CONNECTIONS" --user "$SEARCH_USER" "${expect[@]}" || true
    fi
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        log "REST API: GET /memories?query= and /memories/list for the same user"
        BENCH_API_KEY="$TOKEN-api" "$API_LATENCY" --base "$BASE" --user "1555000$SEARCH_USER" \
            --count "$SEARCH_COUNT" --out "$WORK/api$suffix.kv" || rc=$?
        ((rc == 0)) || FAILED+=("api$suffix: api_latency exited with status $rc")
    fi
}

# jobs_done DB KIND: how many jobs of KIND are done in the SQLite file DB (read-only).
jobs_done() {
    python3 - "$1" "$2" <<'PY'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=5)
print(db.execute("SELECT count(*) FROM jobs WHERE kind = ? AND state = 'done'", (sys.argv[2],)).fetchone()[0])
PY
}

# Text in photos: a rendered phone screenshot and a 10-page text PDF, timed on one thread,
# then a server recognising BENCH_OCR_USERS users' screenshots while the webhook is loaded.
# ocr_phase: runs it (OCR_RAN=1 once it has), or says why it cannot.
OCR_RAN=0
ocr_phase() {
    if ! command -v convert >/dev/null || ! command -v pdftotext >/dev/null; then
        log "OCR phase skipped: ImageMagick (convert) or poppler (pdftotext) is missing"
        return 0
    fi
    OCR_RAN=1
    SHOT=$WORK/screenshot.png
    FONT=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
    convert -size 1080x2400 xc:'#ece5dd' -fill '#075e54' -draw 'rectangle 0,0 1080,170' \
        -font "$FONT" -pointsize 40 -fill white -annotate +40+105 'Home Network' \
        -fill '#dcf8c6' -draw 'roundrectangle 40,230 1040,900 24,24' -fill '#111111' -pointsize 34 \
        -annotate +70+310 'WIFI Bluebird-5G password maple-orange-tiger-42' \
        -annotate +70+380 'Router admin page is behind the kitchen shelf' -pointsize 24 \
        -annotate +70+450 'Booking reference QX7HPL for the Lisbon flight on Friday' \
        -annotate +70+510 'Dentist appointment moved to Thursday at 9:30' -pointsize 16 \
        -annotate +70+570 'Receipt total 42.50 paid with card ending 1234 at Corner Bakery' \
        -annotate +70+620 'Pick up the parcel from the post office before Saturday noon' \
        -fill '#f0f0f0' -draw 'rectangle 0,2260 1080,2400' -fill '#075e54' -pointsize 26 \
        -annotate +60+2345 'Chats Status Calls' "$SHOT"
    PDF=$WORK/ten-pages.pdf
    python3 - "$PDF" <<'PY'
import sys
pages = [f"Page {n}: invoice line {n} for the garden shed, delivery on Monday, reference QX{n}HPL" for n in range(1, 11)]
objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
           ("<< /Type /Pages /Kids [%s] /Count %d >>" % (" ".join(f"{4 + 2 * i} 0 R" for i in range(10)), 10)).encode(),
           b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
for i, text in enumerate(pages):
    content = ("BT /F1 11 Tf 72 720 Td " + " ".join(f"({text}) Tj 0 -14 Td" for _ in range(45)) + " ET").encode()
    objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>".encode())
    objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
out, offsets = b"%PDF-1.4\n", []
for number, body in enumerate(objects, 1):
    offsets.append(len(out))
    out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
xref = len(out)
out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode() + b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
open(sys.argv[1], "wb").write(out)
PY
    log "OCR of a phone screenshot and a 10-page text PDF (examples/ocr_latency)"
    "$OCR_LATENCY" --image "$SHOT" --pdf "$PDF" --runs 5 --out "$WORK/ocr.kv" >/dev/null ||
        FAILED+=("ocr: ocr_latency failed or read no text")

    OCR_DB=$WORK/ocr.db
    mkdir -p "$WORK/ocr-storage"
    start_fake_twilio fake_ocr --jpeg "$SHOT"
    PORT=$("$LOADGEN" free-port)
    BASE=http://127.0.0.1:$PORT
    start_server "$OCR_DB" "$WORK/ocr-storage" "$WORK/server-ocr.log" \
        TWILIO_API_BASE_URL="$FAKE_BASE" WORKERS="$MEDIA_WORKERS" TRANSCRIBER=whisper \
        WHISPER_MODEL_PATH="$WHISPER_MODEL" OCR=on
    run_phase ocr_webhook media --url "$BASE/webhook" --token "$TOKEN" --account-sid "$ACCOUNT_SID" \
        --to-number "$WHATSAPP_NUMBER" --verify-db "$OCR_DB" --media-base "$FAKE_BASE" \
        --duration "$MEDIA_DURATION" --connections "$MEDIA_CONNECTIONS" --users "$OCR_USERS" || true
    log "waiting for one recognition per user (at most 300 s)"
    recognised() { jobs_done "$OCR_DB" media.ocr; }
    ocr_by=$((SECONDS + 300))
    while (($(recognised) < OCR_USERS)) && ((SECONDS < ocr_by)); do sleep 1; done
    OCR_RECOGNISED=$(recognised)
    OCR_HWM_MB=$(awk '/^VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$SERVER_PID/status" 2>/dev/null || echo n/a)
    log "stopping the OCR server and the fake Twilio API"
    stop_pid "$SERVER_PID" 15
    SERVER_PID=
    stop_pid "$FAKE_PID"
    FAKE_PID=
    if [[ $OCR_RECOGNISED != "$OCR_USERS" ]]; then
        FAILED+=("ocr: $OCR_RECOGNISED recognitions done, expected one per user ($OCR_USERS)")
    fi
}

# ocr_summary: the OCR phase's block of the summary.
ocr_summary() {
    if ((!OCR_RAN)); then
        echo "(OCR phase skipped: ImageMagick or poppler missing)"
        echo
        return 0
    fi
    op50=$(kv ocr image_p50_ms)
    pp50=$(kv ocr pdf_p50_ms)
    owp99=$(kv ocr_webhook p99_ms)
    echo "text in photos: a rendered 1080 x 2400 phone screenshot ($(kv ocr image_words) words read) and a 10-page text PDF, $(kv ocr runs) runs each, one thread, quiet machine"
    printf '  OCR p50 ms    %-10s target <= %-6s %s (max %s)\n' "$op50" "$TARGET_OCR_MS" "$(verdict "$op50" '<=' "$TARGET_OCR_MS")" "$(kv ocr image_max_ms)"
    printf '  PDF p50 ms    %-10s target <= %-6s %s (max %s; %s characters, pdftotext in a child process)\n' "$pp50" "$TARGET_PDF_MS" \
        "$(verdict "$pp50" '<=' "$TARGET_PDF_MS")" "$(kv ocr pdf_max_ms)" "$(kv ocr pdf_chars)"
    echo "POST /webhook with a screenshot: $(kv ocr_webhook elapsed_s) s, $MEDIA_CONNECTIONS connections, $OCR_USERS users, $MEDIA_WORKERS workers recognising meanwhile (OCR on, MiniLM loaded, Whisper configured)"
    printf '  p50 ms        %s\n' "$(kv ocr_webhook p50_ms)"
    printf '  p99 ms        %-10s target <= %-6s %s\n' "$owp99" "$TARGET_OCR_WEBHOOK_P99_MS" "$(verdict "$owp99" '<=' "$TARGET_OCR_WEBHOOK_P99_MS")"
    printf '  answers       %s x 200, %s failed; rows %s; %s screenshots recognised\n' "$(kv ocr_webhook ok)" \
        "$(kv ocr_webhook errors)" "$(kv ocr_webhook verify)" "$OCR_RECOGNISED"
    printf '  server RSS MB %-10s target <= %-6s %s (peak, Tesseract and MiniLM working; the voice phase above adds Whisper)\n' \
        "$OCR_HWM_MB" "$TARGET_OCR_RSS_MB" "$(verdict "$OCR_HWM_MB" '<=' "$TARGET_OCR_RSS_MB")"
    echo
}

# BENCH_ONLY=ocr: the OCR phase alone (step 6b), for a quick look at recognition speed,
# the webhook while screenshots are recognised, and the server's peak RSS.
ocr_alone() {
    ocr_phase
    {
        echo "whatsapp-memory OCR phase, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commit"), $(nproc) cores"
        echo
        ocr_summary
    } | tee "$WORK/ocr-summary.txt"
    ((${#FAILED[@]} == 0)) || { printf '  - %s\n' "${FAILED[@]}"; exit 1; }
    exit 0
}
[[ ${BENCH_ONLY:-} == ocr ]] && ocr_alone

# The soak's functions; BENCH_ONLY=soak runs it alone and exits here.
# shellcheck source=bench/soak.sh
source "$ROOT/bench/soak.sh"
[[ ${BENCH_ONLY:-} == soak ]] && soak_alone

# BENCH_ONLY=search: step 4 alone, for a quick look at search latency after a change to
# ranking: 100,000 memories for one user, /search and the REST search by words, then the
# same with their vectors (hybrid).
search_alone() {
    start_server "$WORDS_DB" "$WORK/storage" "$WORK/server-words.log" SEMANTIC_SEARCH=off
    run_phase seed seed "${COMMON[@]}" --count "$SEED_COUNT" \
        --connections "$CONNECTIONS" --user "$SEARCH_USER" || true
    search_phases _words
    stop_pid "$SERVER_PID" 15
    SERVER_PID=
    "$SEED_VECTORS" --database-url "sqlite://$WORDS_DB" --user "1555000$SEARCH_USER" \
        --model-dir "$EMBED_MODEL_DIR" --out "$WORK/vectors.kv" >/dev/null || FAILED+=("seed_vectors failed")
    start_server "$WORDS_DB" "$WORK/storage" "$WORK/server-hybrid.log"
    search_phases ""
    stop_pid "$SERVER_PID" 15
    SERVER_PID=
    echo "search, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commit")"
    printf '/search by words   p50 %s  p95 %s  p99 %s ms (target p95 <= %s: %s)\n' "$(kv search_words p50_ms)" \
        "$(kv search_words p95_ms)" "$(kv search_words p99_ms)" "$TARGET_SEARCH_P95_MS" \
        "$(verdict "$(kv search_words p95_ms)" '<=' "$TARGET_SEARCH_P95_MS")"
    printf '/search hybrid     p50 %s  p95 %s  p99 %s ms (target p95 <= %s: %s)\n' "$(kv search p50_ms)" \
        "$(kv search p95_ms)" "$(kv search p99_ms)" "$TARGET_HYBRID_P95_MS" \
        "$(verdict "$(kv search p95_ms)" '<=' "$TARGET_HYBRID_P95_MS")"
    ((${#FAILED[@]} == 0)) || { printf '  - %s\n' "${FAILED[@]}"; exit 1; }
    exit 0
}
[[ ${BENCH_ONLY:-} == search ]] && search_alone

# The baseline: words only (SEMANTIC_SEARCH=off), its webhook throughput, then 100,000
# memories for one user and search by words.
if ((FULL)); then
start_server "$WORDS_DB" "$WORK/storage" "$WORK/server-words.log" SEMANTIC_SEARCH=off
run_phase webhook_words webhook "${COMMON[@]}" --duration "$DURATION" \
    --connections "$CONNECTIONS" --users "$USERS" || true
# Meta's Cloud API webhook under the same load: answered once the delivery is stored,
# rows counted once the workers processed every delivery.
run_phase cloud cloud --url "$BASE/whatsapp/cloud" --token "$TOKEN" --app-secret "$TOKEN-meta" \
    --verify-db "$WORDS_DB" --duration "$DURATION" --connections "$CONNECTIONS" --users "$USERS" || true
if kill -0 "$SERVER_PID" 2>/dev/null; then
    run_phase seed seed "${COMMON[@]}" --count "$SEED_COUNT" \
        --connections "$CONNECTIONS" --user "$SEARCH_USER" || true
fi
search_phases _words
log "stopping the server"
stop_pid "$SERVER_PID" 15
SERVER_PID=

# Semantic search (the default): the same memories, each given a vector, then the same
# searches on a server with SEMANTIC_SEARCH on.
log "vectors for the seeded user's memories (examples/seed_vectors)"
"$SEED_VECTORS" --database-url "sqlite://$WORDS_DB" --user "1555000$SEARCH_USER" --model-dir "$EMBED_MODEL_DIR" \
    --out "$WORK/vectors.kv" >/dev/null || FAILED+=("seed_vectors failed")
start_server "$WORDS_DB" "$WORK/storage" "$WORK/server-hybrid.log"
search_phases ""
log "stopping the server"
stop_pid "$SERVER_PID" 15
SERVER_PID=
fi

# pg_fresh: creates an empty database on BENCH_POSTGRES_URL's server; its URL in PG_DB_URL.
pg_fresh() {
    local name
    name=wm_bench_$(hex16 | cut -c1-12)
    psql "$POSTGRES_URL" -qAtX -v ON_ERROR_STOP=1 -c "CREATE DATABASE $name" >/dev/null
    PG_DATABASES+=("$name")
    PG_DB_URL=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' \
        "$POSTGRES_URL" "$name")
}
WEBHOOK_MODES=(off on)
if [[ -n $POSTGRES_URL ]]; then
    if command -v psql >/dev/null; then
        WEBHOOK_MODES+=(pg)
    else
        FAILED+=("postgres: psql (the PostgreSQL client) is needed for the PostgreSQL webhook phases")
    fi
fi

# Webhook throughput with semantic search on (every message is also queued for embedding,
# which waits while the service is busy) against the same load with it off. One run each
# differs by up to ~15% on this host from run to run, so the two alternate,
# $SEMANTIC_ROUNDS times each, each on a fresh file, and their medians are compared.
# With BENCH_POSTGRES_URL, the same load (semantic search on) on PostgreSQL takes its turn
# in each round, on a fresh database, so both engines are measured under the same
# conditions; rows are checked there as in the file.
for round in $(seq "$SEMANTIC_ROUNDS"); do
    for mode in "${WEBHOOK_MODES[@]}"; do
        DB=$WORK/webhook-$mode-$round.db
        verify=(--verify-db "$DB")
        if [[ $mode == pg ]]; then
            pg_fresh
            DB=$PG_DB_URL
            verify=(--verify-url "$DB")
        fi
        extra=()
        [[ $mode == off ]] && extra=(SEMANTIC_SEARCH=off)
        start_server "$DB" "$WORK/storage" "$WORK/server-webhook-$mode-$round.log" "${extra[@]}"
        COMMON=(--url "$BASE/webhook" --token "$TOKEN" --account-sid "$ACCOUNT_SID"
            --to-number "$WHATSAPP_NUMBER" "${verify[@]}")
        run_phase "webhook_${mode}_$round" webhook "${COMMON[@]}" --duration "$DURATION" \
            --connections "$CONNECTIONS" --users "$USERS" || true
        if [[ $mode == on ]]; then
            EMBEDDED_DURING_LOAD=$(python3 - "$DB" <<'PY'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=5)
done = db.execute("SELECT count(*) FROM memory_embeddings").fetchone()[0]
queued = db.execute("SELECT count(*) FROM embed_queue").fetchone()[0]
print(f"{done} embedded during the load, {queued} memories in the embedding queue at its end")
PY
) || EMBEDDED_DURING_LOAD=n/a
        fi
        log "stopping the server"
        stop_pid "$SERVER_PID" 15
        SERVER_PID=
    done
done
# The round whose throughput is the median of its mode stands for it.
median_round() {
    for round in $(seq "$SEMANTIC_ROUNDS"); do echo "$(kv "webhook_$1_$round" rps) $round"; done |
        sort -g | awk '{ r[NR] = $2 } END { print r[int((NR + 1) / 2)] }'
}
cp "$WORK/webhook_on_$(median_round on).kv" "$WORK/webhook.kv"
cp "$WORK/webhook_off_$(median_round off).kv" "$WORK/webhook_off.kv"
PG_RAN=0
[[ " ${WEBHOOK_MODES[*]} " == *" pg "* ]] && PG_RAN=1 && cp "$WORK/webhook_pg_$(median_round pg).kv" "$WORK/webhook_pg.kv"

# Two servers on PostgreSQL: two `serve` processes on one fresh database, half the
# connections on each, and the first killed (-9) half-way through. Every sid either one
# answered 200 is then looked up: lost = acknowledged but without its interaction and
# memory, duplicated = a message stored twice or a memory saved twice for one message.
if ((PG_RAN)); then
    pg_fresh
    TWO_DB=$PG_DB_URL
    start_server "$TWO_DB" "$WORK/storage" "$WORK/server-two-a.log"
    SERVER2_PID=$SERVER_PID
    BASE_A=$BASE
    PORT=$("$LOADGEN" free-port)
    BASE=http://127.0.0.1:$PORT
    start_server "$TWO_DB" "$WORK/storage" "$WORK/server-two-b.log"
    BASE_B=$BASE
    half=$(((CONNECTIONS + 1) / 2))
    log "two servers on PostgreSQL: $half connections on each for $DURATION s, the first killed (-9) at $((DURATION / 2)) s"
    two_load() { # NAME BASE [ARGS...]
        local name=$1 base=$2
        shift 2
        "$LOADGEN" webhook --url "$base/webhook" --token "$TOKEN" --account-sid "$ACCOUNT_SID" \
            --to-number "$WHATSAPP_NUMBER" --duration "$DURATION" --connections "$half" --users "$USERS" \
            --acked-out "$WORK/$name.acked" --out "$WORK/$name.kv" "$@" >"$WORK/$name.log" 2>&1
    }
    # The killed server's connections fail after the kill; that is the point.
    two_load two_a "$BASE_A" --allow-errors &
    LOAD_A=$!
    two_load two_b "$BASE_B" &
    LOAD_B=$!
    sleep "$((DURATION / 2))"
    kill -9 "$SERVER2_PID" 2>/dev/null || FAILED+=("two servers: the first server had died before its kill")
    wait "$SERVER2_PID" 2>/dev/null || true
    SERVER2_PID=
    rc=0
    wait "$LOAD_A" || rc=$?
    ((rc == 0)) || FAILED+=("two servers: the load on the killed server exited with status $rc")
    rc=0
    wait "$LOAD_B" || rc=$?
    ((rc == 0)) || FAILED+=("two servers: the survivor did not answer every request (loadgen status $rc, see two_b.log)")
    cat "$WORK/two_a.acked" "$WORK/two_b.acked" >"$WORK/two.acked" 2>/dev/null || true
    TWO_CHECK=$(psql "$TWO_DB" -qAtX -v ON_ERROR_STOP=1 -F ' ' <<SQL
CREATE TEMP TABLE acked (sid text PRIMARY KEY);
\copy acked FROM '$WORK/two.acked'
SELECT (SELECT count(*) FROM acked),
       (SELECT count(*) FROM acked a WHERE NOT EXISTS (SELECT 1 FROM interactions i JOIN memories m
            ON m.interaction_id = i.id WHERE i.twilio_message_sid = a.sid AND i.direction = 'inbound')),
       (SELECT count(*) - count(DISTINCT twilio_message_sid) FROM interactions WHERE direction = 'inbound')
       + (SELECT count(*) FROM (SELECT interaction_id FROM memories WHERE interaction_id IS NOT NULL
            GROUP BY interaction_id HAVING count(*) > 1) twice),
       (SELECT count(*) FROM interactions WHERE direction = 'inbound');
SQL
) || TWO_CHECK="n/a n/a n/a n/a"
    read -r TWO_ACKED TWO_LOST TWO_DUPLICATED TWO_STORED <<<"$TWO_CHECK"
    log "stopping the surviving server"
    stop_pid "$SERVER_PID" 15
    SERVER_PID=
    if [[ $TWO_LOST != 0 || $TWO_DUPLICATED != 0 ]]; then
        FAILED+=("two servers: $TWO_LOST acknowledged messages lost, $TWO_DUPLICATED duplicated")
    fi
fi

if ((FULL)); then
# Metrics on against off, and a scrape at 100,000 memories (bench/metrics.sh, own servers).
if ((FULL)); then
    BENCH_SKIP_BUILD=1 BENCH_METRICS_OUT="$WORK/metrics.kv" bash "$ROOT/bench/metrics.sh" >/dev/null ||
        FAILED+=("metrics: bench/metrics.sh failed")
fi
log "embedding throughput and query latency (examples/embed_throughput)"
"$EMBED_THROUGHPUT" --model-dir "$EMBED_MODEL_DIR" --fixture "$ROOT/tests/fixtures/paraphrase_search.json" \
    --threads 1 --out "$WORK/embed.kv" >/dev/null || FAILED+=("embed_throughput failed")
log "search-by-meaning recall of the category and paraphrase sets (examples/category_recall)"
"$CATEGORY_RECALL" --model-dir "$EMBED_MODEL_DIR" --categories "$ROOT/tests/fixtures/category_search.json" \
    --paraphrases "$ROOT/tests/fixtures/paraphrase_search.json" \
    --holdout "$ROOT/tests/fixtures/category_search_holdout.json" --out "$WORK/recall.kv" >/dev/null ||
    FAILED+=("category_recall failed")
fi

# Media: a second server on a fresh file, whose Twilio API is the loopback fake.
if ((FULL)); then
MEDIA_DB=$WORK/media.db
mkdir -p "$WORK/media-storage"
if [[ -f $PHOTO ]]; then
    PHOTO_NOTE="$(basename "$PHOTO"), $(($(wc -c <"$PHOTO") / 1024)) KB"
else
    log "no sample photo at $PHOTO: generating a stand-in JPEG"
    PHOTO=$WORK/photo.jpg
    "$LOADGEN" sample-jpeg --out "$PHOTO"
    PHOTO_NOTE="generated stand-in, $(($(wc -c <"$PHOTO") / 1024)) KB"
fi
start_fake_twilio fake_twilio --jpeg "$PHOTO"
PORT=$("$LOADGEN" free-port)
BASE=http://127.0.0.1:$PORT
start_server "$MEDIA_DB" "$WORK/media-storage" "$WORK/server-media.log" \
    TWILIO_API_BASE_URL="$FAKE_BASE" WORKERS="$MEDIA_WORKERS"
run_phase media media --url "$BASE/webhook" --token "$TOKEN" --account-sid "$ACCOUNT_SID" \
    --to-number "$WHATSAPP_NUMBER" --verify-db "$MEDIA_DB" --media-base "$FAKE_BASE" \
    --duration "$MEDIA_DURATION" --connections "$MEDIA_CONNECTIONS" --users "$MEDIA_USERS" || true
# The workers lag behind the load by design: the backlog is reported, not waited for.
log "stopping the server and the fake Twilio API"
stop_pid "$SERVER_PID" 15
SERVER_PID=
stop_pid "$FAKE_PID"
FAKE_PID=
# fake NAME: one count of the fake Twilio API ("n/a" when missing).
fake() { kv fake_twilio "$1"; }
# positive VALUE: true when VALUE is a whole number above 0.
positive() { [[ $1 =~ ^[0-9]+$ ]] && (($1 > 0)); }
if [[ ! -f $WORK/fake_twilio.kv ]]; then
    FAILED+=("media: the fake Twilio API left no counts")
fi
if positive "$(fake cdn_with_authorization)"; then
    FAILED+=("media: credentials reached the CDN ($(fake cdn_with_authorization) requests)")
fi
if positive "$(fake unauthorized)"; then
    FAILED+=("media: the fake Twilio API refused $(fake unauthorized) requests as unauthorized")
fi
if positive "$(kv media media_jobs_dead)"; then
    FAILED+=("media: $(kv media media_jobs_dead) media jobs dead-lettered (see server-media.log)")
fi
if [[ $(kv media media_jobs_done) == 0 ]]; then
    FAILED+=("media: no media job was done during the load (did the workers fetch anything?)")
fi
fi

# Voice notes: a third server, its fake Twilio serving the voice note, local Whisper.
VOICE_RAN=0
if ((FULL)) && [[ -f $VOICE_NOTE && -f $WHISPER_MODEL ]]; then
    VOICE_RAN=1
    VOICE_DB=$WORK/voice.db
    mkdir -p "$WORK/voice-storage"
    start_fake_twilio fake_voice --ogg "$VOICE_NOTE"
    PORT=$("$LOADGEN" free-port)
    BASE=http://127.0.0.1:$PORT
    start_server "$VOICE_DB" "$WORK/voice-storage" "$WORK/server-voice.log" \
        TWILIO_API_BASE_URL="$FAKE_BASE" WORKERS="$MEDIA_WORKERS" TRANSCRIBER=whisper \
        WHISPER_MODEL_PATH="$WHISPER_MODEL" RUST_LOG="${RUST_LOG:-warn},whatsapp_memory::adapters::whisper=info"
    run_phase voice media --url "$BASE/webhook" --token "$TOKEN" --account-sid "$ACCOUNT_SID" \
        --to-number "$WHATSAPP_NUMBER" --verify-db "$VOICE_DB" --media-base "$FAKE_BASE" \
        --content-type audio/ogg --duration "$VOICE_DURATION" --connections "$MEDIA_CONNECTIONS" \
        --users "$VOICE_USERS" || true
    # The media backlog is not waited for (as with photos); each user's first note is near
    # its head, and transcriptions are claimed before new media, so they finish meanwhile.
    log "waiting for one transcription per user (at most 300 s)"
    transcribed() { jobs_done "$VOICE_DB" voice.transcribe; }
    voice_by=$((SECONDS + 300))
    while (($(transcribed) < VOICE_USERS)) && ((SECONDS < voice_by)); do sleep 1; done
    VOICE_TRANSCRIBED=$(transcribed)
    VOICE_RSS_MB=$(awk '/^VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$SERVER_PID/status" 2>/dev/null || echo n/a)
    VOICE_HWM_MB=$(awk '/^VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$SERVER_PID/status" 2>/dev/null || echo n/a)
    # The server's own timing of each transcription (decode excluded), from its log.
    VOICE_JOB_MS=$({ grep -o 'transcribed a recording.*' "$WORK/server-voice.log" || true; } |
        { grep -o 'elapsed_ms=[0-9]*' || true; } | cut -d= -f2 | sort -n | awk '{ v[NR] = $1 } END { if (NR) printf "p50 %d, max %d (%d runs)", v[int((NR + 1) / 2)], v[NR], NR; else print "n/a" }')
    log "stopping the voice server and the fake Twilio API"
    stop_pid "$SERVER_PID" 15
    SERVER_PID=
    stop_pid "$FAKE_PID"
    FAKE_PID=
    if [[ $VOICE_TRANSCRIBED != "$VOICE_USERS" ]]; then
        FAILED+=("voice: $VOICE_TRANSCRIBED transcriptions done, expected one per user ($VOICE_USERS)")
    fi
    log "transcription latency (examples/transcribe_latency)"
    "$TRANSCRIBE" --model "$WHISPER_MODEL" --note "$VOICE_NOTE" --runs 5 --out "$WORK/transcribe.kv" >/dev/null ||
        FAILED+=("voice: transcribe_latency failed or heard nothing")
else
    log "voice phase skipped: no voice note at $VOICE_NOTE or no model at $WHISPER_MODEL"
fi

((FULL)) && ocr_phase

# near_dup NAME DATABASE-URL: times the near-duplicate lookup, results in $WORK/NAME.kv.
near_dup() {
    local name=$1 url=$2 rc=0
    log "$name"
    "$NEAR_DUP" --database-url "$url" --images "$NEAR_DUP_IMAGES" --lookups "$NEAR_DUP_LOOKUPS" \
        --out "$WORK/$name.kv" || rc=$?
    if ((rc == 3)); then
        FAILED+=("$name: a near duplicate was not found")
    elif ((rc != 0)); then
        FAILED+=("$name: near_duplicate exited with status $rc")
    fi
}
if ((FULL)); then
    near_dup near_dup "sqlite://$WORK/near_duplicate.db?mode=rwc"
    log "reminders"
    "$REMINDER_BENCH" --database-url "sqlite://$WORK/reminders.db?mode=rwc" --out "$WORK/reminders.kv" ||
        FAILED+=("reminders: reminder_delivery exited with status $?")
    if [[ -n $POSTGRES_URL ]]; then
        near_dup near_dup_pg "$POSTGRES_URL"
    fi
fi

# The soak, last: at half the maximum rate of its own mix (measured first, on its own server).
((FULL)) && soak_phase

rps=$(kv webhook rps)
p99=$(kv webhook p99_ms)
words_rps=$(kv webhook_off rps)
all_rps() { for round in $(seq "$SEMANTIC_ROUNDS"); do printf '%s ' "$(kv "webhook_$1_$round" rps)"; done; }
drop=$(awk -v on="$rps" -v off="$words_rps" \
    'BEGIN { if (on ~ /^[0-9.]+$/ && off + 0 > 0) { d = (off - on) / off * 100; printf "%.1f", (d < 0 ? 0 : d) } else print "n/a" }')
sp95=$(kv search p95_ms)
wp95=$(kv search_words p95_ms)
mp99=$(kv media p99_ms)
media_s=$(kv media elapsed_s)
media_done=$(kv media media_jobs_done)
media_rate=$(awk -v d="$media_done" -v s="$media_s" \
    'BEGIN { if (d ~ /^[0-9]+$/ && s + 0 > 0) printf "%.1f", d / s; else print "n/a" }')
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commit")
mkdir -p "$RESULTS_DIR"
{
    echo "whatsapp-memory benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $commit, $(nproc) cores"
    echo
    echo "POST /webhook: $(kv webhook elapsed_s) s, $CONNECTIONS connections, $USERS users, new signed text messages, fresh SQLite, semantic search on (the default); the median of $SEMANTIC_ROUNDS runs"
    printf '  requests/s    %-10s target >= %-6s %s\n' "$rps" "$TARGET_RPS" "$(verdict "$rps" '>=' "$TARGET_RPS")"
    printf '  p50 ms        %s\n' "$(kv webhook p50_ms)"
    printf '  p99 ms        %-10s target <= %-6s %s\n' "$p99" "$TARGET_P99_MS" "$(verdict "$p99" '<=' "$TARGET_P99_MS")"
    printf '  p90/max ms    %s / %s\n' "$(kv webhook p90_ms)" "$(kv webhook max_ms)"
    printf '  answers       %s x 200, %s failed\n' "$(kv webhook ok)" "$(kv webhook errors)"
    printf '  rows          %s (inbound interactions +%s, memories +%s)\n' \
        "$(kv webhook verify)" "$(kv webhook inbound_delta)" "$(kv webhook memories_delta)"
    printf '  embedding     %s\n' "$EMBEDDED_DURING_LOAD"
    printf '  words only    %s requests/s, p99 %s ms (SEMANTIC_SEARCH=off, same load, the median of %s runs alternating with those on)\n' \
        "$words_rps" "$(kv webhook_off p99_ms)" "$SEMANTIC_ROUNDS"
    printf '  all runs      on: %s / off: %s requests/s\n' "$(all_rps on)" "$(all_rps off)"
    printf '  drop %%        %-10s target <= %-6s %s\n' "$drop" "$TARGET_SEMANTIC_DROP_PCT" \
        "$(verdict "$drop" '<=' "$TARGET_SEMANTIC_DROP_PCT")"
    printf '  issue 16      requests/s %-8s target >= %-6s %s; p99 %s ms target <= %s %s (not slower than before PostgreSQL group commit)\n' \
        "$rps" "$TARGET_SQLITE_RPS" "$(verdict "$rps" '>=' "$TARGET_SQLITE_RPS")" "$p99" "$TARGET_SQLITE_P99_MS" \
        "$(verdict "$p99" '<=' "$TARGET_SQLITE_P99_MS")"
    echo
    if ((PG_RAN)); then
        pg_rps=$(kv webhook_pg rps)
        pg_p99=$(kv webhook_pg p99_ms)
        echo "POST /webhook on PostgreSQL: $(kv webhook_pg elapsed_s) s, the same load on a fresh database (group commit, synchronous_commit on), semantic search on; the median of $SEMANTIC_ROUNDS runs, alternating with SQLite's above"
        printf '  requests/s    %-10s target >= %-6s %s (SQLite beside it: %s)\n' "$pg_rps" "$TARGET_PG_RPS" \
            "$(verdict "$pg_rps" '>=' "$TARGET_PG_RPS")" "$rps"
        printf '  p50 ms        %s\n' "$(kv webhook_pg p50_ms)"
        printf '  p99 ms        %-10s target <= %-6s %s (SQLite beside it: %s)\n' "$pg_p99" "$TARGET_PG_P99_MS" \
            "$(verdict "$pg_p99" '<=' "$TARGET_PG_P99_MS")" "$p99"
        printf '  p90/max ms    %s / %s\n' "$(kv webhook_pg p90_ms)" "$(kv webhook_pg max_ms)"
        printf '  answers       %s x 200, %s failed\n' "$(kv webhook_pg ok)" "$(kv webhook_pg errors)"
        printf '  rows          %s (inbound interactions +%s, memories +%s, %s commit probes, %s missing)\n' \
            "$(kv webhook_pg verify)" "$(kv webhook_pg inbound_delta)" "$(kv webhook_pg memories_delta)" \
            "$(kv webhook_pg probes)" "$(kv webhook_pg probe_missing)"
        printf '  all runs      %s requests/s\n' "$(all_rps pg)"
        echo
        two_rps=$(awk -v n="$TWO_ACKED" -v d="$DURATION" 'BEGIN { if (n ~ /^[0-9]+$/) printf "%.0f", n / d; else print "n/a" }')
        echo "two servers on PostgreSQL: one database, $half connections on each for $DURATION s, the first killed (-9) at $((DURATION / 2)) s"
        printf '  requests/s    %s (acknowledged by either, over the whole run)\n' "$two_rps"
        printf '  p99 ms        %s on the survivor (p50 %s, max %s); %s on the killed one until its kill\n' \
            "$(kv two_b p99_ms)" "$(kv two_b p50_ms)" "$(kv two_b max_ms)" "$(kv two_a p99_ms)"
        printf '  answers       %s x 200 by the killed one, %s x 200 by the survivor (%s failed)\n' \
            "$(kv two_a ok)" "$(kv two_b ok)" "$(kv two_b errors)"
        printf '  stored        %s messages (acknowledged %s; a message committed as its server died is stored unanswered)\n' \
            "$TWO_STORED" "$TWO_ACKED"
        printf '  lost          %-10s target  = %-6s %s\n' "$TWO_LOST" 0 "$(verdict "$TWO_LOST" '<=' 0)"
        printf '  duplicated    %-10s target  = %-6s %s\n' "$TWO_DUPLICATED" 0 "$(verdict "$TWO_DUPLICATED" '<=' 0)"
        echo
    elif [[ -z $POSTGRES_URL ]]; then
        echo "(PostgreSQL webhook and two-server runs skipped: BENCH_POSTGRES_URL is not set)"
        echo
    fi
    if [[ -f $WORK/cloud.kv ]]; then
        echo "POST /whatsapp/cloud (Meta's Cloud API): the same load as signed JSON deliveries, semantic search off; beside it POST /webhook on the same server just before"
        printf '  requests/s    %-10s target >= %-6s %s   (/webhook: %s)\n' "$(kv cloud rps)" "$TARGET_RPS" \
            "$(verdict "$(kv cloud rps)" '>=' "$TARGET_RPS")" "$(kv webhook_words rps)"
        printf '  p99 ms        %-10s target <= %-6s %s   (/webhook: %s)\n' "$(kv cloud p99_ms)" "$TARGET_P99_MS" \
            "$(verdict "$(kv cloud p99_ms)" '<=' "$TARGET_P99_MS")" "$(kv webhook_words p99_ms)"
        printf '  rows          %s after the workers processed every delivery (inbound interactions +%s, memories +%s)\n' \
            "$(kv cloud verify)" "$(kv cloud inbound_delta)" "$(kv cloud memories_delta)"
        echo
    fi
    if ((FULL)); then
    echo "/search, hybrid (words + vectors): one user holding $(kv search user_memories) memories with $(kv vectors stored) vectors, $(kv search answered) queries, $SEARCH_CONNECTIONS connection(s)"
    printf '  p50 ms        %s\n' "$(kv search p50_ms)"
    printf '  p95 ms        %-10s target <= %-6s %s\n' "$sp95" "$TARGET_HYBRID_P95_MS" "$(verdict "$sp95" '<=' "$TARGET_HYBRID_P95_MS")"
    printf '  p99 ms        %s\n' "$(kv search p99_ms)"
    printf '  found         %s with results, %s without\n' "$(kv search search_hits)" "$(kv search search_misses)"
    printf '  by query ms   common word: %s\n' "$(kv search common_word)"
    printf '                any word:    %s\n' "$(kv search any_word)"
    printf '                two words:   %s\n' "$(kv search two_words)"
    printf '  vectors       %s of the texts embedded by the model (%s notes/s, 2 threads), the rest near copies of theirs (examples/seed_vectors)\n' \
        "$(kv vectors sample)" "$(kv vectors sample_notes_per_s)"
    echo
    echo "/search, words only (SEMANTIC_SEARCH=off), the same user and memories"
    printf '  p50 ms        %s\n' "$(kv search_words p50_ms)"
    printf '  p95 ms        %-10s target <= %-6s %s\n' "$wp95" "$TARGET_SEARCH_P95_MS" "$(verdict "$wp95" '<=' "$TARGET_SEARCH_P95_MS")"
    printf '  p99 ms        %s\n' "$(kv search_words p99_ms)"
    printf '  by query ms   common word: %s\n' "$(kv search_words common_word)"
    printf '                any word:    %s\n' "$(kv search_words any_word)"
    printf '                two words:   %s\n' "$(kv search_words two_words)"
    printf '  seeding       %s memories in %s s (%s requests/s, p99 %s ms), rows %s\n' \
        "$(kv seed ok)" "$(kv seed elapsed_s)" "$(kv seed rps)" "$(kv seed p99_ms)" "$(kv seed verify)"
    echo
    echo "REST API, the same user: $(kv api search_n) requests of each, one at a time, words from the user's memories"
    for suffix in "" _words; do
        label_mode="hybrid"
        [[ $suffix == _words ]] && label_mode="words only"
        for op in search list; do
            ap95=$(kv "api$suffix" "${op}_p95_ms")
            label="GET /memories?query= ($label_mode)"
            target=$TARGET_API_P95_MS
            [[ $op == search && -z $suffix ]] && target=$TARGET_HYBRID_P95_MS
            [[ $op == list ]] && label="GET /memories/list ($label_mode)"
            printf '  %-38s p50 %s  p95 %-8s p99 %s ms  target p95 <= %s %s\n' "$label" "$(kv "api$suffix" "${op}_p50_ms")" \
                "$ap95" "$(kv "api$suffix" "${op}_p99_ms")" "$target" "$(verdict "$ap95" '<=' "$target")"
        done
    done
    echo
    echo "embedding (all-MiniLM-L6-v2 in process, $(kv embed threads) background thread, quiet machine, $(kv embed notes) notes)"
    printf '  one per call  %s notes/s\n' "$(kv embed single_notes_per_s)"
    printf '  batched       %s notes/s (as the indexer embeds, 16 at a time)\n' "$(kv embed batch_notes_per_s)"
    printf '  a query       p50 %s ms, p95 %s ms (model load %s ms, once)\n' "$(kv embed query_p50_ms)" \
        "$(kv embed query_p95_ms)" "$(kv embed load_ms)"
    echo
    echo "search by meaning: recall@5 by vectors (before: the selection before issue 15; other hits per query in brackets)"
    printf '  category queries    before %s (%s)  now %-6s (%s)  target >= %s %s\n' \
        "$(kv recall category_recall_at_5_before)" "$(kv recall category_other_hits_before)" \
        "$(kv recall category_recall_at_5_now)" "$(kv recall category_other_hits_now)" "$TARGET_CATEGORY_RECALL" \
        "$(verdict "$(kv recall category_recall_at_5_now)" '>=' "$TARGET_CATEGORY_RECALL")"
    printf '  held-out categories before %s (%s)  now %-6s (%s)  (never tuned on)\n' \
        "$(kv recall category_holdout_recall_at_5_before)" "$(kv recall category_holdout_other_hits_before)" \
        "$(kv recall category_holdout_recall_at_5_now)" "$(kv recall category_holdout_other_hits_now)"
    printf '  paraphrased queries before %s (%s)  now %-6s (%s)\n' \
        "$(kv recall paraphrase_recall_at_5_before)" "$(kv recall paraphrase_other_hits_before)" \
        "$(kv recall paraphrase_recall_at_5_now)" "$(kv recall paraphrase_other_hits_now)"
    echo
    echo "POST /webhook with a photo: $media_s s, $MEDIA_CONNECTIONS connections, $MEDIA_USERS users, new signed messages with NumMedia=1, $MEDIA_WORKERS workers, fresh SQLite"
    printf '  requests/s    %s\n' "$(kv media rps)"
    printf '  p50 ms        %s\n' "$(kv media p50_ms)"
    printf '  p99 ms        %-10s target <= %-6s %s\n' "$mp99" "$TARGET_MEDIA_P99_MS" "$(verdict "$mp99" '<=' "$TARGET_MEDIA_P99_MS")"
    printf '  p90/max ms    %s / %s\n' "$(kv media p90_ms)" "$(kv media max_ms)"
    printf '  answers       %s x 200 (empty TwiML), %s failed\n' "$(kv media ok)" "$(kv media errors)"
    printf '  rows          %s (inbound interactions +%s; %s answered sids looked up: %s without interaction, %s without media job)\n' \
        "$(kv media verify)" "$(kv media inbound_delta)" "$(kv media media_checked)" \
        "$(kv media media_missing_interaction)" "$(kv media media_missing_job)"
    printf '  media jobs    %s queued by the load; at its end %s done (%s/s), %s queued + %s running (backlog), %s dead\n' \
        "$(kv media media_jobs_total)" "$media_done" "$media_rate" "$(kv media media_jobs_queued)" \
        "$(kv media media_jobs_running)" "$(kv media media_jobs_dead)"
    printf '  fake Twilio   %s media fetched (%s), %s replies accepted, %s unauthorized, %s CDN requests with credentials\n' \
        "$(fake media_cdn)" "$PHOTO_NOTE" "$(fake messages_created)" "$(fake unauthorized)" "$(fake cdn_with_authorization)"
    echo
    fi
    if ((VOICE_RAN)); then
        vp99=$(kv voice p99_ms)
        tp50=$(kv transcribe p50_ms)
        echo "POST /webhook with a voice note: $(kv voice elapsed_s) s, $MEDIA_CONNECTIONS connections, $VOICE_USERS users ($(basename "$VOICE_NOTE")), $MEDIA_WORKERS workers transcribing with local Whisper meanwhile"
        printf '  requests/s    %s\n' "$(kv voice rps)"
        printf '  p50 ms        %s\n' "$(kv voice p50_ms)"
        printf '  p99 ms        %-10s target <= %-6s %s\n' "$vp99" "$TARGET_MEDIA_P99_MS" "$(verdict "$vp99" '<=' "$TARGET_MEDIA_P99_MS")"
        printf '  answers       %s x 200 (empty TwiML), %s failed; rows %s\n' "$(kv voice ok)" "$(kv voice errors)" "$(kv voice verify)"
        printf '  transcribed   %s notes (one per user; the rest duplicates), in the server: %s ms\n' "$VOICE_TRANSCRIBED" "$VOICE_JOB_MS"
        printf '  server RSS MB %-10s target <= %-6s %s (now %s MB, model loaded)\n' "$VOICE_HWM_MB" "$TARGET_RSS_MB" \
            "$(verdict "$VOICE_HWM_MB" '<=' "$TARGET_RSS_MB")" "$VOICE_RSS_MB"
        echo "one voice note, decode + transcription, $(kv transcribe audio_seconds) s of audio, tiny.en, $(kv transcribe threads) threads, quiet machine"
        printf '  p50 ms        %-10s target <= %-6s %s\n' "$tp50" "$TARGET_TRANSCRIBE_MS" "$(verdict "$tp50" '<=' "$TARGET_TRANSCRIBE_MS")"
        printf '  max ms        %s of %s runs (decode %s ms; model load %s ms, once)\n' "$(kv transcribe max_ms)" \
            "$(kv transcribe runs)" "$(kv transcribe decode_ms)" "$(kv transcribe load_ms)"
        printf '  heard         %s\n' "$(kv transcribe words)"
        echo
    elif ((FULL)); then
        echo "(voice phase skipped: no voice note at $VOICE_NOTE or no model at $WHISPER_MODEL)"
        echo
    fi
    ((FULL)) && ocr_summary
    for nd in near_dup near_dup_pg; do
        ((FULL)) || continue
        [[ $nd == near_dup_pg && -z $POSTGRES_URL ]] && continue
        ndp99=$(kv "$nd" p99_ms)
        echo "near-duplicate photo lookup ($(kv "$nd" backend)): one user holding $(kv "$nd" images) images, $(kv "$nd" lookups) lookups, fresh database"
        printf '  p50 ms        %s\n' "$(kv "$nd" p50_ms)"
        printf '  p95 ms        %s\n' "$(kv "$nd" p95_ms)"
        printf '  p99 ms        %-10s target <= %-6s %s\n' "$ndp99" "$TARGET_NEAR_DUP_P99_MS" "$(verdict "$ndp99" '<=' "$TARGET_NEAR_DUP_P99_MS")"
        printf '  max ms        %s\n' "$(kv "$nd" max_ms)"
        printf '  found         %s of %s near duplicates (1-5 bits off), %s of the random probes matched\n' \
            "$(kv "$nd" near_found)" "$(kv "$nd" near_probes)" "$(kv "$nd" random_hits)"
        echo
    done
    if ((FULL)) && [[ -z $POSTGRES_URL ]]; then
        echo "(near-duplicate lookup on PostgreSQL skipped: BENCH_POSTGRES_URL is not set)"
        echo
    fi
    ((SOAK_RAN)) && soak_summary
    echo "reminders ($(kv reminders backend)): $(kv reminders due) due within $(kv reminders spread_s) s, 2 workers; $(kv reminders sent) sent ($(kv reminders distinct) distinct)"
    printf '  lateness p50 s %s\n' "$(kv reminders p50_s)"
    printf '  lateness p99 s %-9s target <= %-6s %s\n' "$(kv reminders p99_s)" 1 "$(verdict "$(kv reminders p99_s)" '<=' 1)"
    printf '  idle CPU %%     %-9s target <  %-6s %s (%s pending reminders)\n' "$(kv reminders idle_cpu_percent)" 1 \
        "$(verdict "$(kv reminders idle_cpu_percent)" '<=' 0.99)" "$(kv reminders pending)"
    echo
    [[ -f $WORK/metrics.txt ]] && { cat "$WORK/metrics.txt"; echo; }
    if ((${#FAILED[@]} == 0)); then
        echo "checks: OK (every request answered 200 and committed its rows)"
    else
        echo "checks: FAILED"
        printf '  - %s\n' "${FAILED[@]}"
    fi
} >"$RESULTS_DIR/latest.txt"

echo
cat "$RESULTS_DIR/latest.txt"
echo "(written to bench-results/latest.txt)"
if ((${#FAILED[@]} > 0)); then
    echo "BENCHMARK CHECKS FAILED" >&2
    exit 1
fi
