#!/usr/bin/env python3
"""Starts the conductor binary with exactly the settings each deployment file passes, against real services.

For every Conductor service of deploy/compose.yaml and deploy/compose.embedded.yaml, and every Conductor pod of
deploy/kubernetes (gateway, worker, migration Job): the environment it sets, the configuration layer it mounts
(a file or the ConfigMap) and the secrets it mounts or reads (from the Compose secret files' templates or
secret.example.yaml), with only the service addresses moved to this machine's: PostgreSQL, Redis, s3s-fs and
osmem-server (the OpenSearch stand-in). Each must start and answer /readyz with every check `ok` (the Job must
exit 0). A misspelt variable or key stops start-up (the settings refuse unknown keys), and a secret key the
manifests name that the Secret does not hold fails here, so a typo in a manifest fails CI.

    deploy/test-config.py PATH-TO-THE-CONDUCTOR-BINARY
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
# The access key compose/conductor.toml names (MinIO's root user); the Secret's is this too.
S3_ACCESS, S3_SECRET, BUCKET = "conductor", "conductor-deploy-secret", "openspending"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, what, within=15):
    deadline = time.time() + within
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"error: {what} did not listen on {port}")


class Peers:
    """PostgreSQL (a database of its own), Redis, s3s-fs and osmem-server, as the deployment's services."""

    def __init__(self, work):
        self.processes = []
        self.database = f"conductor_deploy_{os.getpid()}"
        subprocess.run(["psql", "-qh", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c",
                        f"CREATE DATABASE {self.database}"], check=True)
        self.database_url = f"postgres://postgres@127.0.0.1:5432/{self.database}"
        s3s = os.environ.get("CONDUCTOR_TEST_S3S_FS", "/var/cache/conductor/s3s-fs/bin/s3s-fs")
        (work / "s3" / BUCKET).mkdir(parents=True)
        self.s3_port = free_port()
        self.start([s3s, "--host", "127.0.0.1", "--port", str(self.s3_port), "--access-key", S3_ACCESS,
                    "--secret-key", S3_SECRET, str(work / "s3")], self.s3_port, "s3s-fs")
        import osmem_server
        self.search_port = free_port()
        self.start([osmem_server.resolve_binary(), "-addr", f"127.0.0.1:{self.search_port}", "-no-stdin-watch",
                    "-no-ja"], self.search_port, "osmem-server")

    def start(self, command, port, what):
        self.processes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for_port(port, what)

    def addresses(self):
        """The deployment files' service addresses, and this machine's."""
        return [
            ("http://minio:9000", f"http://127.0.0.1:{self.s3_port}"),
            ("http://opensearch:9200", f"http://127.0.0.1:{self.search_port}"),
            ("redis://redis:6379", "redis://127.0.0.1:6379/0"),
        ]

    def stop(self):
        for process in self.processes:
            process.terminate()
            process.wait()
        subprocess.run(["psql", "-qh", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c",
                        f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)"], check=False)


class Pod:
    """One process as a deployment file runs it: its environment, config folder and secret files, moved here."""

    def __init__(self, name, work, peers, binary):
        self.name, self.peers, self.binary = name, peers, binary
        self.root = work / name.replace("/", "-")
        self.config = self.root / "config"
        shutil.copytree(ROOT / "config", self.config)
        (self.root / "data").mkdir(parents=True)
        self.port = free_port()
        self.environment = {}

    def here(self, text):
        """A value of the deployment's, with its paths and service addresses moved to this machine's."""
        text = text.replace("/run/secrets/", f"{self.root}/run/secrets/")
        text = text.replace("/etc/conductor/config", str(self.config))
        for there, here in self.peers.addresses():
            text = text.replace(there, here)
        text = text.replace("0.0.0.0:8000", f"127.0.0.1:{self.port}")
        for base in ("http://localhost:8000/", "https://conductor.example.org/"):
            text = text.replace(base, f"http://127.0.0.1:{self.port}/")
        return text

    def file(self, path, content):
        target = Path(self.here(path))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.here(content))

    def run(self, args, until_ready):
        environment = {
            "PATH": os.environ["PATH"],
            # The image's own environment (deploy/Containerfile).
            "CONDUCTOR_ENV": "production",
            "CONDUCTOR__DATA_DIR": str(self.root / "data"),
            **{key: self.here(str(value)) for key, value in self.environment.items()},
        }
        args = [self.here(a) for a in args]
        log = open(self.root / "log", "w")
        process = subprocess.Popen([str(self.binary), *args], env=environment, stdout=log, stderr=log)
        try:
            if not until_ready:
                code = process.wait(timeout=60)
                if code != 0:
                    raise SystemExit(f"error: {self.name} exited {code}:\n{(self.root / 'log').read_text()}")
                print(f"{self.name}: exited 0")
                return
            url = f"http://127.0.0.1:{self.port}/readyz"
            deadline, answer = time.time() + 60, None
            while time.time() < deadline:
                if process.poll() is not None:
                    raise SystemExit(f"error: {self.name} stopped ({process.returncode}):\n"
                                     f"{(self.root / 'log').read_text()}")
                try:
                    with urllib.request.urlopen(url, timeout=2) as response:
                        answer = response.read().decode()
                        break
                except urllib.error.HTTPError as refused:
                    answer = refused.read().decode()
                    time.sleep(0.2)
                except OSError:
                    time.sleep(0.2)
            if answer is None or '"status":"ready"' not in answer:
                log = (self.root / "log").read_text().splitlines()
                raise SystemExit(f"error: {self.name} never ready ({answer}):\n" + "\n".join(log[:40]))
            print(f"{self.name}: {answer}")
        finally:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=60)


