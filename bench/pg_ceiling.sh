#!/usr/bin/env bash
# What PostgreSQL alone can store of the text webhook's path, with no server in front:
# pgbench sends the statement the server sends for texts from known senders
# (`TEXTS_SAVE_POSTGRES`, read out of src/adapters/db/statements/users_messages.rs so it
# cannot drift), 8 messages per statement and transaction as the group commit batches them, from 2 and 4 clients, for
# PG_CEILING_SECONDS (10) each, on a fresh migrated database with 50 users. It prints
# messages/s: the most the webhook could reach on this host if the server cost nothing.
#
# Usage: bash bench/pg_ceiling.sh [postgres URL]  (default: the suite's local server)
# Needs psql, pgbench and a release build of the server (target/release/whatsapp-memory).
set -euo pipefail
cd "$(dirname "$0")/.."
URL=${1:-${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}}
SECONDS_EACH=${PG_CEILING_SECONDS:-10}
SERVER=${BENCH_SERVER_BIN:-target/release/whatsapp-memory}
WORK=$(mktemp -d)
NAME=wm_ceiling_$$
DB_URL=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$URL" "$NAME")
cleanup() {
    psql "$URL" -qAtX -c "DROP DATABASE IF EXISTS $NAME WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
psql "$URL" -qAtX -v ON_ERROR_STOP=1 -c "CREATE DATABASE $NAME" >/dev/null
DATABASE_URL=$DB_URL "$SERVER" migrate >/dev/null 2>&1
psql "$DB_URL" -qAtX -v ON_ERROR_STOP=1 -c "INSERT INTO users (wa_id, phone_number, display_name, timezone, \
    created_at, updated_at) SELECT '1555000' || i, '+1555000' || i, 'Ada', NULL, now(), now() \
    FROM generate_series(1, 50) i" >/dev/null

# The statement, its parameter (the JSON array of the texts waiting) filled with pgbench
# expressions: 8 texts, each from one of 50 users with a fresh sid, the body and raw form
# of a typical message, semantic search on.
python3 - "$WORK/message.sql" <<'PY'
import re, sys
source = open("src/adapters/db/statements/users_messages.rs", encoding="utf-8").read()
literal = re.search(r'TEXTS_SAVE_POSTGRES: Sql = Sql::new\(\s*"(.*?)",\s*\);', source, re.S).group(1)
sql = re.sub(r"\\\n\s*", "", literal)
body = "buy milk and eggs for the weekend"
raw = '{"Body":"' + body + '","NumMedia":"0","ProfileName":"Ada"}'
def text(k):
    return (f"jsonb_build_object('wa_id', '1555000' || :user{k}, 'name', 'Ada', 'sid', md5(random()::text), "
            f"'kind', 'text', 'body', '{body}', 'raw', '{raw}'::jsonb, 'at', now(), 'text', '{body}', "
            f"'reply', 'Memory saved ✅', 'queue', true, 'now', now())")
sql = sql.replace("$1::jsonb", "jsonb_build_array(" + ", ".join(text(k) for k in range(8)) + ")")
with open(sys.argv[1], "w", encoding="utf-8") as out:
    out.write("".join(f"\\set user{k} random(1, 50)\n" for k in range(8)))
    out.write("BEGIN;\n" + sql + ";\nCOMMIT;\n")
PY
for clients in 2 4; do
    tps=$(pgbench -n -M prepared -c "$clients" -j 2 -T "$SECONDS_EACH" -f "$WORK/message.sql" "$DB_URL" 2>&1 |
        awk '/^tps/ { print $3 }')
    python3 -c 'import sys; print(f"PostgreSQL alone, {sys.argv[1]} clients: {float(sys.argv[2]) * 8:,.0f} messages/s")' \
        "$clients" "$tps"
done
stored=$(psql "$DB_URL" -qAtX -c "SELECT count(*) FROM memories")
echo "($stored memories stored, one per message; each with its inbound and outbound rows)"
