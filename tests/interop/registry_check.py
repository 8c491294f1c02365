#!/usr/bin/env python3
"""Does os-package-registry 0.0.21, the library os-api reads the package registry with, find in Conductor's
OpenSearch documents what it reads?

1. Record: the library is pointed at a capturing HTTP server on loopback that answers as Elasticsearch 5 would
   (plausible placeholder answers, just so the library proceeds), and its read calls are made: the constructor,
   get_package, get_model, has_model, get_raw (for every record and for an unknown id), list_models, get_stats.
   The server records each request: method, path, query, body.
2. Replay: the recorded requests are sent, byte for byte, through a rewriting proxy to the real index Conductor's
   adapter filled (osmem-server, OpenSearch 3.8). The proxy applies only the rules in REQUEST_RULES and
   RESPONSE_RULES below, each of them a difference between Elasticsearch 5 and OpenSearch 3 (typed endpoints,
   the shape of hits.total, the _type of a document), none of them touching data. A request that no rule
   names is refused, so nothing passes unexplained, and nothing but reads ever reaches the index.
3. Compare: the library itself is run through the proxy, its requests must be the recorded ones, and what it
   returns must equal the registry records given (the rows of Conductor's `packages` table).

Prints one JSON summary line and exits 0, or one JSON line per difference, then the summary, and exits 1.
Run with the interpreter of the venv ensure_registry_peer (scripts/services.sh) makes:

    "$CONDUCTOR_TEST_REGISTRY_PYTHON" tests/interop/registry_check.py \
        --opensearch http://127.0.0.1:PORT --index packages --record record.json [--record more.json ...]
"""

import argparse
import http.client
import ipaddress
import json
import logging
import os
import sys
import threading
import traceback
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# os-api-cache (imported by the library) connects to Redis when OS_API_CACHE is set; this check reads only.
os.environ.pop("OS_API_CACHE", None)

from os_package_registry import PackageRegistry  # noqa: E402  (after the environment is settled)

DOC_TYPE = PackageRegistry.DOC_TYPE  # "package"
# get_raw's tuple, in its order: (name, origin_url, package, model, dataset, author, loading_status, loaded).
GET_RAW_FIELDS = ("name", "origin_url", "package", "model", "dataset", "author", "loading_status", "loaded")
RECORD_FIELDS = ("id", "model", "package", "origin_url", "dataset", "author", "loading_status", "loaded",
                 "last_update")


# ---------------------------------------------------------------------------------------------------------------
# The rewrite rules: Elasticsearch 5 (what the library speaks) -> OpenSearch 3.8 (what osmem speaks), and back.
# Each is a difference of versions only. A path is kept percent-encoded, segment by segment, as the client sent it.
# ---------------------------------------------------------------------------------------------------------------

class RequestRule:
    def __init__(self, name, why, methods, pattern, target):
        self.name, self.why, self.methods = name, why, methods
        self.pattern = pattern  # segments: "{index}" the index named, "{id}" any one segment, else literal
        self.target = target    # the same notation

    def apply(self, method, segments, index):
        if method not in self.methods or len(segments) != len(self.pattern):
            return None
        bound = {}
        for want, got in zip(self.pattern, segments):
            if want == "{index}":
                if urllib.parse.unquote(got) != index:
                    return None
                bound[want] = got
            elif want == "{id}":
                if got.startswith("_"):  # an endpoint (_search, _count, ...), not a document id
                    return None
                bound[want] = got
            elif got != want:
                return None
        return "/" + "/".join(bound.get(part, part) for part in self.target)


