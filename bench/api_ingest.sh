#!/usr/bin/env bash
# Benchmark: API ingest — notifications POSTed by a doctor with a bearer token, 64 connections,
# SQLite (or PostgreSQL). Every request is validated, placed (the doctor's institution → health
# centre → prefecture), written with its person, counted in the live counters and audited, in
# one transaction: the production path.
#
#   bash bench/api_ingest.sh            # 30 s after a 5 s warm-up
#   SAME_PERSON=1 bash bench/api_ingest.sh   # every request the same body (sessions one to nine)
#   BACKEND=postgres bash bench/api_ingest.sh # a new database on PG_URL (default
#                                             # postgres://postgres@127.0.0.1:5432), dropped after
#
# By default each request names another person (40 surnames by 20 given names per sex, a birth
# date in 1923-2021, a phone), so every filing goes through the duplicate check (same kana name,
# birth date and sex within 60 days) and the kana and phone indexes grow at random places, as
# real filings do.
# Needs: wrk (apt-get install -y wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-30s}
PORT=${PORT:-18182}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
BIN=${TODOKE_BIN:-target/release/todoke}
[ -n "${TODOKE_BIN:-}" ] || cargo build --release --quiet
WORK=$(mktemp -d)
SERVER=
if [ "${BACKEND:-sqlite}" = postgres ]; then
  # A database of its own on the server at PG_URL, dropped at the end.
  PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
  PG_DB="todoke_bench_ingest_$$"
  psql -q "$PG_URL/postgres" -c "CREATE DATABASE $PG_DB"
  DB="$PG_URL/$PG_DB"
  query() { psql -qtA "$DB" -c "$1"; }
  cleanup_db() { psql -q "$PG_URL/postgres" -c "DROP DATABASE IF EXISTS $PG_DB" || true; }
else
  DB="sqlite://$WORK/ingest.db"
  query() { sqlite3 "$WORK/ingest.db" "$1"; }
  cleanup_db() { :; }
fi
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; cleanup_db; rm -rf "$WORK"' EXIT

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
if [ -z "${SAME_PERSON:-}" ]; then
  cat >> "$WORK/post.lua" <<'LUA'
local surnames = {{"佐藤","サトウ"},{"鈴木","スズキ"},{"高橋","タカハシ"},{"田中","タナカ"},{"伊藤","イトウ"},
  {"渡辺","ワタナベ"},{"山本","ヤマモト"},{"中村","ナカムラ"},{"小林","コバヤシ"},{"加藤","カトウ"},{"吉田","ヨシダ"},
  {"山田","ヤマダ"},{"佐々木","ササキ"},{"山口","ヤマグチ"},{"松本","マツモト"},{"井上","イノウエ"},{"木村","キムラ"},
  {"林","ハヤシ"},{"斎藤","サイトウ"},{"清水","シミズ"},{"山崎","ヤマザキ"},{"森","モリ"},{"池田","イケダ"},
  {"橋本","ハシモト"},{"阿部","アベ"},{"石川","イシカワ"},{"山下","ヤマシタ"},{"中島","ナカシマ"},{"石井","イシイ"},
  {"小川","オガワ"},{"前田","マエダ"},{"岡田","オカダ"},{"長谷川","ハセガワ"},{"藤田","フジタ"},{"後藤","ゴトウ"},
  {"近藤","コンドウ"},{"村上","ムラカミ"},{"遠藤","エンドウ"},{"青木","アオキ"},{"坂本","サカモト"}}
local given = {
  male = {{"翔","ショウ"},{"大輔","ダイスケ"},{"健太","ケンタ"},{"拓也","タクヤ"},{"誠","マコト"},{"浩","ヒロシ"},
    {"隆","タカシ"},{"修","オサム"},{"蓮","レン"},{"悠真","ユウマ"},{"大翔","ヒロト"},{"陽斗","ハルト"},{"直樹","ナオキ"},
    {"和也","カズヤ"},{"茂","シゲル"},{"博","ヒロシ"},{"勝","マサル"},{"清","キヨシ"},{"亮","リョウ"},{"颯太","ソウタ"}},
  female = {{"陽子","ヨウコ"},{"恵子","ケイコ"},{"美咲","ミサキ"},{"さくら","サクラ"},{"結衣","ユイ"},{"愛","アイ"},
    {"真由美","マユミ"},{"久美子","クミコ"},{"陽菜","ヒナ"},{"葵","アオイ"},{"凛","リン"},{"芽依","メイ"},{"裕子","ユウコ"},
    {"直美","ナオミ"},{"幸子","サチコ"},{"和子","カズコ"},{"明美","アケミ"},{"由美","ユミ"},{"彩","アヤ"},{"美穂","ミホ"}}}
local thread_number = 0
setup = function(thread)
  thread_number = thread_number + 1
  thread:set("seed", thread_number)
end
init = function()
  math.randomseed(os.time() * 100 + (seed or 0))
end
request = function()
  local sex = math.random(2) == 1 and "male" or "female"
  local s = surnames[math.random(#surnames)]
  local g = given[sex][math.random(#given[sex])]
  local body = string.format('{"case_type":"confirmed","reported_at":"2022-08-19T10:00:00+09:00","sex":"%s",'
    .. '"birth_date":"%04d-%02d-%02d","name":"%s %s","name_kana":"%s %s","phone":"090-%04d-%04d",'
    .. '"symptoms":"発熱;咳","onset_date":"2022-08-17","diagnosis_date":"2022-08-19"}',
    sex, math.random(1923, 2021), math.random(12), math.random(28), s[1], g[1], s[2], g[2],
    math.random(0, 9999), math.random(0, 9999))
  return wrk.format(nil, nil, nil, body)
end
LUA
fi
URL="http://127.0.0.1:$PORT/api/notifications"
STATUS=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"case_type":"confirmed","reported_at":"2022-08-19T10:00:00+09:00","sex":"female","age":72}' "$URL")
[ "$STATUS" = 201 ] || { echo "probe request answered $STATUS" >&2; exit 1; }
wrk -t2 -c64 -d5s -s "$WORK/post.lua" "$URL" >/dev/null
echo "== wrk -t2 -c64 -d$DURATION --latency POST /api/notifications (bearer, ${BACKEND:-sqlite})"
OUT=$(wrk -t2 -c64 -d"$DURATION" --latency -s "$WORK/post.lua" "$URL")
echo "$OUT"
RPS=$(echo "$OUT" | awk '/Requests\/sec/ {print $2}')
P99=$(echo "$OUT" | awk '$1 == "99%" {print $2}')
STORED=$(query "SELECT count(*) FROM notifications")
FLAGGED=$(query "SELECT count(*) FROM notifications WHERE duplicate_of IS NOT NULL")
# Group commits over 100 ms, as the server logged them (every filing of one waited as long).
SLOW=$(grep -c "a group commit was slow" "$WORK/server.log" || true)
if [ "$SLOW" -gt 0 ]; then
  echo "slowest group commits (ms): $(grep "a group commit was slow" "$WORK/server.log" | grep -o 'ms=[0-9]*' | cut -d= -f2 | sort -rn | head -5 | tr '\n' ' ')"
fi
echo
echo "summary: notifications/s=$RPS p99=$P99 stored=$STORED flagged=$FLAGGED slow_batches=$SLOW; record day 261,735 at this rate: $(python3 -c "print(f'{261735/float(\"$RPS\")/60:.1f} min')") date=$(date -u +%F)"
