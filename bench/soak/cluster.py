"""The deployment the soak runs against: three gateways on the machine's PostgreSQL and Redis, s3s-fs as the
datastore, osmem-server as the OpenSearch stand-in, nginx in front as the load balancer, and a TCP proxy before
nginx that can stop forwarding (the client network stall). Every process is a child of this one, on loopback."""

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

POSTGRES_ADMIN = "postgres://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379"
S3_ACCESS_KEY = "AKIDCONDUCTORSOAK"
S3_SECRET_KEY = "conductor-soak-secret-key"
BUCKET = "openspending"
INDEX = "soak-packages"
# A killed worker's job is failed by another replica after this; short, so it happens inside the soak.
HEARTBEAT_TIMEOUT = "10s"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, check, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up within {seconds} s")


def listening(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def http_ok(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def psql(sql, database="postgres"):
    """One statement's rows as tab-separated fields, through the machine's psql."""
    out = subprocess.run(
        ["psql", "-X", "-q", "-A", "-t", "-F", "\t", "-h", "127.0.0.1", "-U", "postgres", "-d", database,
         "-c", sql],
        check=True, capture_output=True, text=True, timeout=60)
    return [line.split("\t") for line in out.stdout.splitlines() if line]


class Gateway:
    def __init__(self, cluster, name, workers):
        self.cluster = cluster
        self.name = name
        self.workers = workers
        self.port = free_port()
        self.data_dir = cluster.work / name
        self.log = cluster.work / f"{name}.log"
        self.process = None
        self.starts = 0

    def environment(self):
        c = self.cluster
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CONDUCTOR", "OS_"))}
        env.update({
            "RUST_LOG": "warn",
            "CONDUCTOR__DATA_DIR": str(self.data_dir),
            "CONDUCTOR__SERVER__BIND": f"127.0.0.1:{self.port}",
            "CONDUCTOR__SERVER__BASE_URL": c.public_url,
            # Behind nginx every client is nginx: the per-address cap is the proxy's business.
            "CONDUCTOR__SERVER__MAX_CONNECTIONS_PER_CLIENT": "0",
            "CONDUCTOR__DATABASE__URL": c.database_url,
            "CONDUCTOR__CACHE__REDIS_URL": REDIS_URL,
            "CONDUCTOR__AUTH__KEYS__PRIVATE_KEY_FILE": str(c.private_key),
            "CONDUCTOR__DATASTORE__BACKEND": "s3",
            "CONDUCTOR__DATASTORE__S3__ENDPOINT": f"http://127.0.0.1:{c.s3_port}",
            "CONDUCTOR__DATASTORE__S3__BUCKET": BUCKET,
            "CONDUCTOR__DATASTORE__S3__ACCESS_KEY": S3_ACCESS_KEY,
            "CONDUCTOR__DATASTORE__S3__SECRET_KEY": S3_SECRET_KEY,
            "CONDUCTOR__DATASTORE__S3__PATH_STYLE": "true",
            "CONDUCTOR__SEARCH__BACKEND": "opensearch",
            "CONDUCTOR__SEARCH__OPENSEARCH__URL": f"http://127.0.0.1:{c.search_port}",
            "CONDUCTOR__SEARCH__OPENSEARCH__INDEX": INDEX,
            "CONDUCTOR__LOADER__WORKERS": str(self.workers),
            "CONDUCTOR__LOADER__HEARTBEAT_TIMEOUT": HEARTBEAT_TIMEOUT,
        })
        return env

    def start(self):
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log, "a")
        self.process = subprocess.Popen(
            [str(self.cluster.binary), "--config-dir", str(self.cluster.config_dir), "serve"],
            env=self.environment(), stdout=log, stderr=subprocess.STDOUT)
        self.starts += 1
        def ready():
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway {self.name} exited: {self.log.read_text()[-2000:]}")
            return http_ok(f"http://127.0.0.1:{self.port}/readyz")
        wait_for(f"gateway {self.name}", ready, 120)

    def signal(self, sig):
        self.process.send_signal(sig)

    def wait(self, seconds):
        return self.process.wait(seconds)

    def rss_kib(self):
        """Resident memory now, from /proc."""
        return self.status().get("VmRSS", 0)

    def status(self):
        """The process's /proc status figures that are counts (kB or plain numbers), by name."""
        figures = {}
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                name, _, value = line.partition(":")
                first = value.split()[:1]
                if first and first[0].isdigit():
                    figures[name] = int(first[0])
        return figures

    def alive(self):
        return self.process is not None and self.process.poll() is None


class StallProxy:
    """Forwards TCP to nginx until `stall()`; then it stops moving bytes (connections stay open) until `resume()`."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.port = free_port()
        self.flowing = threading.Event()
        self.flowing.set()
        self.server = socket.create_server(("127.0.0.1", self.port), backlog=512)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source, sink):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                self.flowing.wait()
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stall(self):
        self.flowing.clear()

    def resume(self):
        self.flowing.set()


NGINX_CONF = """
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {work}/nginx-body;
    proxy_temp_path {work}/nginx-proxy;
    fastcgi_temp_path {work}/nginx-fastcgi;
    uwsgi_temp_path {work}/nginx-uwsgi;
    scgi_temp_path {work}/nginx-scgi;
    client_max_body_size 0;
    upstream conductor {{
{servers}
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://conductor;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            # The gateways are stateless: a request a dead replica never answered is sent to another one, POSTs
            # included (the API's writes are idempotent or refuse a repeat with a 4xx). nginx buffers request
            # bodies (they are small: uploads go to the datastore itself), which is what lets it send one again.
            proxy_next_upstream error timeout non_idempotent;
            proxy_next_upstream_tries 3;
            proxy_connect_timeout 2s;
            proxy_read_timeout 120s;
        }}
    }}
}}
"""


class Cluster:
    def __init__(self, binary, work, config_dir, s3s_fs, osmem_python):
        self.binary = Path(binary)
        self.work = Path(work)
        self.config_dir = Path(config_dir)
        self.s3s_fs = s3s_fs
        self.osmem_python = osmem_python
        self.database = f"conductor_soak_{os.getpid()}"
        self.database_url = f"postgres://postgres@127.0.0.1:5432/{self.database}"
        self.s3_port = free_port()
        self.s3_root = self.work / "s3"
        self.search_port = free_port()
        self.nginx_port = free_port()
        self.public_url = f"http://127.0.0.1:{self.nginx_port}/"
        self.private_key = self.work / "signing-key.pem"
        self.s3 = None
        self.search = None
        self.nginx = None
        self.gateways = [Gateway(self, "gateway-a", 2), Gateway(self, "gateway-b", 2),
                         Gateway(self, "gateway-c", 0)]
        self.stall_proxy = None

    # -- the services the gateways stand on --------------------------------------------------------------------

    def start_s3(self):
        (self.s3_root / BUCKET).mkdir(parents=True, exist_ok=True)
        self.s3 = subprocess.Popen(
            [self.s3s_fs, "--host", "127.0.0.1", "--port", str(self.s3_port), "--access-key", S3_ACCESS_KEY,
             "--secret-key", S3_SECRET_KEY, str(self.s3_root)],
            stdout=subprocess.DEVNULL, stderr=open(self.work / "s3s-fs.log", "a"))
        wait_for("s3s-fs", lambda: listening(self.s3_port))

    def stop_s3(self):
        self.s3.kill()
        self.s3.wait()

    def start_search(self):
        binary = subprocess.run(
            [self.osmem_python, "-c", "import osmem_server; print(osmem_server.resolve_binary())"],
            check=True, capture_output=True, text=True).stdout.strip()
        self.search = subprocess.Popen(
            [binary, "-addr", f"127.0.0.1:{self.search_port}", "-no-stdin-watch", "-no-ja"],
            stdout=subprocess.DEVNULL, stderr=open(self.work / "osmem.log", "a"))
        wait_for("osmem-server", lambda: http_ok(f"http://127.0.0.1:{self.search_port}/"))

    def stop_search(self):
        self.search.kill()
        self.search.wait()

    def start_nginx(self):
        servers = "\n".join(f"        server 127.0.0.1:{g.port} max_fails=1 fail_timeout=2s;" for g in self.gateways)
        conf = self.work / "nginx.conf"
        conf.write_text(NGINX_CONF.format(work=self.work, servers=servers, port=self.nginx_port))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.nginx = subprocess.Popen([nginx, "-c", str(conf), "-g", "daemon off;"],
                                      stdout=subprocess.DEVNULL, stderr=open(self.work / "nginx.log", "a"))
        wait_for("nginx", lambda: listening(self.nginx_port))

    def start(self):
        self.work.mkdir(parents=True, exist_ok=True)
        psql(f"CREATE DATABASE {self.database}")
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out",
                        str(self.private_key)], check=True, capture_output=True)
        self.start_s3()
        self.start_search()
        # One replica migrates first; the others then start on a migrated database, as a deployment rolls out.
        for gateway in self.gateways:
            gateway.start()
        self.start_nginx()
        self.stall_proxy = StallProxy(self.nginx_port)

    def mint_token(self, email):
        env = self.gateways[0].environment()
        out = subprocess.run([str(self.binary), "--config-dir", str(self.config_dir), "token", "mint", "--email",
                              email], env=env, check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def stop(self):
        for gateway in self.gateways:
            if gateway.alive():
                gateway.signal(signal.SIGTERM)
        for gateway in self.gateways:
            if gateway.process is not None:
                try:
                    gateway.wait(30)
                except subprocess.TimeoutExpired:
                    gateway.process.kill()
        # nginx's master stops its workers on SIGTERM; killed, it would leave them holding the port.
        if self.nginx is not None and self.nginx.poll() is None:
            self.nginx.terminate()
            try:
                self.nginx.wait(10)
            except subprocess.TimeoutExpired:
                self.nginx.kill()
        for process in (self.search, self.s3):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()

    def drop_database(self):
        psql(f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")

    def search_documents(self):
        """Every document in the index, read from the stand-in directly: {id: _source}."""
        body = json.dumps({"size": 10000, "query": {"match_all": {}}}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.search_port}/{INDEX}/_search", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            hits = json.load(answer)["hits"]["hits"]
        return {hit["_id"]: hit["_source"] for hit in hits}
