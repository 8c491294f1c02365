"""The faults, scripted: each runs at its share of the soak (or when the one before it ended, if later) and
announces its outage window, the span in which a 503 or an unanswered request is expected and counted."""

import signal
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

from cluster import psql, wait_for
from traffic import Client, small_package

REPO = Path(__file__).resolve().parents[2]
# After a fault is repaired, clients may still meet its effects this long (pools reconnecting, nginx's fail_timeout).
GRACE = 5.0


def postgres_version():
    return psql("SHOW server_version_num")[0][0][:2]


def postgres_ready():
    return subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"]).returncode == 0


def redis_ready():
    return subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", "6379", "ping"], capture_output=True,
                          text=True).stdout.strip() == "PONG"


class Faults(threading.Thread):
    def __init__(self, soak, started, seconds, short):
        super().__init__(daemon=True, name="faults")
        self.soak = soak
        self.cluster = soak.cluster
        self.started = started
        self.seconds = seconds
        self.search_outage = 10 if short else 30
        self.pause = 5 if short else 10
        self.windows = []  # {"fault", "start", "end"} in monotonic seconds
        self.log = []
        self.error = None
        # The big package, uploaded once by a client of the faults' own and loaded at the first two faults.
        self.loader = Client(10_000, soak, "127.0.0.1", self.cluster.nginx_port, started + seconds)
        self.big_rows = soak.big_rows
        self.big = small_package("soak-big", self.big_rows, 1)

    def note(self, text):
        at = time.monotonic() - self.started
        self.log.append((round(at, 1), text))
        print(f"  [{at:6.1f} s] {text}", flush=True)

    def window(self, fault, start):
        self.windows.append({"fault": fault, "start": start, "end": time.monotonic() + GRACE})

    def at(self, share):
        delay = self.started + share * self.seconds - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def run(self):
        try:
            steps = [
                (0.10, self.kill_a_loading_gateway), (0.24, self.stop_a_loading_gateway),
                (0.40, self.restart_postgres), (0.52, self.restart_redis), (0.62, self.stop_search),
                (0.74, self.stop_s3), (0.85, self.stall_clients),
            ]
            for share, step in steps:
                self.at(share)
                step()
        except Exception as error:  # noqa: BLE001 - reported as the soak's failure
            self.error = f"{type(error).__name__}: {error}"
            self.note(f"fault script failed: {self.error}")

    # -- a gateway running a load --------------------------------------------------------------------------------

    def start_big_load(self):
        """Starts (again) the big package's load and returns the gateway whose COPY is running it."""
        descriptor, csv = self.big
        for attempt in range(1, 6):
            signed = self.loader.sign("soak-big", {"datapackage.json": descriptor, "budget.csv": csv})
            if signed and all(signed[path].get("stored") or self.loader.put(signed[path], data)
                              for path, data in (("budget.csv", csv), ("datapackage.json", descriptor))):
                break
            self.note(f"uploading the big package, attempt {attempt}: {self.loader.last_refusal}")
            time.sleep(2)
        else:
            raise RuntimeError(f"the big package could not be uploaded: {self.loader.last_refusal}")
        url = signed["datapackage.json"]["upload_url"]
        token = self.loader.permission_token()
        status, _ = self.loader.call("/package/upload", "POST",
                                     "/package/upload?datapackage=" + urllib.parse.quote(url),
                                     headers={"Auth-Token": token})
        if status != 200:
            raise RuntimeError(f"the big load was refused: {status}")
        package = f"{self.loader.user['id']}:soak-big"
        with self.soak.record.lock:
            self.soak.record.loads[package] = {"url": url, "rows": self.big_rows, "final": None, "deleted": False}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            gateway = self.gateway_copying()
            if gateway is not None:
                return gateway, url, package
            time.sleep(0.05)
        raise RuntimeError("no gateway started copying the big package within 120 s")

    def gateway_copying(self):
        """The gateway whose connection runs a COPY into the soak's database, found by its client port."""
        rows = psql("SELECT client_port FROM pg_stat_activity WHERE datname = current_database() "
                    "AND query ILIKE 'COPY%' AND state = 'active'", self.cluster.database)
        for (port,) in rows:
            # The port on the gateway's side of a connection to PostgreSQL (another socket may share the number).
            sockets = subprocess.run(["ss", "-Htnp", f"( sport = :{port} and dport = :5432 )"],
                                     capture_output=True, text=True).stdout
            for gateway in self.cluster.gateways:
                if gateway.alive() and f"pid={gateway.process.pid}," in sockets:
                    return gateway
        return None

    def kill_a_loading_gateway(self):
        gateway, _, _ = self.start_big_load()
        start = time.monotonic()
        self.note(f"kill -9 {gateway.name} while it copies the big package")
        gateway.signal(signal.SIGKILL)
        gateway.wait(10)
        time.sleep(self.pause)
        gateway.start()
        self.note(f"{gateway.name} restarted (its job is failed by another replica after the heartbeat timeout)")
        self.window(f"kill -9 {gateway.name}", start)

    def stop_a_loading_gateway(self):
        # Wait until the killed job ended: a new load of the same package is refused while one is unfinished.
        package = f"{self.loader.user['id']}:soak-big"
        wait_for("the killed load to be failed", lambda: not psql(
            f"SELECT 1 FROM load_jobs WHERE package_id = '{package}' AND status NOT IN ('done', 'fail')",
            self.cluster.database), 120)
        gateway, url, package = self.start_big_load()
        start = time.monotonic()
        self.note(f"SIGTERM {gateway.name} while it copies the big package (it hands the job back)")
        gateway.signal(signal.SIGTERM)
        gateway.wait(60)
        self.note(f"{gateway.name} stopped; restarting it")
        gateway.start()
        self.window(f"SIGTERM {gateway.name}", start)

        def follow():
            final = self.loader.follow(url, limit=600)
            with self.soak.record.lock:
                self.soak.record.loads[package]["final"] = final
            self.note(f"the handed-back big load ended: {final}")
        threading.Thread(target=follow, daemon=True).start()

    # -- the services ----------------------------------------------------------------------------------------------

    def restart_postgres(self):
        start = time.monotonic()
        self.note("PostgreSQL restarted")
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", postgres_version(), "main", "restart", "-m",
                        "fast"], check=True, capture_output=True)
        wait_for("PostgreSQL", postgres_ready, 60)
        self.note("PostgreSQL is back")
        self.window("PostgreSQL restart", start)

    def restart_redis(self):
        start = time.monotonic()
        self.note(f"Redis stopped for {self.pause} s")
        subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", "6379", "shutdown", "nosave"], capture_output=True)
        time.sleep(self.pause)
        subprocess.run(["bash", "-c", "source scripts/services.sh; ensure_redis"], cwd=REPO, check=True,
                       capture_output=True)
        wait_for("Redis", redis_ready, 30)
        self.note("Redis is back")
        self.window("Redis stopped", start)

    def outage(self, fault, seconds, stop, start_again, stopped, back):
        """Stops a service for `seconds`, starts it again, and announces the window it was out."""
        start = time.monotonic()
        self.note(f"{stopped} for {seconds} s")
        stop()
        time.sleep(seconds)
        start_again()
        self.note(back)
        self.window(fault, start)

    def stop_search(self):
        self.outage("search stand-in stopped", self.search_outage, self.cluster.stop_search,
                    self.cluster.start_search, "the search stand-in stopped (it comes back empty)",
                    "the search stand-in is back")

    def stop_s3(self):
        self.outage("s3s-fs stopped", self.pause, self.cluster.stop_s3, self.cluster.start_s3,
                    "s3s-fs stopped during uploads", "s3s-fs is back")

    def stall_clients(self):
        proxy = self.cluster.stall_proxy
        self.outage("client network stall", self.pause, proxy.stall, proxy.resume,
                    "the stall proxy stops forwarding", "the stall proxy forwards again")
