#!/usr/bin/env bash
# Benchmark: search latency on 10,000 packages with the embedded index (the search issue).
#
#   ./bench/search.sh [seconds-per-query] [connections]
#
# Fills the registry with 10,000 generated packages (titles, descriptions, country codes, owners), starts the
# release binary (which rebuilds its index from the database), then drives typical searches with wrk: the
# clients' listing (size=10000 as os-explorer asks, anonymous), a free-text query, a filter on a country code,
# and an owner's listing with a user token. Prints p50/p99 per query and throughput as a ratio of /healthz's,
# then single requests on the idle server and the server's peak resident memory.
cd "$(dirname "$0")/.."

before_serve() {
  python3 - "$CONDUCTOR__DATA_DIR/conductor.db" <<'PY'
import hashlib, json, random, sqlite3, sys
random.seed(7)
words = ["budget", "spending", "health", "education", "transport", "defence", "city", "regional", "national",
         "contracts", "grants", "salaries", "revenue", "procurement", "infrastructure", "water", "energy"]
countries = ["MD", "GB", "FR", "DE", "BR", "KE", "IN", "US", "MX", "ZA"]
owners = [hashlib.md5(f"user{i}@example.test".encode()).hexdigest() for i in range(200)]
owners[0] = hashlib.md5(b"bench@example.test").hexdigest()
db = sqlite3.connect(sys.argv[1])
rows = []
for i in range(10000):
    owner = owners[i % len(owners)]
    name = f"package-{i}"
    title = " ".join(random.sample(words, 3)).title() + f" {2000 + i % 25}"
    package = {"name": name, "title": title, "owner": owner, "private": i % 10 == 0,
               "description": " ".join(random.sample(words, 8)), "countryCode": random.choice(countries),
               "count_of_rows": random.randint(10, 100000), "author": f"Author {i % 300} <a@not.shown>",
               "resources": [{"path": "data.csv", "schema": {"fields": [{"name": "amount"}]}}]}
    rows.append((f"{owner}:{name}", owner, json.dumps({"fact_table": "t"}), json.dumps(package),
                 f"http://127.0.0.1/datastore/files/{owner}/{name}/datapackage.json", None, None, "done", 1,
                 1_500_000_000_000 + i, package["count_of_rows"], json.dumps([package["countryCode"]])))
db.executemany("INSERT INTO packages VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
db.commit()
PY
}

source bench/common.sh
owner=$(python3 -c 'import hashlib; print(hashlib.md5(b"bench@example.test").hexdigest())')
echo "peak resident memory of the server after start (index rebuilt): $(peak_rss)"
echo

table \
  "$(wrk_row /healthz /healthz)" \
  "$(wrk_row "listing:size=10000" "/search/package?size=10000")" \
  "$(wrk_row "q=health+budget:size=100" "/search/package?q=%22health%20budget%22&size=100")" \
  "$(wrk_row "countryCode=MD:size=100" "/search/package?package.countryCode=%22MD%22&size=100")" \
  "$(wrk_row "owner-with-token" "/search/package?jwt=$user_token&package.owner=%22$owner%22")"

echo
echo "| one request, idle | median | slowest | bytes |"
echo "|---|---|---|---|"
idle "listing:size=10000" "/search/package?size=10000"
idle "q=health+budget:size=100" "/search/package?q=%22health%20budget%22&size=100"
idle "countryCode=MD:size=100" "/search/package?package.countryCode=%22MD%22&size=100"
idle "owner-with-token" "/search/package?jwt=$user_token&package.owner=%22$owner%22"
echo
echo "peak resident memory of the server: $(peak_rss)"
