# The soak of issue 14, sourced by bench/run.sh (it uses run.sh's start_server,
# start_fake_twilio, stop_pid, run_phase, kv and FAILED). See bench/README.md, "Soak".
#
# `make bench` runs it last; `BENCH_ONLY=soak make bench` runs it alone. Its rate is half
# the measured maximum throughput of its own traffic: `loadgen soak --capacity` sends the
# same mix closed-loop for SOAK_CAPACITY_SECONDS to a fresh server configured as the
# soak's, and the soak runs at half the rate answered (SOAK_RATE instead skips that). The
# text webhook's rate was the reference before, but a search embeds its query and a photo
# is fetched, decoded and hashed: at half the text rate (3,528 requests/s) the mix fell
# behind at once and never caught up.
#
# A fresh server (SQLite, semantic search, OCR and local Whisper as by default, WORKERS=
# $BENCH_MEDIA_WORKERS) whose Twilio API is bench/fake_twilio.py serving both the photo
# (a different file of the same picture for every URL) and the voice note takes
# SOAK_SECONDS of mixed traffic from `loadgen soak`: texts, exact redeliveries, /search,
# /list last week, questions, photos, voice notes, POST /memories and GET /memories?query=.
# The generator reads the server's RSS (/proc/PID/status) and queues at every window's
# end and fails (exit 3) when a request failed, RSS grew more than 5 % after window 1, or
# a later window's p99 is over twice window 2's (or 5 ms above it). The script adds: no
# job dead-lettered, no request the fake Twilio refused.

SOAK_SECONDS=${SOAK_SECONDS:-600}
SOAK_WINDOW=${SOAK_WINDOW:-60}
SOAK_CONNECTIONS=${SOAK_CONNECTIONS:-32}
SOAK_USERS=${SOAK_USERS:-1000}
SOAK_MEDIA_USERS=${SOAK_MEDIA_USERS:-20}
SOAK_MIX=${SOAK_MIX:-}
SOAK_CAPACITY_SECONDS=${SOAK_CAPACITY_SECONDS:-30}
SOAK_RAN=0
SOAK_NOTES=()

# soak_voice_note: prints the Ogg/Opus note to serve: BENCH_VOICE_NOTE, else one made with
# espeak-ng, sox and opusenc, else nothing (the soak then sends no voice notes).
soak_voice_note() {
    if [[ -f $VOICE_NOTE ]]; then
        echo "$VOICE_NOTE"
    elif command -v espeak-ng >/dev/null && command -v sox >/dev/null && command -v opusenc >/dev/null; then
        espeak-ng -w "$WORK/soak-note.wav" "remember to water the basil and call the plumber on friday" &&
            sox "$WORK/soak-note.wav" -r 16000 -c 1 "$WORK/soak-note16.wav" &&
            opusenc --quiet "$WORK/soak-note16.wav" "$WORK/soak-note.ogg" && echo "$WORK/soak-note.ogg"
    fi
}

# soak_photo: prints the JPEG to serve: BENCH_PHOTO, else a generated stand-in.
soak_photo() {
    if [[ -f $PHOTO ]]; then
        echo "$PHOTO"
    else
        "$LOADGEN" sample-jpeg --out "$WORK/soak-photo.jpg" >&2 && echo "$WORK/soak-photo.jpg"
    fi
}

# soak_dead_jobs DB: jobs the workers gave up on (each one a user told of a failure).
soak_dead_jobs() {
    python3 - "$1" <<'PY' || echo n/a
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=5)
print(db.execute("SELECT count(*) FROM jobs WHERE state = 'dead'").fetchone()[0])
PY
}

# soak_server DB STORAGE LOG: a fresh server as the soak (and its capacity run) use it.
soak_server() {
    mkdir -p "$2"
    PORT=$("$LOADGEN" free-port)
    BASE=http://127.0.0.1:$PORT
    # Rate limits off (as on every bench server): a thousand users send several a second.
    start_server "$1" "$2" "$3" TWILIO_API_BASE_URL="$FAKE_BASE" \
        WORKERS="$MEDIA_WORKERS" "${SOAK_TRANSCRIBER[@]}" USER_RATE_LIMIT=off API_RATE_LIMIT=off
}

# soak_args MIX: the arguments both runs of `loadgen soak` share.
soak_args() {
    SOAK_ARGS=(--url "$BASE/webhook" --token "$TOKEN" --account-sid "$ACCOUNT_SID"
        --to-number "$WHATSAPP_NUMBER" --media-base "$FAKE_BASE" --api-key "$TOKEN-api"
        --server-pid "$SERVER_PID" --connections "$SOAK_CONNECTIONS" --users "$SOAK_USERS"
        --media-users "$SOAK_MEDIA_USERS" --mix "$1")
}

# soak_capacity MIX: the mix's maximum rate on a fresh server, in SOAK_CAPACITY (empty
# when it could not be measured).
soak_capacity() {
    SOAK_CAPACITY=
    soak_server "$WORK/soak-capacity.db" "$WORK/soak-capacity-storage" "$WORK/server-soak-capacity.log"
    soak_args "$1"
    log "soak: the mix's maximum rate, closed-loop for $SOAK_CAPACITY_SECONDS s (server pid $SERVER_PID)"
    if "$LOADGEN" soak --capacity "${SOAK_ARGS[@]}" --duration "$SOAK_CAPACITY_SECONDS" \
        --out "$WORK/soak_capacity.kv" >"$WORK/soak-capacity.txt"; then
        SOAK_CAPACITY=$(kv soak_capacity capacity_rps)
    else
        FAILED+=("soak: the capacity run failed ($(cat "$WORK/soak-capacity.txt" 2>/dev/null))")
    fi
    stop_pid "$SERVER_PID" 15
    SERVER_PID=
}