READS = ("GET", "HEAD")
REQUEST_RULES = [
    RequestRule(
        "typed-document",
        "Elasticsearch 5 addresses a document by index, type and id (/<index>/package/<id>); Elasticsearch 7 "
        "deprecated types and OpenSearch 2 removed them, so the same document is /<index>/_doc/<id>. The index, "
        "the id and the query are passed on unchanged.",
        READS, ["{index}", DOC_TYPE, "{id}"], ["{index}", "_doc", "{id}"]),
    RequestRule(
        "typed-search",
        "A search restricted to one type (/<index>/package/_search) is the search of the whole index once types "
        "are gone (/<index>/_search): every document of a registry index is of the type package, the only type "
        "the library ever writes.",
        READS + ("POST",), ["{index}", DOC_TYPE, "_search"], ["{index}", "_search"]),
    RequestRule(
        "typed-count",
        "Likewise for counting: /<index>/package/_count is /<index>/_count.",
        READS + ("POST",), ["{index}", DOC_TYPE, "_count"], ["{index}", "_count"]),
    RequestRule(
        "index-exists",
        "Unchanged: whether the index exists (HEAD /<index>, the constructor's indices.exists) is asked and "
        "answered alike in both versions, an alias included.",
        ("HEAD",), ["{index}"], ["{index}"]),
    RequestRule(
        "untyped-search",
        "Unchanged: a search of the whole index (/<index>/_search, get_stats's aggregations) is the same request "
        "in both versions.",
        READS + ("POST",), ["{index}", "_search"], ["{index}", "_search"]),
]


def rule_hits_total_as_number(answer, request):
    """Elasticsearch 5 answers a search with hits.total, a number; Elasticsearch 7 and OpenSearch answer
    {"value": n, "relation": "eq"|"gte"}. An exact count ("eq") is the same number. A lower bound ("gte") has
    no ES 5 form, so it is left as it is and the check reports it."""
    hits = answer.get("hits") if isinstance(answer, dict) else None
    if isinstance(hits, dict) and isinstance(hits.get("total"), dict) and hits["total"].get("relation") == "eq":
        hits["total"] = hits["total"]["value"]
        return True
    return False


def rule_type_name(answer, request):
    """Elasticsearch 5 names the type of every document it returns (_type); OpenSearch 2 and later have no
    types and leave _type out. In a registry index every document is of the type package, so that is the name
    ES 5 gives: added to a document's answer and to each search hit, where it is missing."""
    changed = False
    if not isinstance(answer, dict):
        return False
    if "_id" in answer and "_type" not in answer:
        answer["_type"] = DOC_TYPE
        changed = True
    hits = answer.get("hits")
    for hit in (hits.get("hits") or []) if isinstance(hits, dict) else []:
        if isinstance(hit, dict) and "_type" not in hit:
            hit["_type"] = DOC_TYPE
            changed = True
    return changed


RESPONSE_RULES = [
    ("hits-total-as-number", rule_hits_total_as_number),
    ("type-name", rule_type_name),
]


# ---------------------------------------------------------------------------------------------------------------
# HTTP plumbing: a capturing server (ES 5 answers) and the rewriting proxy, both on loopback only.
# ---------------------------------------------------------------------------------------------------------------

def split_target(target):
    path, _, query = target.partition("?")
    return path, query


def body_of(raw):
    if not raw:
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except ValueError:
        return raw.decode("utf-8", "replace")


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []
        self.call = None

    def add(self, entry):
        with self.lock:
            entry["call"] = self.call
            self.requests.append(entry)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16  # an answer leaves in one write (flushed after each request), not headers then body
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send(self, status, answer, content_type="application/json; charset=UTF-8"):
        data = answer if isinstance(answer, bytes) else json.dumps(answer).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_GET(self):
        self.handle_request()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET


