#!/usr/bin/env bash
# Benchmark: POST /datastore/ signing 50 files against /healthz under the same load (the datastore issue).
#
#   ./bench/datastore.sh [seconds-per-endpoint] [connections]
#
# The release binary on the embedded default (local datastore); a permission token from /user/authorize; wrk
# posts os-packager's request shape with 50 files (each signed with HMAC-SHA256). Prints a Markdown table with
# the throughput as a ratio of /healthz's, measured in this one run, for docs/performance.md.
cd "$(dirname "$0")/.."
source bench/common.sh

permission_token=$(curl -fsS "$base/user/authorize?jwt=$user_token&service=os.datastore" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
owner=$(python3 -c 'import hashlib; print(hashlib.md5(b"bench@example.test").hexdigest())')
body=$(python3 - "$owner" <<'PY'
import base64, hashlib, json, sys
files = {}
for i in range(50):
    data = f"year,amount\n2014,{i}\n".encode()
    files[f"data/part-{i:02}.csv"] = {"md5": base64.b64encode(hashlib.md5(data).digest()).decode(),
                                      "name": f"data/part-{i:02}.csv", "length": len(data),
                                      "type": "application/octet-stream"}
print(json.dumps({"metadata": {"owner": sys.argv[1], "name": "bench", "author": "bench"}, "filedata": files}))
PY
)
lua="$work/post.lua"
python3 - "$body" "$permission_token" > "$lua" <<'PY'
import json, sys
body, token = sys.argv[1], sys.argv[2]
print('wrk.method = "POST"')
print(f'wrk.body = {json.dumps(body)}')
print('wrk.headers["Content-Type"] = "application/json"')
print(f'wrk.headers["Auth-Token"] = {json.dumps(token)}')
PY

table \
  "$(wrk_row /healthz /healthz)" \
  "$(wrk_row "POST:/datastore/:50-files" /datastore/ "$lua")"
