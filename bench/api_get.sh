#!/usr/bin/env bash
# Benchmark: authenticated GET of a small record (one health centre) with a bearer token, on
# SQLite, at 64 connections, with wrk. Every request resolves the token (SHA-256 + one indexed
# join), asks the access policy, and reads the record: the full production path.
#
#   bash bench/api_get.sh            # 30 s run (after a 5 s warm-up)
#   DURATION=60s bash bench/api_get.sh
#
# Needs: wrk (apt-get install -y wrk). Builds the release binary first.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-30s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
PORT=${PORT:-18181}

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
cargo build --release --quiet
BIN=target/release/todoke
WORK=$(mktemp -d)
DB="sqlite://$WORK/bench.db"
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT

$BIN --database "$DB" org add health-centre --code H13101 --prefecture 13 --name "千代田保健所" >/dev/null
$BIN --database "$DB" org add institution --code I1 --health-centre H13101 --name "神田クリニック" >/dev/null
echo "bench password 123" | $BIN --database "$DB" user add --login bench.hc --role health_centre --scope H13101 --password-stdin >/dev/null
TOKEN=$($BIN --database "$DB" token create --login bench.hc --label bench)

RUST_LOG=warn $BIN --database "$DB" serve --bind "127.0.0.1:$PORT" >/dev/null 2>"$WORK/server.log" &
SERVER=$!
for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

URL="http://127.0.0.1:$PORT/api/health-centres/H13101"
STATUS=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$URL")
[ "$STATUS" = 200 ] || { echo "probe request answered $STATUS" >&2; exit 1; }

wrk -t"$THREADS" -c"$CONNECTIONS" -d5s -H "Authorization: Bearer $TOKEN" "$URL" >/dev/null
echo "== wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency GET /api/health-centres/H13101 (bearer, SQLite)"
OUT=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "Authorization: Bearer $TOKEN" "$URL")
echo "$OUT"
RPS=$(echo "$OUT" | awk '/Requests\/sec/ {print $2}')
P99=$(echo "$OUT" | awk '$1 == "99%" {print $2}')
NON2XX=$(echo "$OUT" | awk '/Non-2xx/ {print $NF}')
echo
echo "summary: requests/s=$RPS p99=$P99 non-2xx=${NON2XX:-0} machine=$(nproc) cores $(free -g | awk '/Mem:/ {print $2}') GiB date=$(date -u +%F)"
