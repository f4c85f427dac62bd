#!/usr/bin/env bash
# Benchmark: CSV import of N notifications (default 1,000,000) into a fresh SQLite database,
# with validation, indexes and live counters; and, in the same run, `sqlite3 .import` of the
# same file into a bare table with the same columns (no validation, no indexes, no counters).
# Reports rows/s for both, their ratio, and the importer's peak memory.
#
#   bash bench/import.sh            # 1,000,000 rows, every person identified (--full)
#   ROWS=100000 bash bench/import.sh
#   SPARSE=1 bash bench/import.sh   # the file of sessions one to nine (see gen_notifications.py)
#
# Needs: python3, sqlite3 (apt-get install -y sqlite3), GNU time (/usr/bin/time).
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-1000000}
command -v sqlite3 >/dev/null || { echo "sqlite3 is missing: apt-get install -y sqlite3" >&2; exit 1; }
cargo build --release --quiet
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
if [ -n "${SPARSE:-}" ]; then
  python3 bench/gen_notifications.py "$ROWS" > "$WORK/n.csv"
  FLOOR=bench/import_floor.sql
else
  python3 bench/gen_notifications.py "$ROWS" --full > "$WORK/n.csv"
  FLOOR=bench/import_floor_full.sql
fi
SIZE=$(du -h "$WORK/n.csv" | cut -f1)

/usr/bin/time -v target/release/todoke --database "sqlite://$WORK/todoke.db" import notifications "$WORK/n.csv" \
  > "$WORK/import.out" 2> "$WORK/import.time"
cat "$WORK/import.out"
DUPLICATES=$(sqlite3 "$WORK/todoke.db" "SELECT count(*) FROM notifications WHERE duplicate_of IS NOT NULL")
T_IMPORT=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$WORK/import.time")
RSS_KB=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/import.time")

HEADER=$(head -n1 "$WORK/n.csv")
COLUMNS=$(echo "$HEADER" | sed 's/\([a-z_]*\)/"\1" TEXT/g')
sqlite3 "$WORK/bare.db" "PRAGMA journal_mode=WAL; CREATE TABLE t ($COLUMNS);" >/dev/null
/usr/bin/time -v sqlite3 "$WORK/bare.db" ".import --csv --skip 1 $WORK/n.csv t" 2> "$WORK/bare.time"
T_BARE=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$WORK/bare.time")
BARE_ROWS=$(sqlite3 "$WORK/bare.db" "SELECT count(*) FROM t")

# The engine's floor: SQLite alone moving the bare rows into todoke's indexed tables.
target/release/todoke --database "sqlite://$WORK/floor.db" import notifications /dev/null >/dev/null 2>&1 || true
/usr/bin/time -v sqlite3 -cmd "ATTACH '$WORK/bare.db' AS b" "$WORK/floor.db" < "$FLOOR" 2> "$WORK/floor.time"
T_FLOOR=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$WORK/floor.time")

secs() { echo "$1" | awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }'; }
S_IMPORT=$(secs "$T_IMPORT"); S_BARE=$(secs "$T_BARE"); S_FLOOR=$(secs "$T_FLOOR")
python3 - "$ROWS" "$S_IMPORT" "$S_BARE" "$RSS_KB" "$BARE_ROWS" "$SIZE" "$S_FLOOR" "$DUPLICATES" <<'PY'
import sys
rows, t_import, t_bare, rss_kb, bare_rows, size, t_floor = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], float(sys.argv[7])
print(f"file: {rows:,} rows, {size}, {sys.argv[8]} flagged as possible duplicates")
print(f"todoke import: {t_import:.2f} s = {rows / t_import:,.0f} rows/s, peak memory {rss_kb / 1024:.0f} MiB")
print(f"sqlite3 .import (bare table, {bare_rows:,} rows): {t_bare:.2f} s = {rows / t_bare:,.0f} rows/s")
print(f"ratio todoke / bare: {t_bare / t_import:.2f}")
print(f"engine floor (SQL INSERT ... SELECT into todoke's indexed tables): {t_floor:.2f} s = {rows / t_floor:,.0f} rows/s")
PY
