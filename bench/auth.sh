#!/usr/bin/env bash
# Benchmark: the token endpoints against /healthz under the same load (DESIGN §10, the identity issue).
#
#   ./bench/auth.sh [seconds-per-endpoint] [connections]
#
# Builds the release binary, serves it on the embedded default (SQLite in a temp folder, generated dev keys),
# mints a user token with `conductor token mint`, then drives each endpoint with wrk from a second process on
# loopback: GET /healthz, GET /user/check with the valid token, GET /user/authorize for os.datastore. Prints
# requests/s and latency per endpoint and each endpoint's throughput as a ratio of /healthz's, measured in this
# one run; copy the table into docs/performance.md. Not part of CI: it needs a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
connections=${2:-32}

command -v wrk >/dev/null 2>&1 || {
  echo "installing wrk" >&2
  if [ "$(id -u)" -eq 0 ]; then apt-get install -y -qq wrk; else sudo apt-get install -y -qq wrk; fi
}

cargo build --release --locked -p conductor >&2
binary="${CARGO_TARGET_DIR:-target}/release/conductor"
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export CONDUCTOR__DATA_DIR="$work/var" CONDUCTOR__SERVER__BIND="127.0.0.1:$port" \
  CONDUCTOR__SERVER__BASE_URL="http://127.0.0.1:$port/" RUST_LOG=warn
token=$("$binary" --config-dir config token mint --email bench@example.test)
"$binary" --config-dir config serve 2>"$work/server.log" &
server=$!
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

run() { # name path -> "name rps p50 p99"
  local out
  out=$(wrk -t2 -c"$connections" -d"${seconds}s" --latency "http://127.0.0.1:$port$2")
  local rps p50 p99
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  if grep -q "Non-2xx" <<<"$out"; then echo "error: $1 answered non-2xx responses" >&2; exit 1; fi
  echo "$1 $rps $p50 $p99"
}

healthz=$(run "/healthz" "/healthz")
check=$(run "/user/check" "/user/check?jwt=$token")
authorize=$(run "/user/authorize" "/user/authorize?jwt=$token&service=os.datastore")

echo "| endpoint | requests/s | p50 | p99 | throughput vs /healthz |"
echo "|---|---|---|---|---|"
base=$(awk '{print $2}' <<<"$healthz")
for line in "$healthz" "$check" "$authorize"; do
  read -r name rps p50 p99 <<<"$line"
  ratio=$(python3 -c "print(f'{$rps / $base:.2f}')")
  echo "| \`$name\` | $rps | $p50 | $p99 | $ratio |"
done
echo
echo "wrk -t2 -c$connections -d${seconds}s per endpoint, $(nproc) cores, $(date -u +%Y-%m-%d)"
