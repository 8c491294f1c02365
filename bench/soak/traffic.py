"""The load generator: clients, each a thread with its own keep-alive connection, drawing requests from the mix the
web clients and publishers send, until the deadline or their request bound. What each answered is recorded for the
report and for the auditor (what was acknowledged: loads, publishes, deletes, uploads)."""

import base64
import hashlib
import http.client
import json
import random
import threading
import time
import urllib.parse
from collections import defaultdict

# Requests one client sends at most, whatever the duration: the soak is bounded in count as well as time.
MAX_REQUESTS_PER_CLIENT = 100_000
# A client waits this long for an answer; longer than any announced outage or stall, so a stall shows as latency.
CLIENT_TIMEOUT = 60
# (action, weight): what a client does next.
MIX = [
    ("search_anonymous", 24), ("search_logged_in", 10), ("user_check", 14), ("user_authorize", 8),
    ("datastore_sign", 8), ("upload", 5), ("load_small", 4), ("status", 8), ("publish", 8),
    ("update_params", 5), ("delete", 2), ("info", 4),
]
QUERIES = ["budget", "soak", "Ministry", "2014", "spending"]


def md5_b64(data):
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def small_package(name, rows, seed):
    descriptor = {
        "name": name, "title": f"Soak budget {name}",
        "resources": [{"name": "budget", "path": "budget.csv", "schema": {"fields": [
            {"name": "Year", "columnType": "date:fiscal-year"},
            {"name": "Ministry", "columnType": "administrative-classification:generic:level1:code"},
            {"name": "Amount", "columnType": "value"},
        ]}}],
    }
    lines = ["Year,Ministry,Amount"]
    for i in range(rows):
        lines.append(f"{2000 + (i + seed) % 25},M{(i * 7 + seed) % 400:03},{(i * 31 + seed) % 100000}.{i % 100:02}")
    return json.dumps(descriptor).encode(), ("\n".join(lines) + "\n").encode()


