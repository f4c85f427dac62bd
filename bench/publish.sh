#!/usr/bin/env bash
# Benchmark: a publication at japan scale — every indicator for ALL and 47 prefectures over
# 1,209 days, suppression and all ten open-data files — timed end to end by the command itself;
# and, in the same run, DuckDB (from pip) computing the daily per-prefecture series and the
# weekly sex/age series from the same notifications exported to Parquet.
#
#   bash bench/publish.sh DB_PATH        # a SQLite database filled by `todoke synth --scale japan`
#
# Needs: sqlite3 (apt-get install -y sqlite3), python3 with duckdb (pip install duckdb).
# The Parquet file is kept beside the database (DB_PATH.parquet) and reused on later runs.
set -euo pipefail
cd "$(dirname "$0")/.."
DB=${1:?usage: bash bench/publish.sh PATH_TO_JAPAN_DB}
BIN=${TODOKE_BIN:-target/release/todoke}
[ -n "${TODOKE_BIN:-}" ] || cargo build --release --quiet
python3 -c 'import duckdb' 2>/dev/null || pip install --quiet duckdb
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "== todoke publish --as-of 2023-05-08 --opendata (3 runs)"
for i in 1 2 3; do
  /usr/bin/time -f "wall %e s, peak %M KB" "$BIN" --database "sqlite://$DB" publish --as-of 2023-05-08 \
    --opendata "$WORK/opendata" 2>&1 | grep -v '^$'
done
echo "== suppression auditor on the last publication"
"$BIN" --database "sqlite://$DB" publications audit

PARQUET="$DB.parquet"
if [ ! -f "$PARQUET" ]; then
  echo "== exporting notifications to $PARQUET"
  sqlite3 -csv -header "$DB" "SELECT n.report_day, n.prefecture_code, p.sex, n.age, n.case_type, n.withdrawn, \
      n.merged_into IS NOT NULL AS merged FROM notifications n JOIN persons p ON p.id = n.person_id" > "$WORK/n.csv"
  python3 - "$WORK/n.csv" "$PARQUET" <<'PY'
import sys, duckdb
duckdb.sql(f"COPY (SELECT * FROM read_csv('{sys.argv[1]}', header=true, types={{'report_day':'DATE','prefecture_code':'VARCHAR'}})) TO '{sys.argv[2]}' (FORMAT parquet)")
PY
fi

echo "== DuckDB $(python3 -c 'import duckdb; print(duckdb.__version__)') on $PARQUET (3 runs each)"
python3 - "$PARQUET" <<'PY'
import sys, time, duckdb
src = sys.argv[1]
con = duckdb.connect()
con.execute("SET threads = 2")
counted = "case_type IN ('confirmed', 'asymptomatic', 'dead_confirmed') AND NOT withdrawn AND NOT merged"
daily = f"""SELECT report_day, prefecture_code, count(*) FROM read_parquet('{src}')
            WHERE {counted} GROUP BY ALL"""
# Weeks Sunday to Saturday: shift by a day so that ISO (Monday) weeks line up.
weekly = f"""SELECT date_trunc('week', report_day + INTERVAL 1 DAY) - INTERVAL 1 DAY AS week, prefecture_code,
                    sex, least(age // 10, 9) AS band, count(*)
             FROM read_parquet('{src}') WHERE {counted} AND sex <> 'unknown' GROUP BY ALL"""
rows = con.execute(f"SELECT count(*) FROM read_parquet('{src}')").fetchone()[0]
print(f"notifications in the Parquet file: {rows:,}")
for name, q in [("daily per prefecture", daily), ("weekly by sex and age", weekly), ]:
    times = []
    for _ in range(3):
        t = time.perf_counter()
        n = len(con.execute(q).fetchall())
        times.append(time.perf_counter() - t)
    print(f"{name}: {n:,} groups, best {min(times):.3f} s, runs {', '.join(f'{x:.3f}' for x in times)}")
t = time.perf_counter()
con.execute(daily).fetchall(); con.execute(weekly).fetchall()
print(f"both series: {time.perf_counter() - t:.3f} s")
PY
