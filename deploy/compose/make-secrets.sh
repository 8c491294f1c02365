#!/usr/bin/env bash
# Makes the Compose secrets under deploy/compose/secrets (never committed): a signing key pair, random
# PostgreSQL and S3 passwords, the conductor_secrets file that carries them to Conductor, and an empty OIDC
# client secret to replace with your provider's. Existing files are kept, so running it again changes nothing.
#   deploy/compose/make-secrets.sh [path to the conductor binary]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
binary=${1:-${CARGO_TARGET_DIR:-target}/release/conductor}
secrets="$here/secrets"
mkdir -p "$secrets"
chmod 0700 "$secrets"
[ -s "$secrets/private.pem" ] || "$binary" keys generate --out "$secrets"
password() { head -c 24 /dev/urandom | base64 | tr -d '/+=' ; }
[ -s "$secrets/postgres-password" ] || password >"$secrets/postgres-password"
[ -s "$secrets/s3-secret-key" ] || password >"$secrets/s3-secret-key"
[ -e "$secrets/oidc-client-secret" ] || : >"$secrets/oidc-client-secret"
if [ ! -s "$secrets/conductor-secrets.toml" ]; then
  sed -e "s/POSTGRES_PASSWORD/$(cat "$secrets/postgres-password")/" \
      -e "s/S3_SECRET_KEY/$(cat "$secrets/s3-secret-key")/" \
      "$here/conductor-secrets.example.toml" >"$secrets/conductor-secrets.toml"
fi
chmod 0600 "$secrets"/*
# The containers read them as their own user (uid 10001): Compose mounts them with the modes compose.yaml gives.
echo "secrets in $secrets: put your OIDC client secret in oidc-client-secret"
