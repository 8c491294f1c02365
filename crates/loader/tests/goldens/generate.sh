#!/usr/bin/env bash
# Regenerate <case>.os-types.json from <case>.fields.json with the real
# os-types CLI (npm os-types, pinned in package.json / package-lock.json).
# Each output file is exactly the CLI's stdout.  See README.md.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

want_version="$(node -p 'require("./package.json").dependencies["os-types"]')"
have_version="$(node -p 'try { require("./node_modules/os-types/package.json").version } catch (e) { "" }')"
if [[ "$have_version" != "$want_version" ]]; then
    echo "installing os-types $want_version with npm ci" >&2
    npm ci --no-audit --no-fund >&2
fi

node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [[ "$node_major" != "20" ]]; then
    echo "warning: the committed goldens were made with Node 20; this is Node $(node --version)" >&2
fi

os_types=./node_modules/.bin/os-types
shopt -s nullglob
inputs=(*.fields.json)
if (( ${#inputs[@]} == 0 )); then
    echo "no *.fields.json inputs found" >&2
    exit 1
fi

status=0
for input in "${inputs[@]}"; do
    case_name="${input%.fields.json}"
    output="$case_name.os-types.json"
    tmp="$(mktemp "$output.XXXXXX")"
    # os-types takes the field list as one JSON argument and prints the
    # result on stdout; on invalid input it prints FAILED and exits 1.
    if "$os_types" "$(cat "$input")" >"$tmp" && ! grep -q '^FAILED' "$tmp"; then
        chmod 644 "$tmp"
        mv "$tmp" "$output"
        echo "wrote $output" >&2
    else
        echo "os-types failed on $input:" >&2
        cat "$tmp" >&2
        rm -f "$tmp"
        status=1
    fi
done
exit "$status"
