#!/usr/bin/env bash
# Experiment: what a narrower storage layout would save SQLite itself. The rows of
# bench/gen_notifications.py (sparse) moved by `INSERT … SELECT` from a bare table into the two
# bulk-written tables with todoke's indexes and keys, once with dates and instants as TEXT (as
# stored today) and once as INTEGERs; alternated, RUNS times each. No todoke code runs.
#
#   bash bench/import_layout.sh              # 1,000,000 rows, 2 runs each
#   ROWS=100000 RUNS=3 bash bench/import_layout.sh
set -euo pipefail
cd "$(dirname "$0")"
ROWS=${ROWS:-1000000}
RUNS=${RUNS:-2}
command -v sqlite3 >/dev/null || { echo "sqlite3 is missing: apt-get install -y sqlite3" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
python3 gen_notifications.py "$ROWS" > "$WORK/n.csv"
COLUMNS=$(head -n1 "$WORK/n.csv" | sed 's/\([a-z_]*\)/"\1" TEXT/g')
sqlite3 "$WORK/bare.db" "PRAGMA journal_mode = WAL; CREATE TABLE t ($COLUMNS);" >/dev/null
sqlite3 "$WORK/bare.db" ".import --csv --skip 1 $WORK/n.csv t"
for run in $(seq "$RUNS"); do
  for layout in text integer; do
    rm -f "$WORK/$layout.db"*
    sqlite3 "$WORK/$layout.db" < "layout/${layout}_schema.sql" >/dev/null
    /usr/bin/time -f "%e" -o "$WORK/time" sqlite3 -cmd "ATTACH '$WORK/bare.db' AS b" "$WORK/$layout.db" < "layout/${layout}_load.sql"
    echo "run $run, $layout: $(cat "$WORK/time") s, database $(du -m "$WORK/$layout.db" | cut -f1) MB"
  done
done