class CaptureHandler(Handler):
    """Answers as Elasticsearch 5 would, with placeholder documents, and records every request."""

    def handle_request(self):
        server = self.server
        raw = self.read_body()
        path, query = split_target(self.path)
        server.recorder.add({"method": self.command, "path": path, "query": query, "body": body_of(raw),
                             "raw_body": raw, "content_type": self.headers.get("Content-Type")})
        segments = path.strip("/").split("/")
        index = server.index
        if segments and urllib.parse.unquote(segments[0]) != index:
            return self.send(404, es5_error("index_not_found_exception", "no such index", 404))
        if len(segments) == 1 and self.command == "HEAD":
            return self.send(200, b"")
        if len(segments) == 3 and segments[1] == DOC_TYPE and not segments[2].startswith("_"):
            doc_id = urllib.parse.unquote_plus(segments[2])
            if doc_id in server.known:
                return self.send(200, {"_index": index, "_type": DOC_TYPE, "_id": doc_id, "_version": 1,
                                       "found": True, "_source": placeholder_source(doc_id)})
            return self.send(404, {"_index": index, "_type": DOC_TYPE, "_id": doc_id, "found": False})
        if len(segments) == 3 and segments[1] == DOC_TYPE and segments[2] == "_count":
            return self.send(200, {"count": server.count, "_shards": shards()})
        if segments[1:] in ([DOC_TYPE, "_search"], ["_search"]):
            params = dict(urllib.parse.parse_qsl(query))
            body = body_of(raw) if raw else None
            if isinstance(body, dict) and "aggs" in body:
                return self.send(200, {"took": 1, "timed_out": False, "_shards": shards(),
                                       "hits": {"total": server.count, "max_score": 0.0, "hits": []},
                                       "aggregations": {k: {"value": 0} for k in body["aggs"]}})
            start, size = int(params.get("from", 0)), int(params.get("size", 10))
            ids = server.known_list + ["placeholder:%d" % n for n in range(max(0, server.count - len(server.known)))]
            hits = [{"_index": index, "_type": DOC_TYPE, "_id": i, "_score": 1.0, "_source": placeholder_source(i)}
                    for i in ids[start:start + size]]
            return self.send(200, {"took": 1, "timed_out": False, "_shards": shards(),
                                   "hits": {"total": server.count, "max_score": 1.0, "hits": hits}})
        return self.send(400, es5_error("illegal_argument_exception", "not answered by the capture", 400))


def placeholder_source(doc_id):
    # Deliberately unlike any real record: the comparison must be won against the real index, not this one.
    return {"id": doc_id, "model": {"capture": "placeholder"}, "package": {"capture": "placeholder"},
            "origin_url": "capture:placeholder", "dataset": None, "author": None, "loading_status": None,
            "loaded": True}


def shards():
    return {"total": 1, "successful": 1, "failed": 0}


def es5_error(kind, reason, status):
    return {"error": {"root_cause": [{"type": kind, "reason": reason}], "type": kind, "reason": reason},
            "status": status}


class ProxyHandler(Handler):
    """Rewrites by REQUEST_RULES, forwards to the real index, rewrites the answer by RESPONSE_RULES."""

    def handle_request(self):
        server = self.server
        raw = self.read_body()
        path, query = split_target(self.path)
        entry = {"method": self.command, "path": path, "query": query, "body": body_of(raw), "raw_body": raw,
                 "content_type": self.headers.get("Content-Type"), "rule": None, "forwarded": None,
                 "status": None, "response_rules": []}
        segments = path.strip("/").split("/")
        for rule in REQUEST_RULES:
            forwarded = rule.apply(self.command, segments, server.index)
            if forwarded is not None:
                entry["rule"], entry["forwarded"] = rule.name, forwarded
                break
        if entry["forwarded"] is None:
            entry["status"] = 501
            server.recorder.add(entry)
            return self.send(501, es5_error("no_rewrite_rule",
                                            "no rewrite rule names %s %s" % (self.command, path), 501))
        target = entry["forwarded"] + ("?" + query if query else "")
        headers = {"Content-Type": entry["content_type"]} if entry["content_type"] else {}
        connection = http.client.HTTPConnection(server.upstream_host, server.upstream_port, timeout=30)
        try:
            connection.request(self.command, target, body=raw or None, headers=headers)
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        entry["status"] = response.status
        if data and self.command != "HEAD":
            try:
                answer = json.loads(data.decode("utf-8"))
            except ValueError:
                answer = None
            if answer is not None:
                for name, rule in RESPONSE_RULES:
                    if rule(answer, entry):
                        entry["response_rules"].append(name)
                data = json.dumps(answer).encode("utf-8")
                entry["answer"] = answer
        server.recorder.add(entry)
        self.send(response.status, data, response.getheader("Content-Type") or "application/json")


def serve(handler, **attributes):
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    for key, value in attributes.items():
        setattr(server, key, value)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server, "http://127.0.0.1:%d" % server.server_address[1]


# ---------------------------------------------------------------------------------------------------------------
# The library's calls, and what they should return.
# ---------------------------------------------------------------------------------------------------------------

