# Helpers for scripts/test and scripts/run: install and start what the project needs on a Debian machine.
# Sourced, not run. Every function is idempotent: it does nothing when the thing is already there.

step() { printf '\n==> %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Debian packages the build and the tests need: libpq for diesel's PostgreSQL driver, a PostgreSQL server for the
# tests (and its initdb for the throwaway clusters), Redis, a C compiler for the bundled SQLite, Node.js for the
# test OpenID Connect provider, headless Chromium with its WebDriver for the browser tests, tmux for the
# terminal test of `conductor publish`, and buildah and debootstrap for the image test (deploy/test-image.sh).
ensure_system_packages() {
  local wanted=(libpq-dev postgresql redis-server pkg-config gcc libc6-dev chromium chromium-driver tmux buildah
    debootstrap nginx)
  local missing=()
  for package in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  # Node.js and Python may come from elsewhere than Debian (a nodesource nodejs bundles npm): check the commands.
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
  python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
  if [ "${#missing[@]}" -gt 0 ]; then
    step "installing ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

ensure_rust_tools() {
  if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    step "adding rustfmt and clippy"
    rustup component add rustfmt clippy
  fi
}

# The machine's PostgreSQL on 127.0.0.1:5432, reachable as postgres without a password (tests create and drop
# databases of their own there; tests that stop a server use throwaway clusters instead).
ensure_postgres() {
  local version
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$version" ]; then
    version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
    step "creating the PostgreSQL $version main cluster"
    as_root pg_createcluster "$version" main
  fi
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    step "starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  if ! psql -X -q -h 127.0.0.1 -U postgres -d postgres -c 'select 1' >/dev/null 2>&1; then
    # A fresh Debian cluster asks for a password on TCP; this is a test server, so trust loopback.
    step "trusting loopback connections to the test PostgreSQL"
    local hba="/etc/postgresql/$version/main/pg_hba.conf"
    as_root sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload
    sleep 1
    psql -X -q -h 127.0.0.1 -U postgres -d postgres -c 'select 1' >/dev/null
  fi
}

ensure_redis() {
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    step "starting Redis"
    as_root mkdir -p /var/lib/redis /var/log/redis
    as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/conductor-test.log
    for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.2; done
  fi
}

# Node.js test peers, from their lock files: the OpenID Connect provider of the login tests
# (tests/oidc-provider) and AngularJS for the browser tests (tests/browser).
ensure_node_peers() {
  local dir
  for dir in tests/oidc-provider tests/browser; do
    if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
      step "npm ci in $dir"
      (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    fi
  done
}

# Python test peers: PyJWT, to check that a Python service of the original's era verifies our tokens, and
# osmem-server, an OpenSearch-compatible server (no real OpenSearch installs here). A venv outside the clone,
# reused between runs; tests find its interpreter through CONDUCTOR_TEST_PYTHON.
ensure_python_peers() {
  local venv="${CONDUCTOR_TEST_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/conductor/venv}"
  if [ ! -x "$venv/bin/python" ]; then
    step "creating the Python test venv at $venv"
    python3 -m venv "$venv"
  fi
  if ! "$venv/bin/python" -c 'import jwt, cryptography, osmem_server, openapi_spec_validator' >/dev/null 2>&1 ||
    [ "$("$venv/bin/schemathesis" --version 2>/dev/null)" != "schemathesis, version 4.32.5" ]; then
    step "installing PyJWT, osmem-server, openapi-spec-validator and schemathesis into the test venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'PyJWT[crypto]==2.10.1' 'osmem-server==0.1.6' \
      'openapi-spec-validator==0.7.1' 'schemathesis==4.32.5'
  fi
  export CONDUCTOR_TEST_PYTHON="$venv/bin/python"
}

# A venv on Python 3.8 at $1 holding the pinned closure $2 (installed without resolving), checked by importing
# $3; $4 names what it is for, in messages. Python 3.8 is pyenv's newest (under ~/.pyenv, or wherever `pyenv root`
# says), else a python3.8 on PATH; there is no fallback to another Python: without 3.8 this fails.
ensure_python38_venv() {
  local venv=$1 requirements=$2 imports=$3 what=$4
  local is_38='import sys, venv; assert sys.version_info[:2] == (3, 8)'
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "$is_38" 2>/dev/null; then
    local python="" candidate root
    root=$(pyenv root 2>/dev/null || true)
    for candidate in $(ls -d "$HOME"/.pyenv/versions/3.8.*/bin/python3.8 ${root:+"$root"/versions/3.8.*/bin/python3.8} \
      2>/dev/null | sort -V -r) "$(command -v python3.8 2>/dev/null || true)"; do
      if [ -x "$candidate" ] && "$candidate" -c "$is_38" 2>/dev/null; then
        python=$candidate
        break
      fi
    done
    if [ -z "$python" ]; then
      echo "error: $what needs Python 3.8, and none was found (looked in ~/.pyenv/versions/3.8.*," \
        "\$(pyenv root)/versions/3.8.* and PATH); install it, e.g. \`pyenv install 3.8\`" >&2
      return 1
    fi
    step "creating the $what venv at $venv with $python"
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv --clear "$venv"
  fi
  local stamp="$venv/.requirements-$(basename "$requirements" .txt)"
  if ! "$venv/bin/python" -c "$imports" >/dev/null 2>&1 || [ "$requirements" -nt "$stamp" ]; then
    step "installing $what and its era's libraries into $venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$requirements"
    "$venv/bin/python" -c "$imports"
    touch "$stamp"
  fi
}

# babbage 0.4.0, os-api's query engine, for the interop check tests/interop/babbage_check.py: it reads loaded
# packages as os-api does. Tests find its interpreter through CONDUCTOR_TEST_BABBAGE_PYTHON.
ensure_babbage_peer() {
  local venv="${CONDUCTOR_TEST_BABBAGE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/conductor/venv-babbage}"
  ensure_python38_venv "$venv" tests/interop/requirements-babbage.txt \
    'import babbage.cube, babbage.validation, sqlalchemy, psycopg2, flask' "babbage 0.4.0" || return 1
  export CONDUCTOR_TEST_BABBAGE_PYTHON="$venv/bin/python"
}

# os-package-registry 0.0.21, the library os-api reads the package registry with, for the interop check
# tests/interop/registry_check.py: it records the library's own Elasticsearch 5 requests and replays them against
# an index Conductor filled. Tests find its interpreter through CONDUCTOR_TEST_REGISTRY_PYTHON.
ensure_registry_peer() {
  local venv="${CONDUCTOR_TEST_REGISTRY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/conductor/venv-registry}"
  ensure_python38_venv "$venv" tests/interop/requirements-registry.txt \
    'import os_package_registry, elasticsearch, os_api_cache, urllib3, redis' "os-package-registry 0.0.21" || return 1
  export CONDUCTOR_TEST_REGISTRY_PYTHON="$venv/bin/python"
}

# s3s-fs 0.17.0, a real S3-compatible server (SigV4, presigned URLs, Content-MD5 checked, nothing kept from a
# rejected PUT), for the S3 datastore tests. Built once into a cache outside the clone (about four minutes) and
# reused; tests find it through CONDUCTOR_TEST_S3S_FS.
ensure_s3s_fs() {
  local root="${CONDUCTOR_S3S_FS_ROOT:-/var/cache/conductor/s3s-fs}"
  if [ ! -x "$root/bin/s3s-fs" ]; then
    step "building s3s-fs 0.17.0 into $root (once)"
    as_root mkdir -p "$root"
    CARGO_TARGET_DIR="$root/build" cargo install s3s-fs --version 0.17.0 --features binary --locked \
      --ignore-rust-version --root "$root"
    rm -rf "$root/build"
  fi
  export CONDUCTOR_TEST_S3S_FS="$root/bin/s3s-fs"
}

# The deployment kit's validators: check-jsonschema (with the Compose specification's schema built in) and
# kubernetes-validate (the Kubernetes schemas of each release), in a venv outside the clone.
ensure_deploy_peers() {
  local venv="${CONDUCTOR_DEPLOY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/conductor/venv-deploy}"
  if [ ! -x "$venv/bin/python" ]; then
    step "creating the deployment validators' venv at $venv"
    python3 -m venv "$venv"
  fi
  if [ "$("$venv/bin/check-jsonschema" --version 2>/dev/null)" != "check-jsonschema, version 0.39.0" ] ||
    [ "$("$venv/bin/kubernetes-validate" --version 2>/dev/null)" != "1.37.0" ]; then
    step "installing check-jsonschema and kubernetes-validate into $venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'check-jsonschema==0.39.0' 'kubernetes-validate==1.37.0'
  fi
  export CONDUCTOR_DEPLOY_VENV="$venv"
}
