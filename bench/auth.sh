#!/usr/bin/env bash
# Benchmark: the token endpoints against /healthz under the same load (the identity issue).
#
#   ./bench/auth.sh [seconds-per-endpoint] [connections]
#
# The release binary on the embedded default (SQLite, generated dev key) with a user token from
# `conductor token mint`; wrk drives GET /healthz, GET /user/check with the token, and GET /user/authorize for
# os.datastore. Prints a Markdown table with each endpoint's throughput as a ratio of /healthz's, measured in
# this one run; it goes into docs/performance.md. Not part of CI: it needs a release build.
cd "$(dirname "$0")/.."
source bench/common.sh

table \
  "$(wrk_row /healthz /healthz)" \
  "$(wrk_row /user/check "/user/check?jwt=$user_token")" \
  "$(wrk_row /user/authorize "/user/authorize?jwt=$user_token&service=os.datastore")"