def outcome(function, *args):
    """("ok", value) or ("raised", "ExceptionClass: message")."""
    try:
        value = function(*args)
        if hasattr(value, "__next__"):
            value = list(value)
        return ("ok", value)
    except Exception as error:  # noqa: BLE001 - every failure of the library is an outcome to compare
        return ("raised", "%s: %s" % (type(error).__name__, describe(error)[:500]))


def describe(error):
    # elasticsearch-py's TransportError formats itself from an ES 5 error body and fails on any other shape.
    if hasattr(error, "status_code") and hasattr(error, "info"):
        return "%s %s" % (error.status_code, json.dumps(error.info, default=str) if error.info else error.error)
    return str(error)


def run_library(url, index, recorder, ids, unknown):
    """Makes the library's read calls in a fixed order; returns {label: outcome}."""
    results = {}

    def call(label, function, *args):
        recorder.call = label
        results[label] = outcome(function, *args)

    recorder.call = "PackageRegistry()"
    registry = PackageRegistry(es_connection_string=url, index_name=index)
    for package_id in ids + [unknown]:
        call("get_package(%s)" % package_id, registry.get_package, package_id)
        call("get_model(%s)" % package_id, registry.get_model, package_id)
        call("has_model(%s)" % package_id, registry.has_model, package_id)
        call("get_raw(%s)" % package_id, registry.get_raw, package_id)
    call("list_models()", registry.list_models)
    call("get_stats()", registry.get_stats)
    recorder.call = None
    return results


def load_records(paths):
    records = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        for row in data if isinstance(data, list) else [data]:
            missing = [k for k in RECORD_FIELDS if k not in row]
            if missing:
                raise SystemExit("error: %s: the record lacks %s" % (path, ", ".join(missing)))
            record = {k: row[k] for k in RECORD_FIELDS}
            for key in ("model", "package"):  # the database keeps them as JSON text
                if isinstance(record[key], str):
                    record[key] = json.loads(record[key])
            if isinstance(record["loaded"], int) and not isinstance(record["loaded"], bool):
                record["loaded"] = bool(record["loaded"])  # SQLite's 0/1
            records.append(record)
    return records


def json_diff(expected, got, where="$", limit=20):
    """The places where two JSON values differ, strictly (a bool is not a number, 9 is not 9.0)."""
    out = []

    def kind(v):
        return type(v).__name__

    def walk(e, g, at):
        if len(out) >= limit:
            return
        if kind(e) != kind(g):
            out.append((at, e, g))
        elif isinstance(e, dict):
            for key in sorted(set(e) | set(g)):
                if key not in g:
                    out.append((at + "." + key, e[key], "<missing>"))
                elif key not in e:
                    out.append((at + "." + key, "<absent>", g[key]))
                else:
                    walk(e[key], g[key], at + "." + key)
        elif isinstance(e, list):
            if len(e) != len(g):
                out.append((at + ".length", len(e), len(g)))
            for n, (a, b) in enumerate(zip(e, g)):
                walk(a, b, "%s[%d]" % (at, n))
        elif e != g:
            out.append((at, e, g))

    walk(expected, got, where)
    return out


def short(value, size=300):
    text = json.dumps(value, sort_keys=True, default=str)
    return value if len(text) <= size else text[:size] + "..."


