#!/usr/bin/env bash
# Benchmark: loading a generated fiscal CSV into PostgreSQL (the loading issue).
#
#   ./bench/loader.sh [rows] [small-rows]
#
# Generates a fiscal CSV of `rows` rows (default 1,000,000) with fixed column cardinalities (3 years,
# 40 ministries x 5 programmes, 120 economic codes, 2 measures), then on a fresh PostgreSQL database:
#   1. `psql \copy` of the same CSV into one flat table (the raw COPY rate, the ceiling);
#   2. `conductor package load` of the package (release build): parse, type, split into the star schema,
#      COPY into staging tables, swap;
# and reports rows/s of each and their ratio. Then it loads a `small-rows` (default 100,000) version and
# reports the peak resident memory (GNU time's maximum RSS) of both loads, as a ratio.
# Needs the machine's PostgreSQL (127.0.0.1:5432, trust auth) and a release build (built here).
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
small=${2:-100000}

command -v /usr/bin/time >/dev/null 2>&1 || {
  if [ "$(id -u)" -eq 0 ]; then apt-get install -y -qq time; else sudo apt-get install -y -qq time; fi
}
cargo build --release --locked -p conductor >&2
binary="${CARGO_TARGET_DIR:-target}/release/conductor"
work=$(mktemp -d)
database="conductor_bench_$$"
trap 'psql -qh 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $database" >/dev/null 2>&1; rm -rf "$work"' EXIT
psql -qh 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $database" >/dev/null
url="postgres://postgres@127.0.0.1:5432/$database"

generate() { # DIR ROWS
  mkdir -p "$1"
  python3 - "$1" "$2" <<'PY'
import json, random, sys
folder, rows = sys.argv[1], int(sys.argv[2])
random.seed(11)
fields = [
    {"name": "Year", "columnType": "date:fiscal-year"},
    {"name": "Ministry", "columnType": "administrative-classification:generic:level1:code"},
    {"name": "Ministry name", "columnType": "administrative-classification:generic:level1:label"},
    {"name": "Programme", "columnType": "administrative-classification:generic:level2:code"},
    {"name": "Economic code", "columnType": "economic-classification:generic:level1:code"},
    {"name": "Approved", "columnType": "value"},
    {"name": "Executed", "columnType": "value"},
]
json.dump({"name": "bench", "title": "Loader benchmark", "resources": [
    {"name": "data", "path": "data.csv", "schema": {"fields": fields}}]}, open(f"{folder}/datapackage.json", "w"))
with open(f"{folder}/data.csv", "w") as out:
    out.write(",".join(f["name"] for f in fields) + "\n")
    for i in range(rows):
        ministry = random.randrange(40)
        out.write(f"{2018 + i % 3},M{ministry:02d},Ministry {ministry},P{ministry:02d}.{random.randrange(5)},"
                  f"E{random.randrange(120):03d},{random.randrange(10**7) / 100},{random.randrange(10**7) / 100}\n")
PY
}

peak_kib() { awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$1"; }

echo "generating $rows and $small rows" >&2
generate "$work/big" "$rows"
generate "$work/small" "$small"
export CONDUCTOR__DATA_DIR="$work/var" CONDUCTOR__DATABASE__URL="$url" RUST_LOG=warn
"$binary" --config-dir config migrate >&2

psql -qh 127.0.0.1 -U postgres -d "$database" -c 'CREATE TABLE flat ("Year" INTEGER, "Ministry" TEXT,
  "Ministry name" TEXT, "Programme" TEXT, "Economic code" TEXT, "Approved" NUMERIC, "Executed" NUMERIC)'
start=$(date +%s.%N)
psql -qh 127.0.0.1 -U postgres -d "$database" -c "\\copy flat FROM '$work/big/data.csv' WITH (FORMAT csv, HEADER true)"
copy_seconds=$(python3 -c "import time; print(time.time() - $start)")

start=$(date +%s.%N)
/usr/bin/time -v -o "$work/big.time" "$binary" --config-dir config package load "$work/big" --owner bench@example.test
load_seconds=$(python3 -c "import time; print(time.time() - $start)")
loaded=$(psql -qtAh 127.0.0.1 -U postgres -d "$database" -c "SELECT count(*) FROM \"$(python3 -c "
import hashlib; print(hashlib.md5(b'bench@example.test').hexdigest() + hashlib.md5(b'bench').hexdigest()[:16])")\"")
[ "$loaded" -eq "$rows" ] || { echo "error: loaded $loaded rows, not $rows" >&2; exit 1; }

/usr/bin/time -v -o "$work/small.time" "$binary" --config-dir config package load "$work/small" --owner bench@example.test
big_kib=$(peak_kib "$work/big.time")
small_kib=$(peak_kib "$work/small.time")

python3 - "$rows" "$copy_seconds" "$load_seconds" "$small" "$small_kib" "$big_kib" <<'PY'
import sys
rows, copy_s, load_s, small, small_kib, big_kib = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
print("| load | rows | seconds | rows/s | vs `psql \\copy` |")
print("|---|---|---|---|---|")
print(f"| `psql \\copy` into one flat table | {rows:,} | {copy_s:.1f} | {rows / copy_s:,.0f} | 1.00 |")
print(f"| `conductor package load` (star schema) | {rows:,} | {load_s:.1f} | {rows / load_s:,.0f} | {copy_s / load_s:.2f} |")
print()
print("| load | peak RSS | vs the smaller load |")
print("|---|---|---|")
print(f"| {small:,} rows | {small_kib / 1024:.1f} MiB | 1.00 |")
print(f"| {rows:,} rows | {big_kib / 1024:.1f} MiB | {big_kib / small_kib:.2f} |")
PY
echo
echo "PostgreSQL on 127.0.0.1, $(nproc) cores, $(date -u +%Y-%m-%d)"
