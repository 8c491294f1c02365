"""The auditor: after the soak, every invariant checked from the database, the index and the datastore themselves,
never from logs. Each check returns the violations it found (empty: it holds) and what it counted."""

import base64
import hashlib
import json
import time

from cluster import BUCKET, psql

# How long the deployment may take to settle after the traffic stops: running loads to end, the outbox to drain.
SETTLE_SECONDS = 240


def quoted(text):
    return "'" + text.replace("'", "''") + "'"


class Audit:
    def __init__(self, cluster, record):
        self.cluster = cluster
        self.record = record
        self.db = cluster.database
        self.results = []  # (invariant, violations, counted)

    def check(self, invariant, violations, counted):
        self.results.append((invariant, violations, counted))

    def settle(self):
        deadline = time.monotonic() + SETTLE_SECONDS
        while time.monotonic() < deadline:
            running = psql("SELECT count(*) FROM load_jobs WHERE status NOT IN ('done', 'fail')", self.db)[0][0]
            outbox = psql("SELECT count(*) FROM search_outbox", self.db)[0][0]
            if running == "0" and outbox == "0":
                return
            time.sleep(1)

    def run(self):
        self.settle()
        self.jobs_ended()
        self.rows_loaded()
        self.deleted_packages_gone()
        self.no_staging_tables()
        self.index_equals_registry()
        self.uploads_whole()
        self.visibility()
        return self.results

    def jobs_ended(self):
        jobs = psql("SELECT id, package_id, status, coalesce(error, '') FROM load_jobs", self.db)
        stuck = [f"job {j[0]} of {j[1]} is still {j[2]}" for j in jobs if j[2] not in ("done", "fail")]
        silent = [f"job {j[0]} of {j[1]} failed without a reason" for j in jobs if j[2] == "fail" and not j[3].strip()]
        done = sum(1 for j in jobs if j[2] == "done")
        failed = sum(1 for j in jobs if j[2] == "fail")
        self.check("every accepted load ended done or fail with a reason", stuck + silent,
                   f"{len(jobs)} jobs: {done} done, {failed} failed")

    def latest_status(self, package):
        rows = psql(f"SELECT status FROM load_jobs WHERE package_id = {quoted(package)} ORDER BY id DESC LIMIT 1",
                    self.db)
        return rows[0][0] if rows else None

    def registry(self):
        """{id: (package JSON, model JSON, loaded)} of every registry record."""
        rows = psql("SELECT id, package, model, loaded FROM packages", self.db)
        return {r[0]: (json.loads(r[1]), json.loads(r[2]) if r[2] else {}, r[3] == "t") for r in rows}

    def rows_loaded(self):
        registry = self.registry()
        violations, checked = [], 0
        for package, load in self.record.loads.items():
            if load["deleted"] or self.latest_status(package) != "done" or package not in registry:
                continue
            fact_table = registry[package][1].get("fact_table")
            if not fact_table:
                violations.append(f"{package}: loaded, but its model names no fact table")
                continue
            count = int(psql(f'SELECT count(*) FROM "{fact_table}"', self.db)[0][0])
            checked += 1
            if count != load["rows"]:
                violations.append(f"{package}: {count} rows in {fact_table}, its CSV has {load['rows']}")
        self.check("every loaded package's fact table holds exactly its CSV's rows", violations,
                   f"{checked} fact tables counted")

    def deleted_packages_gone(self):
        registry = self.registry()
        deleted = [p for p, load in self.record.loads.items() if load["deleted"]]
        violations = [f"{p}: deleted, but still in the registry" for p in deleted if p in registry]
        self.check("every acknowledged delete removed the package", violations, f"{len(deleted)} deletes")

    def no_staging_tables(self):
        tables = [r[0] for r in psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                                     "AND tablename LIKE '%\\_\\_new'", self.db)]
        self.check("no staging table is left", [f"{t} is left" for t in tables],
                   f"{len(psql('SELECT 1 FROM pg_tables WHERE schemaname = current_schema()', self.db))} tables")

    def index_equals_registry(self):
        registry = self.registry()
        documents = self.cluster.search_documents()
        violations = [f"{p} is in the registry, not in the index" for p in registry if p not in documents]
        violations += [f"{p} is in the index, not in the registry" for p in documents if p not in registry]
        for package, document in documents.items():
            if package in registry:
                stored = registry[package][0].get("private")
                indexed = document.get("package", {}).get("private")
                if stored != indexed:
                    violations.append(f"{package}: private is {stored} in the registry, {indexed} in the index")
        self.check("the search index equals the registry", violations,
                   f"{len(registry)} records, {len(documents)} documents")

    def uploads_whole(self):
        root = self.cluster.s3_root / BUCKET
        violations = []
        for key, md5 in self.record.uploads.items():
            path = root / key
            if not path.is_file():
                violations.append(f"{key}: its PUT was answered 200, the object is missing")
                continue
            stored = base64.b64encode(hashlib.md5(path.read_bytes()).digest()).decode()
            attempted = self.record.attempted.get(key, set())
            if stored != md5 and stored not in attempted:
                violations.append(f"{key}: holds bytes no PUT of it sent (MD5 {stored})")
        self.check("no upload is half-stored", violations, f"{len(self.record.uploads)} objects checked")

    def visibility(self):
        registry = self.registry()
        violations = []
        for package, private in self.record.visibility.items():
            if package in registry and registry[package][0].get("private", True) != private:
                violations.append(f"{package}: private should be {private} after its last acknowledged publish")
        self.check("every package's visibility is what its last acknowledged publish said", violations,
                   f"{len(self.record.visibility)} packages published or unpublished")
