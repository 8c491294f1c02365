#!/usr/bin/env bash
# Benchmark: `conductor package load` against each database's own bulk import of the same CSV (the loading issue).
#
#   ./bench/loader.sh [rows] [small-rows] [runs] [backends]
#
# Generates a fiscal CSV of `rows` rows (default 1,000,000; 8 columns, about 54 MiB at 1M) with fixed column
# cardinalities (3 years, 40 ministries x 5 programmes, 120 economic codes, 2 measures, a row number), then for
# each backend (default "postgres sqlite"), `runs` times (default 3), each on a fresh database and each timed step
# after the previous one's pages were written out (see `settle`):
#   - the database's own import of the CSV into one flat typed table: `psql \copy` on PostgreSQL, `sqlite3
#     .import` (the sqlite3 CLI's default pragmas) on SQLite;
#   - `conductor package load` of the package (release build): parse, type, split into the star schema, stage,
#     swap; the fact table's row count is checked after each run.
# It prints the median seconds of each, rows/s, and their ratio (import time / load time: above 1.00, the load is
# faster). Then it loads a `small-rows` (default 100,000) version once per backend and prints both loads' peak
# resident memory (GNU time's maximum RSS) as a ratio. Needs the machine's PostgreSQL (127.0.0.1:5432, trust
# auth), the sqlite3 CLI, and a release build (built here).
#
# SCALE=K also times, in each run right after the `rows` load, a load of K times as many rows on a fresh database,
# and prints how the load time grew against K x 1.15, and that load's peak RSS against the small load's. Alternating
# the sizes inside each run keeps the machine's drift out of the ratio: timed in separate invocations minutes apart,
# this machine's 1M-row load ran 0.95 s in one and 1.14-1.62 s in another. So the verdict is the median of each
# run's own growth (its large load over its small one, timed a few seconds apart); the growth of the two medians,
# which pairs loads from different runs, is printed beside it.
#
# PG_SETTINGS="name=value ..." runs both sides on a server with those settings (reloadable ones only, such as
# `max_wal_size=4GB`, which PostgreSQL's manual advises for bulk loads): set with ALTER SYSTEM before the first run
# and reset when the benchmark exits.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
small=${2:-100000}
runs=${3:-3}
backends=${4:-postgres sqlite}

need() { command -v "$1" >/dev/null 2>&1 || {
  if [ "$(id -u)" -eq 0 ]; then apt-get install -y -qq "$2"; else sudo apt-get install -y -qq "$2"; fi; }; }
need /usr/bin/time time
need sqlite3 sqlite3
cargo build --release --locked -p conductor >&2
binary="${CARGO_TARGET_DIR:-target}/release/conductor"
work=$(mktemp -d)
databases=()
pg_settings=${PG_SETTINGS:-}
server() { psql -qtAh 127.0.0.1 -U postgres -d postgres -c "$1"; }
cleanup() {
  for database in "${databases[@]}"; do
    server "DROP DATABASE IF EXISTS $database" >/dev/null 2>&1 || true
  done
  for setting in $pg_settings; do server "ALTER SYSTEM RESET ${setting%%=*}" >/dev/null 2>&1 || true; done
  if [ -n "$pg_settings" ]; then server "SELECT pg_reload_conf()" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
for setting in $pg_settings; do
  name=${setting%%=*}
  # A setting that needs a restart would silently not apply: refuse it.
  [ "$(server "SELECT context FROM pg_settings WHERE name = '$name'")" = sighup ] ||
    { echo "error: PG_SETTINGS: $name is not a setting a reload applies" >&2; exit 2; }
  server "ALTER SYSTEM SET $name = '${setting#*=}'" >/dev/null
done
if [ -n "$pg_settings" ]; then server "SELECT pg_reload_conf()" >/dev/null; sleep 1; fi

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
    {"name": "Line", "columnType": "unknown:integer"},
]
json.dump({"name": "bench", "title": "Loader benchmark", "resources": [
    {"name": "data", "path": "data.csv", "schema": {"fields": fields}}]}, open(f"{folder}/datapackage.json", "w"))
