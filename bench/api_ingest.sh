#!/usr/bin/env bash
# Benchmark: API ingest — notifications POSTed by a doctor with a bearer token, 64 connections,
# SQLite. Every request is validated, placed (the doctor's institution → health centre →
# prefecture), written with its person, counted in the live counters and audited, in one
# transaction: the production path.
#
#   bash bench/api_ingest.sh            # 30 s after a 5 s warm-up
#
# Needs: wrk (apt-get install -y wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-30s}
PORT=${PORT:-18182}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
BIN=${TODOKE_BIN:-target/release/todoke}
[ -n "${TODOKE_BIN:-}" ] || cargo build --release --quiet
WORK=$(mktemp -d)
DB="sqlite://$WORK/ingest.db"
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT

$BIN --database "$DB" org add health-centre --code H13101 --prefecture 13 --name "千代田保健所" >/dev/null
$BIN --database "$DB" org add institution --code I1 --health-centre H13101 --name "神田クリニック" >/dev/null
echo "bench password 123" | $BIN --database "$DB" user add --login bench.doctor --role doctor --scope I1 --password-stdin >/dev/null
TOKEN=$($BIN --database "$DB" token create --login bench.doctor --label bench)

RUST_LOG=warn $BIN --database "$DB" serve --bind "127.0.0.1:$PORT" >/dev/null 2>"$WORK/server.log" &
SERVER=$!
for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

cat > "$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
wrk.body = '{"case_type":"confirmed","reported_at":"2022-08-19T10:00:00+09:00","sex":"female","age":72,"name":"山田 花子","name_kana":"ヤマダ ハナコ","phone":"03-1234-5678","symptoms":"発熱;咳","onset_date":"2022-08-17","diagnosis_date":"2022-08-19","notified_group":"age65"}'
done = function(summary, latency, requests)
  io.write(string.format("non-2xx: %d\n", summary.errors.status))
end
LUA
URL="http://127.0.0.1:$PORT/api/notifications"
STATUS=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"case_type":"confirmed","reported_at":"2022-08-19T10:00:00+09:00","sex":"female","age":72}' "$URL")
[ "$STATUS" = 201 ] || { echo "probe request answered $STATUS" >&2; exit 1; }
wrk -t2 -c64 -d5s -s "$WORK/post.lua" "$URL" >/dev/null
echo "== wrk -t2 -c64 -d$DURATION --latency POST /api/notifications (bearer, SQLite)"
OUT=$(wrk -t2 -c64 -d"$DURATION" --latency -s "$WORK/post.lua" "$URL")
echo "$OUT"
RPS=$(echo "$OUT" | awk '/Requests\/sec/ {print $2}')
P99=$(echo "$OUT" | awk '$1 == "99%" {print $2}')
STORED=$(sqlite3 "$WORK/ingest.db" "SELECT count(*) FROM notifications")
echo
echo "summary: notifications/s=$RPS p99=$P99 stored=$STORED; record day 261,735 at this rate: $(python3 -c "print(f'{261735/float(\"$RPS\")/60:.1f} min')") date=$(date -u +%F)"