def loopback(url):
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--opensearch", required=True, help="the index's server, on loopback: http://127.0.0.1:PORT")
    parser.add_argument("--index", default="packages", help="the index or alias the library reads (default packages)")
    parser.add_argument("--record", action="append", required=True,
                        help="a registry record as Conductor's database holds it (JSON); repeatable")
    parser.add_argument("--requests-out", help="write every recorded and proxied request here, one JSON per line")
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)

    if not loopback(args.opensearch):
        raise SystemExit("error: --opensearch must be on loopback (127.0.0.0/8, ::1, localhost), got %s"
                         % args.opensearch)
    records = load_records(args.record)
    by_id = {r["id"]: r for r in records}
    ids = list(by_id)
    owner = ids[0].split(":", 1)[0]
    unknown = "%s:registry-check-missing-%s" % (owner, uuid.uuid4().hex[:12])

    upstream = urllib.parse.urlsplit(args.opensearch)
    differences = []

    def differ(check, **detail):
        differences.append(dict(check=check, **detail))

    def native(method, path):
        connection = http.client.HTTPConnection(upstream.hostname, upstream.port or 80, timeout=30)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            data = response.read()
            return response.status, (json.loads(data.decode("utf-8")) if data else None)
        finally:
            connection.close()

    index_path = "/" + urllib.parse.quote(args.index, safe="")
    status, _ = native("HEAD", index_path)
    if status != 200:
        raise SystemExit("error: %s has no index or alias %r (HEAD %s answered %d); the library would try to "
                         "create it" % (args.opensearch, args.index, index_path, status))
    status, counted = native("GET", index_path + "/_count")
    count = counted["count"]

    # 1. Record the library's own requests against a capturing server that answers as ES 5.
    captured = Recorder()
    capture, capture_url = serve(CaptureHandler, recorder=captured, index=args.index, known=set(ids),
                                 known_list=ids, count=count)
    recorded_results = run_library(capture_url, args.index, captured, ids, unknown)
    capture.shutdown()
    if recorded_results["has_model(%s)" % unknown] != ("ok", False):  # the capture answered as ES 5 would
        differ("record.capture", call="has_model(%s)" % unknown, got=recorded_results["has_model(%s)" % unknown])

    # 2. Replay the recorded requests, byte for byte, through the rewriting proxy to the real index.
    proxied = Recorder()
    proxy, proxy_url = serve(ProxyHandler, recorder=proxied, index=args.index,
                             upstream_host=upstream.hostname, upstream_port=upstream.port or 80)
    proxy_host, proxy_port = "127.0.0.1", proxy.server_address[1]
    replay = []
    for entry in captured.requests:
        proxied.call = "replay " + (entry["call"] or "?")
        connection = http.client.HTTPConnection(proxy_host, proxy_port, timeout=30)
        headers = {"Content-Type": entry["content_type"]} if entry["content_type"] else {}
        target = entry["path"] + ("?" + entry["query"] if entry["query"] else "")
        connection.request(entry["method"], target, body=entry["raw_body"] or None, headers=headers)
        response = connection.getresponse()
        response.read()
        connection.close()
        replay.append(proxied.requests[-1])
    for recorded, forwarded in zip(captured.requests, replay):
        expected = 404 if urllib.parse.unquote_plus(recorded["path"].rsplit("/", 1)[-1]) == unknown else 200
        if forwarded["rule"] is None:
            differ("replay.unmapped", call=recorded["call"], method=recorded["method"], path=recorded["path"])
            continue
        if forwarded["status"] != expected and recorded["call"] != "get_stats()":
            differ("replay.status", call=recorded["call"], method=recorded["method"], path=recorded["path"],
                   forwarded=forwarded["forwarded"], expected=expected, got=forwarded["status"],
                   answer=short(forwarded.get("answer")))
        answer = forwarded.get("answer")
        if isinstance(answer, dict) and forwarded["status"] == 200:
            if "_id" in answer and (answer.get("_type") != DOC_TYPE or "found" not in answer):
                differ("replay.shape", call=recorded["call"], detail="not an ES 5 document answer",
                       answer=short(answer))
            hits = answer.get("hits")
            if isinstance(hits, dict) and not isinstance(hits.get("total"), int):
                differ("replay.shape", call=recorded["call"], detail="hits.total is not a number",
                       got=hits.get("total"))
    proxied.requests.clear()

    # 3. Run the library through the proxy and compare what it returns with the records.
    results = run_library(proxy_url, args.index, proxied, ids, unknown)
    proxy.shutdown()

    def key(entry):
        return (entry["method"], entry["path"], entry["query"], json.dumps(entry["body"], sort_keys=True))

    if [key(e) for e in captured.requests] != [key(e) for e in proxied.requests]:
        recorded_keys = [key(e) for e in captured.requests]
        for entry in proxied.requests:
            if key(entry) not in recorded_keys:
                differ("library.unrecorded_request", call=entry["call"], method=entry["method"],
                       path=entry["path"], query=entry["query"])
        if len(captured.requests) != len(proxied.requests):
            differ("library.request_count", expected=len(captured.requests), got=len(proxied.requests))
    for entry in proxied.requests:
        if entry["rule"] is None:
            differ("library.unmapped", call=entry["call"], method=entry["method"], path=entry["path"])

    def expect(label, expected):
        got = results[label]
        if got[0] != "ok":
            differ(label, expected=short(expected), got=got[1])
            return
        value = got[1]
        if isinstance(value, tuple) and len(value) == len(GET_RAW_FIELDS):  # get_raw's tuple, by field name
            value = dict(zip(GET_RAW_FIELDS, value))
        for at, e, g in json_diff(expected, value):
            differ(label, at=at, expected=short(e), got=short(g))

    checks = 0
    for package_id, record in by_id.items():
        package = dict(record["package"])
        package["__origin_url"] = record["origin_url"]
        expect("get_package(%s)" % package_id, package)
        expect("get_model(%s)" % package_id, record["model"])
        expect("has_model(%s)" % package_id, True)
        expect("get_raw(%s)" % package_id, {"name": package_id, **{k: record[k] for k in GET_RAW_FIELDS[1:]}})
        checks += 4
    expect("has_model(%s)" % unknown, False)
    for call in ("get_package", "get_model", "get_raw"):
        label = "%s(%s)" % (call, unknown)
        if results[label] != ("raised", "KeyError: %r" % unknown):
            differ(label, expected="KeyError: %r" % unknown, got=results[label][1])
    checks += 4
    listed = results["list_models()"]
    if listed[0] != "ok":
        differ("list_models()", got=listed[1])
    else:
        for package_id in ids:
            if package_id not in listed[1]:
                differ("list_models()", detail="the id is not listed", id=package_id, got=short(listed[1]))
        if len(listed[1]) != count or len(set(listed[1])) != len(listed[1]):
            differ("list_models()", detail="not every document once", expected=count, got=len(listed[1]))
    checks += 1

    # The document's last_update (float seconds; the library never returns it, os-api's search clients read it).
    for package_id, record in by_id.items():
        status, doc = native("GET", "%s/_doc/%s?_source=last_update" % (index_path, urllib.parse.quote_plus(package_id)))
        got = (doc or {}).get("_source", {}).get("last_update")
        if not isinstance(got, (int, float)) or abs(got - record["last_update"] / 1000.0) > 0.0005:
            differ("document.last_update", id=package_id, expected=record["last_update"] / 1000.0, got=got)
        checks += 1

    # get_stats is reported, not compared: its query aggregates package.countryCode, a text field under the
    # library's own mapping as under ours, which every version refuses (reference §1.3, C14); os-api never calls it.
    stats = results["get_stats()"]

    # What the library does without the rules, straight against the index (reads only: the index exists).
    direct = Recorder()
    direct_results = run_library(args.opensearch, args.index, direct, ids[:1], unknown)
    without = {}
    for label, value in direct_results.items():  # the first record's calls, and list_models and get_stats
        without.setdefault(label.split("(")[0], value[1][:160] if value[0] == "raised" else "ok")

    rules_used = {}
    for entry in proxied.requests:
        for name in [entry["rule"]] + entry["response_rules"]:
            if name:
                rules_used[name] = rules_used.get(name, 0) + 1
    if args.requests_out:
        with open(args.requests_out, "w", encoding="utf-8") as out:
            for phase, entries in (("recorded", captured.requests), ("proxied", proxied.requests)):
                for entry in entries:
                    row = {k: v for k, v in entry.items() if k not in ("raw_body", "answer")}
                    out.write(json.dumps(dict(phase=phase, **row), default=str) + "\n")

    for difference in differences:
        print(json.dumps(difference, default=str))
    summary = {
        "ok": not differences,
        "library": "os-package-registry 0.0.21 (elasticsearch-py %s)" % ".".join(
            map(str, __import__("elasticsearch").VERSION)),
        "index": args.index,
        "documents": count,
        "records": ids,
        "recorded_requests": len(captured.requests),
        "checks": checks,
        "differences": len(differences),
        "rules_used": rules_used,
        "get_stats": stats[1] if stats[0] == "ok" else {"refused": stats[1][:160],
                                                       "why": "aggregates the text field package.countryCode"},
        "without_rewrite": without,
    }
    print(json.dumps(summary, default=str))
    return 0 if not differences else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SystemExit:
        raise
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        print(json.dumps({"ok": False, "error": traceback.format_exc().strip().splitlines()[-1]}))
        sys.exit(1)