with open(f"{folder}/data.csv", "w") as out:
    out.write(",".join(f["name"] for f in fields) + "\n")
    for i in range(rows):
        ministry = random.randrange(40)
        out.write(f"{2018 + i % 3},M{ministry:02d},Ministry {ministry},P{ministry:02d}.{random.randrange(5)},"
                  f"E{random.randrange(120):03d},{random.randrange(10**7) / 100},{random.randrange(10**7) / 100},"
                  f"{i % 1000}\n")
PY
}

seconds_of() { # COMMAND...: runs it, prints its wall time in seconds
  local start end
  start=$(date +%s.%N)
  "$@" >&2
  end=$(date +%s.%N)
  python3 -c "print($end - $start)"
}
# Before each timed step: the previous step's dirty pages written out (PostgreSQL's CHECKPOINT, then the kernel's
# sync), so neither side pays for the other's write-back. Without it the load, which always follows the import,
# took 0.88-1.05 s at 1M rows against 0.70-0.77 s alone (2026-12-02).
settle() { # BACKEND
  if [ "$1" = postgres ]; then server CHECKPOINT >/dev/null; fi
  sync
}
peak_kib() { awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$1"; }
fact_table=$(python3 -c "
import hashlib; print(hashlib.md5(b'bench@example.test').hexdigest() + hashlib.md5(b'bench').hexdigest()[:16])")
flat_columns='"Year" INTEGER, "Ministry" TEXT, "Ministry name" TEXT, "Programme" TEXT, "Economic code" TEXT,
  "Approved" NUMERIC, "Executed" NUMERIC, "Line" INTEGER'

scale=${SCALE:-}
echo "generating $rows and $small rows${scale:+ and $scale times $rows}" >&2
generate "$work/big" "$rows"
generate "$work/small" "$small"
if [ -n "$scale" ]; then generate "$work/scaled" "$((scale * rows))"; fi
export RUST_LOG=warn

fresh() { # BACKEND NAME: a fresh database and data folder, migrated; sets url and data
  data="$work/var-$2"
  rm -rf "$data"
  mkdir -p "$data"
  if [ "$1" = postgres ]; then
    local database="conductor_bench_$$_$2"
    databases+=("$database")
    server "DROP DATABASE IF EXISTS $database" >/dev/null
    server "CREATE DATABASE $database" >/dev/null
    url="postgres://postgres@127.0.0.1:5432/$database"
  else
    url="sqlite://$data/conductor.db"
  fi
  CONDUCTOR__DATA_DIR="$data" CONDUCTOR__DATABASE__URL="$url" "$binary" --config-dir config migrate >&2
}

import_flat() { # BACKEND CSV
  if [ "$1" = postgres ]; then
    psql -qh 127.0.0.1 -U postgres -d "${url##*/}" -c "CREATE TABLE flat ($flat_columns)"
    seconds_of psql -qh 127.0.0.1 -U postgres -d "${url##*/}" \
      -c "\\copy flat FROM '$2' WITH (FORMAT csv, HEADER true)"
  else
    local file="$data/flat.db"
    sqlite3 "$file" "CREATE TABLE flat ($flat_columns)"
    seconds_of sqlite3 "$file" ".import --csv --skip 1 $2 flat"
  fi
}

load() { # PACKAGE TIMEFILE
  seconds_of /usr/bin/time -v -o "$2" env CONDUCTOR__DATA_DIR="$data" CONDUCTOR__DATABASE__URL="$url" \
    "$binary" --config-dir config package load "$1" --owner bench@example.test
}

count_facts() {
  if [ "$1" = postgres ]; then
    psql -qtAh 127.0.0.1 -U postgres -d "${url##*/}" -c "SELECT count(*) FROM \"$fact_table\""
  else
    sqlite3 "$data/conductor.db" "SELECT count(*) FROM \"$fact_table\""
  fi
}

median() { python3 -c "import statistics, sys; print(statistics.median(float(x) for x in sys.argv[1:]))" "$@"; }

echo "| backend | the database's own import (median of $runs) | \`conductor package load\` (median of $runs) | rows | import rows/s | load rows/s | ratio (import s / load s) | all runs: import; load (s) |"
echo "|---|---|---|---|---|---|---|---|"
memory=() growth=()
for backend in $backends; do
  imports=() loads=() scaled=()
  for run in $(seq "$runs"); do
    fresh "$backend" "$run"
    settle "$backend"
    imports+=("$(import_flat "$backend" "$work/big/data.csv")")
    settle "$backend"
    loads+=("$(load "$work/big" "$work/$backend-big.time")")
    loaded=$(count_facts "$backend")
    [ "$loaded" -eq "$rows" ] || { echo "error: $backend loaded $loaded rows, not $rows" >&2; exit 1; }
    if [ -n "$scale" ]; then
      fresh "$backend" "${run}_scaled"
      settle "$backend"
      scaled+=("$(load "$work/scaled" "$work/$backend-scaled.time")")
      loaded=$(count_facts "$backend")
      [ "$loaded" -eq "$((scale * rows))" ] ||
        { echo "error: $backend loaded $loaded rows, not $((scale * rows))" >&2; exit 1; }
    fi
  done
  if [ -n "$scale" ]; then
    growth+=("$backend $(peak_kib "$work/$backend-scaled.time") ${loads[*]} / ${scaled[*]}")
  fi
  import_s=$(median "${imports[@]}")
  load_s=$(median "${loads[@]}")
  fresh "$backend" small
  settle "$backend"
  load "$work/small" "$work/$backend-small.time" >/dev/null
  python3 - "$backend" "$rows" "$import_s" "$load_s" "${imports[*]}" "${loads[*]}" <<'PY'
import sys
backend, rows, import_s, load_s, imports, loads = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5], sys.argv[6]
name = {"postgres": "PostgreSQL (`psql \\copy`)", "sqlite": "SQLite (`sqlite3 .import`)"}[backend]
fmt = lambda xs: ", ".join(f"{float(x):.2f}" for x in xs.split())
print(f"| {name} | {import_s:.2f} s | {load_s:.2f} s | {rows:,} | {rows / import_s:,.0f} | {rows / load_s:,.0f} | **{import_s / load_s:.2f}** | {fmt(imports)}; {fmt(loads)} |")
PY
  memory+=("$backend $(peak_kib "$work/$backend-small.time") $(peak_kib "$work/$backend-big.time")")
done
echo
echo "| backend | peak RSS at $small rows | at $rows rows | ratio |"
echo "|---|---|---|---|"
for line in "${memory[@]}"; do
  read -r backend small_kib big_kib <<<"$line"
  python3 -c "
import sys
b, s, l = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
print(f'| {b} | {s / 1024:.1f} MiB | {l / 1024:.1f} MiB | {l / s:.2f} |')" "$backend" "$small_kib" "$big_kib"
done
if [ -n "$scale" ]; then
  echo
  echo "| backend | load of $rows rows (median) | of $((scale * rows)) rows (median) | growth of the medians | each run's growth | median of the runs' growth | allowed | peak RSS at $((scale * rows)) rows / at $small |"
  echo "|---|---|---|---|---|---|---|---|"
  for line in "${growth[@]}"; do
    small_kib=$(peak_kib "$work/${line%% *}-small.time")
    python3 - "$scale" "$small_kib" $line <<'PY'
import statistics, sys
scale, small_kib, backend, scaled_kib = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
cut = sys.argv.index("/")
base, scaled = [float(x) for x in sys.argv[5:cut]], [float(x) for x in sys.argv[cut + 1:]]
runs = [s / b for b, s in zip(base, scaled)]
each = ", ".join(f"{g:.2f}x" for g in runs)
b, s = statistics.median(base), statistics.median(scaled)
print(f"| {backend} | {b:.2f} s | {s:.2f} s | {s / b:.2f}x | {each} | **{statistics.median(runs):.2f}x** | "
      f"{scale * 1.15:.2f}x | {scaled_kib / small_kib:.2f} |")
PY
  done
fi
echo
applied=""
for setting in $pg_settings; do applied+=", ${setting%%=*} $(server "SHOW ${setting%%=*}")"; done
echo "$(nproc) cores, PostgreSQL $(server 'SHOW server_version')$applied, sqlite3 $(sqlite3 --version | cut -d' ' -f1), $(date -u +%Y-%m-%d)"