class Record:
    """Everything the clients saw, shared by all of them (one lock; appends are cheap next to a request)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []  # (endpoint, status, started, seconds); status 0: no answer (timeout, reset)
        self.loads = {}  # package id -> {"url", "rows", "accepted", "final", "deleted"}
        self.visibility = {}  # package id -> private as the last acknowledged publish left it
        self.uploads = {}  # object key -> md5 (base64) of the last PUT of it that was answered 200
        self.attempted = defaultdict(set)  # object key -> md5 of every PUT of it sent, answered or not
        self.errors = defaultdict(int)

    def request(self, endpoint, status, started, seconds):
        with self.lock:
            self.requests.append((endpoint, status, started, seconds))


class Client(threading.Thread):
    def __init__(self, number, soak, host, port, deadline):
        super().__init__(daemon=True, name=f"client-{number}")
        self.number = number
        self.soak = soak
        self.record = soak.record
        self.host, self.port = host, port
        self.deadline = deadline
        self.random = random.Random(number)
        self.user = soak.users[number % len(soak.users)]
        self.connection = None
        self.permission = None
        self.packages = []  # ids this client loaded that are done and not deleted
        self.sequence = 0
        self.last_refusal = None  # (endpoint, status, the answer's start) of the last request not answered 2xx

    # -- HTTP ----------------------------------------------------------------------------------------------------

    def call(self, endpoint, method, path, body=None, headers=None, host=None, port=None):
        """One request; (status, body bytes). A request without an answer is recorded with status 0."""
        started = time.monotonic()
        status, data = 0, b""
        for attempt in (1, 2):
            reused = host is None and self.connection is not None
            try:
                status, data = self.exchange(method, path, body, headers or {}, host, port)
                break
            except (OSError, http.client.HTTPException) as error:
                self.drop_connection()
                # A kept-alive connection the proxy closed while it was idle fails before any answer: sent again
                # on a new connection, as every HTTP client does. Anything else is an unanswered request.
                stale = isinstance(error, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError))
                if not (reused and stale and attempt == 1):
                    self.record.errors[type(error).__name__] += 1
                    break
        self.record.request(endpoint, status, started, time.monotonic() - started)
        if not 200 <= status < 300:
            self.last_refusal = (endpoint, status, data[:300])
        return status, data

    def exchange(self, method, path, body, headers, host, port):
        own = host is None
        if own:
            if self.connection is None:
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=CLIENT_TIMEOUT)
            connection = self.connection
        else:
            connection = http.client.HTTPConnection(host, port, timeout=CLIENT_TIMEOUT)
        try:
            connection.request(method, path, body=body, headers=headers)
            answer = connection.getresponse()
            data = answer.read()
        finally:
            if not own:
                connection.close()
        if own and answer.getheader("connection", "").lower() == "close":
            self.drop_connection()
        return answer.status, data

    def drop_connection(self):
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def json_call(self, endpoint, method, path, body=None, headers=None):
        status, data = self.call(endpoint, method, path, body, headers)
        try:
            return status, json.loads(data) if data else None
        except ValueError:
            return status, None

    def permission_token(self):
        if self.permission is None:
            status, answer = self.json_call("/user/authorize", "GET",
                                            f"/user/authorize?jwt={self.user['token']}&service=os.datastore")
            if status == 200 and answer and answer.get("token"):
                self.permission = answer["token"]
        return self.permission

    # -- the mix -------------------------------------------------------------------------------------------------

    def run(self):
        for _ in range(MAX_REQUESTS_PER_CLIENT):
            if time.monotonic() >= self.deadline:
                break
            action = self.random.choices([a for a, _ in MIX], [w for _, w in MIX])[0]
            getattr(self, action)()
        if self.connection is not None:
            self.connection.close()

    def search_anonymous(self):
        query = ""
        if self.random.random() < 0.5:
            query = "&q=" + urllib.parse.quote(f'"{self.random.choice(QUERIES)}"')
        self.call("/search/package", "GET", f"/search/package?size=20{query}")

    def search_logged_in(self):
        self.call("/search/package (token)", "GET", f"/search/package?size=50&jwt={self.user['token']}")

    def user_check(self):
        self.call("/user/check", "GET", f"/user/check?jwt={self.user['token']}")

    def user_authorize(self):
        self.permission = None
        self.permission_token()

    def info(self):
        token = self.permission_token()
        if token:
            self.call("/datastore/info", "GET", "/datastore/info", headers={"Auth-Token": token})

    def sign(self, name, files):
        """Signs `files` ({path: bytes}) of package `name`; {path: signed} or None."""
        token = self.permission_token()
        if not token:
            return None
        self.last_refusal = None
        filedata = {path: {"md5": md5_b64(data), "length": len(data), "name": path,
                           "type": "application/octet-stream"} for path, data in files.items()}
        body = json.dumps({"metadata": {"owner": self.user["id"], "name": name}, "filedata": filedata})
        status, answer = self.json_call("/datastore/", "POST", "/datastore/", body,
                                        {"Auth-Token": token, "Content-Type": "application/json"})
        if status == 401:
            self.permission = None
        if status != 200 or not answer:
            return None
        return answer.get("filedata")

    def put(self, signed, data):
        url = urllib.parse.urlsplit(signed["upload_url"])
        query = urllib.parse.urlencode([(k, v[0]) for k, v in signed.get("upload_query", {}).items() if v])
        path = url.path + ("?" + query if query else "")
        key = urllib.parse.unquote(url.path).split("/", 2)[2]
        with self.record.lock:
            self.record.attempted[key].add(md5_b64(data))
        status, _ = self.call("PUT (datastore)", "PUT", path, data,
                              {"Content-MD5": md5_b64(data), "Content-Length": str(len(data)),
                               "Content-Type": "application/octet-stream"}, url.hostname, url.port)
        if status == 200:
            with self.record.lock:
                self.record.uploads[key] = md5_b64(data)
        return status == 200

    def datastore_sign(self):
        files = {f"data/part-{i}.csv": f"year,amount\n2014,{self.random.randint(0, 10**6)}\n".encode()
                 for i in range(3)}
        self.sign(f"signed-{self.number}", files)

    def upload(self):
        data = f"year,amount\n2015,{self.random.randint(0, 10**9)}\n".encode() * self.random.randint(1, 200)
        signed = self.sign(f"uploads-{self.number}", {"data/file.csv": data})
        if signed and not signed["data/file.csv"].get("stored"):
            self.put(signed["data/file.csv"], data)

    def load_small(self):
        self.sequence += 1
        name = f"soak-{self.number}-{self.sequence}"
        rows = self.random.randint(20, 2000)
        self.load(name, *small_package(name, rows, self.number + self.sequence), rows)

    def load(self, name, descriptor, csv, rows, track=True):
        """Uploads and loads one package, following its status to the end; the final status, or None."""
        signed = self.sign(name, {"datapackage.json": descriptor, "budget.csv": csv})
        if not signed:
            return None
        for path, data in (("budget.csv", csv), ("datapackage.json", descriptor)):
            if not signed[path].get("stored") and not self.put(signed[path], data):
                return None
        url = signed["datapackage.json"]["upload_url"]
        package = f"{self.user['id']}:{name}"
        token = self.permission_token()
        status, _ = self.call("/package/upload", "POST", "/package/upload?datapackage=" + urllib.parse.quote(url),
                              headers={"Auth-Token": token})
        if status != 200:
            return None
        with self.record.lock:
            self.record.loads[package] = {"url": url, "rows": rows, "final": None, "deleted": False}
        final = self.follow(url)
        with self.record.lock:
            self.record.loads[package]["final"] = final
        if final == "done" and track:
            self.packages.append(package)
        return final

    def follow(self, url, limit=300):
        """Polls /package/status until done or fail; None when the deadline came first."""
        path = "/package/status?datapackage=" + urllib.parse.quote(url)
        end = min(time.monotonic() + limit, self.deadline + 120)
        while time.monotonic() < end:
            status, answer = self.json_call("/package/status", "GET", path)
            if status == 200 and answer and answer.get("status") in ("done", "fail"):
                return answer["status"]
            time.sleep(0.5)
        return None

    def status(self):
        with self.record.lock:
            urls = [load["url"] for load in self.record.loads.values()]
        if urls:
            url = self.random.choice(urls)
            self.call("/package/status", "GET", "/package/status?datapackage=" + urllib.parse.quote(url))

    def own_package(self):
        return self.random.choice(self.packages) if self.packages else None

    def publish(self):
        package, token = self.own_package(), self.permission_token()
        if package and token:
            publish = self.random.choice(["true", "false"])
            status, answer = self.json_call(
                "/package/publish", "POST",
                f"/package/publish?id={urllib.parse.quote(package)}&publish={publish}", headers={"Auth-Token": token})
            if status == 200 and answer:
                with self.record.lock:
                    self.record.visibility[package] = not answer["published"]

    def update_params(self):
        package, token = self.own_package(), self.permission_token()
        if package and token:
            body = json.dumps({"params": json.dumps({"visualizations": ["Treemap"], "n": self.sequence})})
            self.call("/package/update_params", "POST", f"/package/update_params?id={urllib.parse.quote(package)}",
                      body, {"Auth-Token": token, "Content-Type": "application/json"})

    def delete(self):
        package, token = self.own_package(), self.permission_token()
        if package and token:
            status, _ = self.call("/package/delete", "POST", f"/package/delete?id={urllib.parse.quote(package)}",
                                  headers={"Auth-Token": token})
            if status == 200:
                self.packages.remove(package)
                with self.record.lock:
                    self.record.loads[package]["deleted"] = True
                    self.record.visibility.pop(package, None)