# soak_phase: the soak at SOAK_RATE, else at half the mix's measured maximum rate.
soak_phase() {
    local photo note db=$WORK/soak.db rc=0
    photo=$(soak_photo)
    note=$(soak_voice_note)
    local fake_args=(--jpeg "$photo" --vary-jpeg --max-seconds $((SOAK_SECONDS + 900)))
    local mix=$SOAK_MIX
    if [[ -n $note ]]; then
        fake_args+=(--ogg "$note")
    else
        SOAK_NOTES+=("no voice note (BENCH_VOICE_NOTE missing, no espeak-ng/sox/opusenc): none sent")
        mix="voice=0${mix:+,$mix}"
    fi
    SOAK_TRANSCRIBER=(TRANSCRIBER=whisper WHISPER_MODEL_PATH="$WHISPER_MODEL")
    if [[ ! -f $WHISPER_MODEL ]]; then
        SOAK_TRANSCRIBER=(TRANSCRIBER=none)
        SOAK_NOTES+=("no Whisper model at $WHISPER_MODEL: voice notes kept as audio (TRANSCRIBER=none)")
    fi
    start_fake_twilio fake_soak "${fake_args[@]}"
    SOAK_CAPACITY=n/a
    if [[ -z ${SOAK_RATE:-} ]]; then
        soak_capacity "$mix"
    fi
    SOAK_RATE_USED=${SOAK_RATE:-$(awk -v r="$SOAK_CAPACITY" 'BEGIN { if (r ~ /^[0-9.]+$/ && r > 0) printf "%.0f", r / 2 }')}
    if [[ -z $SOAK_RATE_USED ]]; then
        FAILED+=("soak: no rate (the capacity run measured '$SOAK_CAPACITY' requests/s; set SOAK_RATE)")
        stop_pid "$FAKE_PID"
        FAKE_PID=
        return 0
    fi
    soak_server "$db" "$WORK/soak-storage" "$WORK/server-soak.log"
    soak_args "$mix"
    log "soak: $SOAK_SECONDS s of mixed traffic at $SOAK_RATE_USED requests/s (server pid $SERVER_PID)"
    "$LOADGEN" soak "${SOAK_ARGS[@]}" --verify-db "$db" --rate "$SOAK_RATE_USED" --duration "$SOAK_SECONDS" \
        --window "$SOAK_WINDOW" --out "$WORK/soak.kv" >"$WORK/soak.txt" || rc=$?
    SOAK_RAN=1
    if ((rc == 3)); then
        FAILED+=("soak: $(kv soak failed)")
    elif ((rc != 0)); then
        FAILED+=("soak: loadgen exited with status $rc")
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        FAILED+=("soak: the server died")
        server_log_tail
    fi
    log "stopping the soak's server and fake Twilio API"
    stop_pid "$SERVER_PID" 15
    SERVER_PID=
    stop_pid "$FAKE_PID"
    FAKE_PID=
    SOAK_DEAD=$(soak_dead_jobs "$db")
    [[ $SOAK_DEAD == 0 ]] || FAILED+=("soak: $SOAK_DEAD jobs dead-lettered (see server-soak.log)")
    if [[ ! -f $WORK/fake_soak.kv ]]; then
        FAILED+=("soak: the fake Twilio API left no counts")
        return 0
    fi
    local refused n
    for refused in unauthorized cdn_with_authorization bad_requests not_found; do
        n=$(kv fake_soak "$refused")
        [[ $n == 0 ]] || FAILED+=("soak: the fake Twilio API answered $n requests as $refused")
    done
}

# soak_summary: the soak's block of the summary.
soak_summary() {
    local basis="half the $SOAK_CAPACITY requests/s the same mix was answered at closed-loop for $SOAK_CAPACITY_SECONDS s"
    [[ -n ${SOAK_RATE:-} ]] && basis="SOAK_RATE"
    echo "soak (issue 14): mixed traffic at $SOAK_RATE_USED requests/s ($basis) on a fresh SQLite file; rules: 0 errors, RSS at the end <= 1.05 x after window 1, every window from the 3rd p99 <= max(2 x, +5 ms) window 2's"
    sed 's/^/  /' "$WORK/soak.txt" 2>/dev/null || echo "  (no report: the soak did not run to its end)"
    printf '  background    %s jobs dead-lettered; fake Twilio: %s media served (%s voice notes), %s replies accepted, %s refused\n' \
        "$SOAK_DEAD" "$(kv fake_soak media_cdn)" "$(kv fake_soak voice_cdn)" "$(kv fake_soak messages_created)" \
        "$(kv fake_soak unauthorized)"
    local note
    for note in "${SOAK_NOTES[@]}"; do echo "  note: $note"; done
    echo
}

# soak_alone: BENCH_ONLY=soak. Runs the soak (after its capacity run unless SOAK_RATE is
# set), writes the summary to bench-results/latest.txt and exits.
soak_alone() {
    soak_phase
    mkdir -p "$RESULTS_DIR"
    {
        echo "whatsapp-memory soak, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commit"), $(nproc) cores"
        echo
        soak_summary
        if ((${#FAILED[@]} == 0)); then
            echo "checks: OK"
        else
            echo "checks: FAILED"
            printf '  - %s\n' "${FAILED[@]}"
        fi
    } >"$RESULTS_DIR/latest.txt"
    echo
    cat "$RESULTS_DIR/latest.txt"
    echo "(written to bench-results/latest.txt)"
    if ((${#FAILED[@]} > 0)); then
        echo "SOAK FAILED" >&2
        exit 1
    fi
    exit 0
}