def compose(path, peers, work, binary):
    document = yaml.safe_load(path.read_text())
    secrets = document.get("secrets", {})
    for name, service in document["services"].items():
        if "conductor" not in str(service.get("image", "")):
            continue
        pod = Pod(f"{path.name}/{name}", work, peers, binary)
        pod.environment = dict(service.get("environment", {}))
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                pod.file(target, (path.parent / source).read_text())
        for secret in service.get("secrets", []):
            source = secret["source"] if isinstance(secret, dict) else secret
            target = secret.get("target", source) if isinstance(secret, dict) else secret
            pod.file(f"/run/secrets/{target}", secret_content(Path(secrets[source]["file"]).name, peers))
        pod.run(["--config-dir", "/etc/conductor/config", "serve"], until_ready=True)


def secret_content(file_name, peers):
    """What a Compose secret file holds once deploy/compose/make-secrets.sh made it, for this machine."""
    if file_name == "private.pem":
        return PRIVATE_KEY
    if file_name == "conductor-secrets.toml":
        template = (DEPLOY / "compose" / "conductor-secrets.example.toml").read_text()
        database = template.split('url = "')[1].split('"')[0]
        return template.replace(database, peers.database_url).replace("S3_SECRET_KEY", S3_SECRET)
    if file_name in ("oidc-client-secret", "postgres-password", "s3-secret-key"):
        return "a-secret\n"
    raise SystemExit(f"error: compose names a secret file make-secrets.sh does not make: {file_name}")


def kubernetes(peers, work, binary):
    folder = DEPLOY / "kubernetes"
    resources = yaml.safe_load((folder / "kustomization.yaml").read_text())["resources"]
    documents = [d for r in resources for d in yaml.safe_load_all((folder / r).read_text()) if d]
    config_maps = {d["metadata"]["name"]: d["data"] for d in documents if d["kind"] == "ConfigMap"}
    secret = yaml.safe_load((folder / "secret.example.yaml").read_text())
    values = dict(secret["stringData"])
    values.update({"database-url": peers.database_url, "s3-access-key": S3_ACCESS, "s3-secret-key": S3_SECRET,
                   "private.pem": PRIVATE_KEY})
    for document in documents:
        if document["kind"] not in ("Deployment", "Job"):
            continue
        spec = document["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in spec["containers"]:
            pod = Pod(f"kubernetes/{document['metadata']['name']}", work, peers, binary)
            for variable in container.get("env", []):
                if "value" in variable:
                    pod.environment[variable["name"]] = variable["value"]
                else:
                    key = variable["valueFrom"]["secretKeyRef"]["key"]
                    if key not in values:
                        raise SystemExit(f"error: {pod.name} reads {key!r}, which the Secret does not hold")
                    pod.environment[variable["name"]] = values[key]
            for mount in container.get("volumeMounts", []):
                volume = volumes[mount["name"]]
                if "configMap" in volume:
                    data = config_maps[volume["configMap"]["name"]]
                    pod.file(mount["mountPath"], data[mount["subPath"]])
                elif "secret" in volume:
                    for item in volume["secret"]["items"]:
                        if item["key"] not in values:
                            raise SystemExit(f"error: {pod.name} mounts {item['key']!r}, which the Secret does not hold")
                        pod.file(f"{mount['mountPath']}/{item['path']}", values[item["key"]])
            pod.run(container["args"], until_ready=document["kind"] == "Deployment")


PRIVATE_KEY = ""


def main():
    global PRIVATE_KEY
    binary = Path(sys.argv[1]).resolve()
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        subprocess.run([str(binary), "keys", "generate", "--out", str(work / "keys")], check=True,
                       stderr=subprocess.DEVNULL)
        PRIVATE_KEY = (work / "keys" / "private.pem").read_text()
        peers = Peers(work)
        try:
            kubernetes(peers, work, binary)
            compose(DEPLOY / "compose.yaml", peers, work, binary)
            compose(DEPLOY / "compose.embedded.yaml", peers, work, binary)
        finally:
            peers.stop()
    print("deploy/test-config.py: every deployment file's configuration starts the service")


if __name__ == "__main__":
    main()
