#!/usr/bin/env bash
# What PostgreSQL alone can store of the text webhook's path, with no server in front:
# pgbench sends the statements the server sends for a text from a known sender (the
# writer's savepoint, then `TEXT_SAVE_POSTGRES`, read out of
# src/adapters/db/statements/users_messages.rs so it cannot drift), 8 messages per
# transaction as the group commit batches them, from 2 and 4 clients, for
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

# The statement, its parameters filled with pgbench expressions (one of 50 users, a fresh
# sid, the body and raw form of a typical message, semantic search on).
python3 - "$WORK/message.sql" <<'PY'
import re, sys
source = open("src/adapters/db/statements/users_messages.rs", encoding="utf-8").read()
literal = re.search(r'TEXT_SAVE_POSTGRES: Sql = Sql::new\(\s*"(.*?)",\s*\);', source, re.S).group(1)
sql = re.sub(r"\\\n\s*", "", literal)
body = "buy milk and eggs for the weekend"
values = {
    1: "('1555000' || :user)", 2: "'Ada'::text", 3: "md5(random()::text)", 4: "'text'",
    5: f"'{body}'", 6: "'{\"Body\":\"" + body + "\",\"NumMedia\":\"0\",\"ProfileName\":\"Ada\"}'",
    7: "now()", 8: f"'{body}'", 9: "'Memory saved ✅'", 10: "true", 11: "now()",
}
sql = re.sub(r"\$(\d+)", lambda m: values[int(m.group(1))], sql)
with open(sys.argv[1], "w", encoding="utf-8") as out:
    out.write("BEGIN;\n")
    for _ in range(8):
        out.write("\\set user random(1, 50)\nSAVEPOINT message;\n" + sql + ";\nRELEASE SAVEPOINT message;\n")
    out.write("COMMIT;\n")
PY
for clients in 2 4; do
    tps=$(pgbench -n -M prepared -c "$clients" -j 2 -T "$SECONDS_EACH" -f "$WORK/message.sql" "$DB_URL" 2>&1 |
        awk '/^tps/ { print $3 }')
    python3 -c 'import sys; print(f"PostgreSQL alone, {sys.argv[1]} clients: {float(sys.argv[2]) * 8:,.0f} messages/s")' \
        "$clients" "$tps"
done
stored=$(psql "$DB_URL" -qAtX -c "SELECT count(*) FROM memories")
echo "($stored memories stored, one per message; each with its inbound and outbound rows)"
