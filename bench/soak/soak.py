"""The soak: starts the cluster, drives the clients for a fixed time while the faults run, audits, reports.

    python3 bench/soak/soak.py --binary PATH --seconds N --clients N [--short] [--report FILE]

Exits 1 when an invariant broke or a 5xx was answered outside the announced outage windows (`bench/soak/run`
is the way to call it: it installs the services and builds the binary first)."""

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from audit import Audit  # noqa: E402
from cluster import Cluster, psql  # noqa: E402
from faults import Faults  # noqa: E402
from traffic import Client, Record  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
USERS = 20
# Share of clients that reach the cluster through the stall proxy instead of straight to nginx.
STALLED_SHARE = 0.1


class Soak:
    def __init__(self, args, work):
        self.args = args
        self.cluster = Cluster(args.binary, work, REPO / "config", args.s3s_fs, args.osmem_python)
        self.record = Record()
        self.users = []
        self.big_rows = 200_000 if args.short else 1_000_000
        self.rss = defaultdict(list)  # gateway name -> [(seconds since start, process start number, KiB, threads)]

    def sample_rss(self, started, stop):
        while not stop.wait(5):
            for gateway in self.cluster.gateways:
                if gateway.alive():
                    try:
                        figures = gateway.status()
                    except OSError:
                        continue
                    self.rss[gateway.name].append((time.monotonic() - started, gateway.starts,
                                                   figures.get("VmRSS", 0), figures.get("Threads", 0)))

    def run(self):
        print(f"starting the cluster in {self.cluster.work}", flush=True)
        self.cluster.start()
        for i in range(USERS):
            email = f"soak-{i}@example.test"
            self.users.append({"token": self.cluster.mint_token(email), "id": hashlib.md5(email.encode()).hexdigest()})
        started = time.monotonic()
        deadline = started + self.args.seconds
        clients = []
        for n in range(self.args.clients):
            stalled = n < int(self.args.clients * STALLED_SHARE)
            port = self.cluster.stall_proxy.port if stalled else self.cluster.nginx_port
            clients.append(Client(n, self, "127.0.0.1", port, deadline))
        faults = Faults(self, started, self.args.seconds, self.args.short)
        stop_sampling = threading.Event()
        threading.Thread(target=self.sample_rss, args=(started, stop_sampling), daemon=True).start()
        print(f"{len(clients)} clients for {self.args.seconds} s, with faults", flush=True)
        faults.start()
        for client in clients:
            client.start()
        for client in clients:
            client.join(timeout=max(0, deadline - time.monotonic()) + 180)
        faults.join(timeout=300)
        stop_sampling.set()
        elapsed = time.monotonic() - started
        print("auditing", flush=True)
        results = Audit(self.cluster, self.record).run()
        return self.report(started, elapsed, faults, results)

    def failure_reasons(self):
        rows = psql("SELECT regexp_replace(error, '/openspending/[^ ]*', '/openspending/…'), count(*) "
                    "FROM load_jobs WHERE status = 'fail' GROUP BY 1 ORDER BY 2 DESC", self.cluster.database)
        return [(reason, int(n)) for reason, n in rows]

    def report(self, started, elapsed, faults, results):
        windows = faults.windows
        per_window = defaultdict(lambda: defaultdict(int))
        outside, statuses = [], defaultdict(lambda: defaultdict(int))
        latencies = defaultdict(list)
        for endpoint, status, at, seconds in self.record.requests:
            statuses[endpoint][status] += 1
            if status and status < 500:
                latencies[endpoint].append(seconds)
            if status == 0 or status >= 500:
                window = next((w for w in windows if w["start"] <= at + seconds and at <= w["end"]), None)
                if window is not None and status in (0, 503):
                    per_window[window["fault"]][f"{endpoint} {status or 'no answer'}"] += 1
                else:
                    outside.append(f"{endpoint} answered {status or 'nothing'} at {at - started:.1f} s")
        lines = [f"## Soak: {self.args.clients} clients, {self.args.seconds} s, {os.cpu_count()} cores, "
                 f"{time.strftime('%Y-%m-%d', time.gmtime())}", ""]
        total = len(self.record.requests)
        lines.append(f"{total:,} requests in {elapsed:.0f} s ({total / elapsed:,.0f}/s); the big load "
                     f"{self.big_rows:,} rows.")
        lines += ["", "| endpoint | requests | per second | p50 | p99 | statuses |", "|---|---|---|---|---|---|"]
        for endpoint in sorted(statuses):
            times = sorted(latencies[endpoint]) or [0.0]
            count = sum(statuses[endpoint].values())
            p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
            shown = ", ".join(f"{s or 'none'}: {n}" for s, n in sorted(statuses[endpoint].items()))
            lines.append(f"| `{endpoint}` | {count:,} | {count / elapsed:.1f} | {statistics.median(times) * 1000:.1f} ms"
                         f" | {p99 * 1000:.1f} ms | {shown} |")
        lines += ["", "| fault | window | 503 or no answer in it | which |", "|---|---|---|---|"]
        for w in windows:
            seen = per_window[w["fault"]]
            which = ", ".join(f"`{k}` {n}" for k, n in sorted(seen.items())) or "—"
            lines.append(f"| {w['fault']} | {w['start'] - started:.1f}–{w['end'] - started:.1f} s | "
                         f"{sum(seen.values())} | {which} |")
        lines += ["", "Fault log:", ""] + [f"- {at} s: {text}" for at, text in faults.log]
        violations = list(outside)
        if faults.error:
            violations.append(f"the fault script failed: {faults.error}")
        if len(windows) != 7:
            violations.append(f"{len(windows)} of the 7 faults ran")
        lines += ["", "| invariant | holds | counted |", "|---|---|---|"]
        lines.append(f"| no 5xx outside the outage windows, no 5xx but 503 in them | "
                     f"{'yes' if not outside else f'**no: {len(outside)}**'} | {total:,} requests |")
        for invariant, found, counted in results:
            lines.append(f"| {invariant} | {'yes' if not found else f'**no: {len(found)}**'} | {counted} |")
            violations += found
        lines += ["", "| gateway | starts | RSS after 1 min of its last start | at the end | ratio |",
                  "|---|---|---|---|---|"]
        for name, samples in sorted(self.rss.items()):
            last_start = samples[-1][1]
            mine = [s for s in samples if s[1] == last_start]
            warm = next((s for s in mine if s[0] - mine[0][0] >= 60), mine[0])
            end = mine[-1]
            ratio = end[2] / warm[2] if warm[2] else 0
            lines.append(f"| {name} | {last_start} | {warm[2] / 1024:.0f} MiB | {end[2] / 1024:.0f} MiB | "
                         f"{ratio:.2f} |")
            if not self.args.short and end[0] - warm[0] >= 120 and ratio > 1.10:
                violations.append(f"{name}'s RSS grew {ratio:.2f}x from its first minute to the end")
        lines += ["", "Each gateway's RSS at every minute of its last start, MiB (threads):", ""]
        for name, samples in sorted(self.rss.items()):
            mine = [s for s in samples if s[1] == samples[-1][1]]
            marks, minute = [], 0
            for seconds, _, kib, threads in mine:
                if seconds - mine[0][0] >= minute * 60:
                    marks.append(f"{kib / 1024:.0f} ({threads})")
                    minute += 1
            lines.append(f"- {name}: {', '.join(marks)}")
        lines += ["", f"Client-side errors (no answer): {dict(self.record.errors) or 'none'}", "",
                  "Why loads failed (the reasons as /package/status gives them, counted):", ""]
        lines += [f"- {n} × {reason}" for reason, n in self.failure_reasons()]
        if violations:
            lines += ["", "### Violations", ""] + [f"- {v}" for v in violations[:200]]
        text = "\n".join(lines) + "\n"
        print(text, flush=True)
        if self.args.report:
            Path(self.args.report).write_text(text)
        return not violations


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", required=True)
    parser.add_argument("--seconds", type=int, default=600)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--short", action="store_true")
    parser.add_argument("--report")
    parser.add_argument("--s3s-fs", default=os.environ.get("CONDUCTOR_TEST_S3S_FS",
                                                           "/var/cache/conductor/s3s-fs/bin/s3s-fs"))
    parser.add_argument("--osmem-python", default=os.environ.get("CONDUCTOR_TEST_PYTHON", sys.executable))
    parser.add_argument("--keep", action="store_true", help="keep the work folder and database")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="conductor-soak-"))
    soak = Soak(args, work)
    passed = False
    try:
        passed = soak.run()
    finally:
        soak.cluster.stop()
        if not passed:
            for log in sorted(work.glob("*.log")):
                print(f"--- the end of {log.name}", flush=True)
                tail = log.read_text(errors="replace").splitlines()[-25:]
                print("\n".join(line[:400] for line in tail), flush=True)
        if not args.keep:
            soak.cluster.drop_database()
            shutil.rmtree(work, ignore_errors=True)
    print("soak passed" if passed else "soak FAILED", flush=True)
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
