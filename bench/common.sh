# Shared by the benchmarks: build the release binary, serve it on the embedded default in a temp folder, and
# measure endpoints with wrk from a second process on loopback. Sourced, not run.
set -euo pipefail

seconds=${1:-10}
connections=${2:-32}

command -v wrk >/dev/null 2>&1 || {
  echo "installing wrk" >&2
  if [ "$(id -u)" -eq 0 ]; then apt-get install -y -qq wrk; else sudo apt-get install -y -qq wrk; fi
}

cargo build --release --locked -p conductor >&2
binary="${CARGO_TARGET_DIR:-target}/release/conductor"
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
export CONDUCTOR__DATA_DIR="$work/var" CONDUCTOR__SERVER__BIND="127.0.0.1:$port" \
  CONDUCTOR__SERVER__BASE_URL="$base/" RUST_LOG=warn

# A user token for bench@example.test, before the server starts (the CLI migrates the database).
user_token=$("$binary" --config-dir config token mint --email bench@example.test)
# A benchmark may fill the database before the server starts (it rebuilds its search index from it).
if declare -F before_serve >/dev/null; then before_serve; fi
"$binary" --config-dir config serve 2>"$work/server.log" &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 600); do curl -fsS "$base/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

# wrk_row NAME PATH [LUA-SCRIPT] -> "NAME requests/s p50 p99"; fails on any non-2xx answer.
wrk_row() {
  local out script=()
  [ -n "${3:-}" ] && script=(-s "$3")
  out=$(wrk -t2 -c"$connections" -d"${seconds}s" --latency "${script[@]}" "$base$2")
  if grep -q "Non-2xx" <<<"$out"; then echo "error: $1 answered non-2xx responses" >&2; echo "$out" >&2; exit 1; fi
  echo "$1 $(awk '/^Requests\/sec/ {print $2}' <<<"$out") $(awk '$1=="50%" {print $2}' <<<"$out") $(awk '$1=="99%" {print $2}' <<<"$out")"
}

# table ROW... : the rows as Markdown, each throughput as a ratio of the first row's.
table() {
  echo "| endpoint | requests/s | p50 | p99 | throughput vs \`$(awk '{print $1}' <<<"$1")\` |"
  echo "|---|---|---|---|---|"
  local first
  first=$(awk '{print $2}' <<<"$1")
  for row in "$@"; do
    read -r name rps p50 p99 <<<"$row"
    echo "| \`$name\` | $rps | $p50 | $p99 | $(python3 -c "print(f'{$rps / $first:.2f}')") |"
  done
  echo
  echo "wrk -t2 -c$connections -d${seconds}s per endpoint, $(nproc) cores, $(date -u +%Y-%m-%d)"
}

# idle NAME PATH [COUNT]: "NAME median max bytes" of COUNT sequential requests, one at a time, on an idle server.
idle() {
  local count=${3:-20}
  curl -fsS -o /dev/null "$base$2"
  for _ in $(seq 1 "$count"); do curl -fsS -o /dev/null -w '%{time_total} %{size_download}\n' "$base$2"; done |
    sort -n | awk -v name="$1" '{t[NR]=$1; b=$2} END {printf "| `%s` | %.1f ms | %.1f ms | %d |\n", name, t[int((NR+1)/2)]*1000, t[NR]*1000, b}'
}

# peak_rss: the server's peak resident memory so far (VmHWM), in MiB.
peak_rss() {
  awk '/^VmHWM/ {printf "%.0f MiB\n", $2/1024}' "/proc/$server/status"
}
