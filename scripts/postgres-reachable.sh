#!/usr/bin/env bash
# Exits 0 when the PostgreSQL server in the URL (postgres://user@host:port/db) accepts TCP.
url="${1:-postgres://postgres@127.0.0.1:5432/postgres}"
hostport="${url#*://}"; hostport="${hostport#*@}"; hostport="${hostport%%/*}"
host="${hostport%%:*}"; port="${hostport##*:}"; [ "$port" = "$hostport" ] && port=5432
timeout 3 bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null
