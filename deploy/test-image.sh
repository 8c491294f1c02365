#!/usr/bin/env bash
# Builds deploy/Containerfile and runs the image as a deployer would, checking from the host what only a real
# run shows (issue: the deployment kit). No image registry is reachable here, so the base image is made
# locally (deploy/base-image.sh); buildah builds and runs with chroot isolation (podman's own runtime cannot set
# rlimits in this sandbox), sharing the host's network.
#
# Checks: /readyz answers ready on a fresh volume; a user token minted inside the container works from outside;
# the gateway runs as the image's non-root user; a package published from the host is still there after a second
# start on the same volume. Prints the image's size.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
image=localhost/conductor:test

step() { printf '\n==> %s\n' "$*"; }

step "the base image"
deploy/base-image.sh

step "the release binary"
cargo build --release --locked -p conductor
binary="$CARGO_TARGET_DIR/release/conductor"

work=$(mktemp -d)
container=""
server=""
cleanup() {
  local status=$?
  pkill -TERM -f "^/usr/local/bin/conductor --config-dir /etc/conductor/config serve" 2>/dev/null || true
  if [ -n "$server" ]; then wait "$server" 2>/dev/null || true; fi
  if [ -n "$container" ]; then buildah rm "$container" >/dev/null 2>&1; fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

step "building deploy/Containerfile"
# The context holds what the Containerfile copies: the binary (its debug sections stripped: a quarter of the
# size) at the path it expects, and config/.
mkdir -p "$work/context/target/release"
strip --strip-debug -o "$work/context/target/release/conductor" "$binary"
cp -r config "$work/context/config"
buildah bud --quiet --format docker --isolation chroot --pull=never -f deploy/Containerfile -t "$image" "$work/context" >/dev/null
size=$(buildah images --format '{{.Size}}' "$image")
echo "built $image: $size"

# What the image runs: its entrypoint and command, read from the image rather than repeated here.
read -r -a entrypoint <<<"$(buildah inspect --type image --format '{{range .OCIv1.Config.Entrypoint}}{{.}} {{end}}' "$image")"
read -r -a command <<<"$(buildah inspect --type image --format '{{range .OCIv1.Config.Cmd}}{{.}} {{end}}' "$image")"
user=$(buildah inspect --type image --format '{{.OCIv1.Config.User}}' "$image")
uid=${user%%:*}
[ "$uid" != "0" ] && [ -n "$uid" ] || { echo "error: the image runs as root ($user)" >&2; exit 1; }

# A volume and the secrets, as a deployer mounts them: the signing key is never in the image.
volume="$work/volume"
secrets="$work/secrets"
mkdir -p "$volume"
chown "$uid" "$volume"
"$binary" keys generate --out "$secrets" 2>/dev/null
chmod 0644 "$secrets/private.pem" # readable by the container's user (a Compose or Kubernetes secret is too)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
container=$(buildah from --pull=never "$image")
# The image declares /var/lib/conductor a VOLUME, for which buildah run also makes an anonymous volume of its own
# each run; that one and our bind mount competed, and now and then a run wrote into the throwaway one (writes
# that seemed lost). The working container drops the declaration, so the host folder is the only volume, as
# `docker run -v` gives.
buildah config --volume /var/lib/conductor- "$container"
run_in_image() { # ARGS...: a process of the image, with the deployment's mounts and settings
  buildah run --isolation chroot --network host \
    -v "$volume:/var/lib/conductor" -v "$secrets:/run/secrets:ro" \
    --env CONDUCTOR__AUTH__KEYS__PRIVATE_KEY_FILE=/run/secrets/private.pem \
    --env CONDUCTOR__SERVER__BIND="127.0.0.1:$port" \
    --env CONDUCTOR__SERVER__BASE_URL="$base/" \
    "$container" -- "$@"
}

start() {
  run_in_image "${entrypoint[@]}" "${command[@]}" >"$work/serve.log" 2>&1 &
  server=$!
  for _ in $(seq 1 150); do
    if ! kill -0 "$server" 2>/dev/null; then
      echo "error: the gateway exited at start" >&2
      cat "$work/serve.log" >&2
      exit 1
    fi
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/readyz")" = 200 ]; then
      return 0
    fi
    sleep 0.2
  done
  echo "error: /readyz never answered 200" >&2
  cat "$work/serve.log" >&2
  exit 1
}

# Stops the gateway as a container runtime does: SIGTERM to the process itself (buildah run does not pass a
# signal on), then waits for it and for its port to be free.
stop() {
  local gateway
  gateway=$(pgrep -f "^/usr/local/bin/conductor --config-dir /etc/conductor/config serve" || true)
  [ -n "$gateway" ] && kill -TERM $gateway
  wait "$server" 2>/dev/null || true
  server=""
  for _ in $(seq 1 100); do
    pgrep -f "^/usr/local/bin/conductor --config-dir /etc/conductor/config serve" >/dev/null || return 0
    sleep 0.1
  done
  echo "error: the gateway did not stop on SIGTERM" >&2
  exit 1
}

step "first start on a fresh volume"
start
curl -fsS "$base/readyz"
echo
pid=$(pgrep -f "^/usr/local/bin/conductor --config-dir /etc/conductor/config serve" | head -n 1)
running_as=$(ps -o uid= -p "$pid" | tr -d ' ')
[ "$running_as" = "$uid" ] || { echo "error: the gateway runs as uid $running_as, not $uid" >&2; exit 1; }
echo "the gateway runs as uid $running_as"
[ "$(stat -c %u "$volume/conductor.db")" = "$uid" ] || { echo "error: the database is not the user's" >&2; exit 1; }

# A user token minted inside the image (a second process on the volume, as an operator runs one), verified outside.
token=$(run_in_image "${entrypoint[@]}" token mint --email deployer@example.org 2>"$work/mint.log") ||
  { cat "$work/mint.log" >&2; exit 1; }
checked=$(curl -fsS "$base/user/check" -H "Authorization: Bearer $token")
python3 -c 'import json, sys; a = json.loads(sys.argv[1]); assert a["authenticated"], a; print("a token minted inside works outside:", a["profile"]["email"])' "$checked" ||
  { echo "the token: $token" >&2; cat "$work/mint.log" >&2; exit 1; }

key=$(curl -fsS -X POST "$base/user/keys" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -d '{"name": "image test", "scope": {"os.datastore": ["datapackage-upload"]}}' |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["secret"])')
CONDUCTOR_API_KEY="$key" "$binary" publish tests/fixtures/packages/os-packager-example --to "$base/" --publish
stop

step "second start on the same volume"
start
found=$(curl -fsS "$base/search/package?q=%22example%22")
python3 -c 'import json, sys; hits = json.loads(sys.argv[1]); assert len(hits) == 1, hits; print("kept across restarts:", hits[0]["id"])' "$found"
checked=$(curl -fsS "$base/user/check" -H "Authorization: Bearer $token")
python3 -c 'import json, sys; assert json.loads(sys.argv[1])["authenticated"]; print("the user and the key set are kept")' "$checked"
stop

echo
echo "deploy/test-image.sh: the image ($size) passed"
