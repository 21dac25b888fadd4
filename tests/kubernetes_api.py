"""
A small Kubernetes API server for tests and the demo: the only thing faked for the ``kubernetes`` backend, since no
API server (nor HAMi, nor a GPU) can run here.

It answers, from recorded objects in the shapes Kubernetes and HAMi write them (tests/fixtures/kubernetes/), what
the agent asks: nodes (``labelSelector``), pods across namespaces (``fieldSelector`` on the phase), ResourceQuotas
(list, read, replace, create; a namespace it does not hold answers 404 as the real one does), and HAMi's vGPU
monitor's ``/metrics``. Bearer tokens are checked. Tests change the cluster through ``/fake/…`` (nodes, pods,
exporter text) and read what the agent wrote and how it listed (``/fake/writes``).

    python -m tests.kubernetes_api --objects tests/fixtures/kubernetes/hami-cluster.json --token T [--port 0] [--tls CERT KEY]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import re
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

QUOTA = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/resourcequotas(?:/(?P<name>[^/]+))?$")


class Cluster:
    """The objects the server answers with, and every write made to it."""

    def __init__(self, objects: dict):
        self.lock = threading.Lock()
        self.nodes = objects.get("nodes", [])
        self.pods = objects.get("pods", [])
        self.namespaces = set(objects.get("namespaces", []))
        self.exporter = objects.get("exporter", "")
        self.quotas: dict[tuple[str, str], dict] = {}
        self.writes: list[dict] = []
        self.lists: dict[str, dict] = {}  # path → the query of the last list of it
        self.version = 1

    def listing(self, kind: str, items: list) -> dict:
        return {"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": str(self.version)}, "items": copy.deepcopy(items)}


def _matches_labels(obj: dict, selector: str) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    for term in filter(None, (selector or "").split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


def _matches_fields(pod: dict, selector: str) -> bool:
    phase = (pod.get("status") or {}).get("phase", "Running")
    for term in filter(None, (selector or "").split(",")):
        key, _, value = term.partition("!=")
        if key == "status.phase" and phase == value:
            return False
    return True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    cluster: Cluster
    token: str

    def log_message(self, format, *args):
        pass

    def _send(self, status: int, body, content_type: str = "application/json"):
        payload = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _status(self, code: int, reason: str, message: str):
        self._send(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": message, "code": code})

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length)) if length else None

    def do_GET(self):
        self._route("GET")

    def do_PUT(self):
        self._route("PUT")

    def do_POST(self):
        self._route("POST")

    def _route(self, method: str):
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/metrics" and method == "GET":  # HAMi's vGPU monitor, recorded
            return self._send(200, self.cluster.exporter, "text/plain; version=0.0.4")
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or token != self.token:  # the API server takes the scheme in any case ("bearer" in a pod)
            return self._status(401, "Unauthorized", "Unauthorized")
        cluster = self.cluster
        with cluster.lock:
            body = self._body() if method in ("PUT", "POST") else None
            if url.path.startswith("/fake/"):
                return self._fake(method, url.path, body)
            if method == "GET":
                cluster.lists[url.path] = query
            if url.path == "/api/v1/nodes" and method == "GET":
                return self._send(
                    200, cluster.listing("NodeList", [n for n in cluster.nodes if _matches_labels(n, query.get("labelSelector"))])
                )
            if url.path == "/api/v1/pods" and method == "GET":
                pods = [p for p in cluster.pods if _matches_fields(p, query.get("fieldSelector"))]
                return self._send(200, cluster.listing("PodList", pods))
            if url.path == "/api/v1/resourcequotas" and method == "GET":
                quotas = [q for q in cluster.quotas.values() if _matches_labels(q, query.get("labelSelector"))]
                return self._send(200, cluster.listing("ResourceQuotaList", quotas))
            match = QUOTA.match(url.path)
            if match:
                return self._quota(method, match["ns"], match["name"], body)
        self._status(404, "NotFound", f"the server could not find the requested resource ({method} {url.path})")

    def _quota(self, method: str, namespace: str, name: str | None, body):
        cluster = self.cluster
        if namespace not in cluster.namespaces:
            return self._status(404, "NotFound", f'namespaces "{namespace}" not found')
        if method == "GET" and name:
            quota = cluster.quotas.get((namespace, name))
            return self._send(200, quota) if quota else self._status(404, "NotFound", f'resourcequotas "{name}" not found')
        if method == "PUT" and name:
            if (namespace, name) not in cluster.quotas:
                return self._status(404, "NotFound", f'resourcequotas "{name}" not found')
            return self._store(namespace, name, body, 200, "replace")
        if method == "POST" and not name:
            name = body["metadata"]["name"]
            if (namespace, name) in cluster.quotas:
                return self._status(409, "AlreadyExists", f'resourcequotas "{name}" already exists')
            return self._store(namespace, name, body, 201, "create")
        self._status(405, "MethodNotAllowed", f"{method} is not allowed here")

    def _store(self, namespace: str, name: str, body: dict, status: int, verb: str):
        cluster = self.cluster
        cluster.version += 1
        quota = {**body, "metadata": {**body["metadata"], "namespace": namespace, "name": name, "resourceVersion": str(cluster.version)}}
        cluster.quotas[(namespace, name)] = quota
        cluster.writes.append({"verb": verb, "namespace": namespace, "name": name, "hard": body["spec"]["hard"]})
        self._send(status, quota)

    def _fake(self, method: str, path: str, body):
        cluster = self.cluster
        if method == "PUT" and path in ("/fake/nodes", "/fake/pods"):
            setattr(cluster, path.removeprefix("/fake/"), body)
            cluster.version += 1
            return self._send(200, {"ok": True})
        if method == "PUT" and path == "/fake/exporter":
            cluster.exporter = body["text"]
            return self._send(200, {"ok": True})
        if method == "GET" and path == "/fake/writes":
            return self._send(200, {"writes": cluster.writes, "quotas": list(cluster.quotas.values()), "lists": cluster.lists})
        if method == "GET" and path == "/fake/objects":
            return self._send(200, {"nodes": cluster.nodes, "pods": cluster.pods})
        self._status(404, "NotFound", path)


def serve(objects: dict, *, token: str, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    handler = type("ClusterHandler", (Handler,), {"cluster": Cluster(objects), "token": token})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.kubernetes_api", description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", required=True, help="a JSON file of recorded nodes, pods, namespaces and exporter text")
    parser.add_argument("--token", required=True, help="the bearer token the agent's kubeconfig sends")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="serve HTTPS, as a real API server does, with this pair")
    args = parser.parse_args(argv)
    server = serve(json.loads(Path(args.objects).read_text()), token=args.token, port=args.port)
    if args.tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*args.tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"listening on {'https' if args.tls else 'http'}://127.0.0.1:{server.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())


RECORDED = Path(__file__).resolve().parent / "fixtures" / "kubernetes" / "hami-cluster.json"
LISTENING = re.compile(r"listening on https?://127\.0\.0\.1:(\d+)")


class ClusterProcess:
    """The fake API server as its own process (so stopping it is the API server going away), and a kubeconfig for it."""

    def __init__(self, workdir: Path, objects: Path = RECORDED, token: str = "kube-token-0123456789", tls: tuple | None = None):
        """``tls``: (certificate, key) files to serve HTTPS with, as an API server a pod's service account reaches."""
        self.workdir, self.objects, self.token, self.tls, self.port, self.process = workdir, objects, token, tls, 0, None

    def start(self) -> ClusterProcess:
        import subprocess

        tls = ["--tls", *map(str, self.tls)] if self.tls else []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.kubernetes_api", "--objects", str(self.objects), "--token", self.token, "--port", str(self.port),
             *tls],
            cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        line = self.process.stdout.readline()
        match = LISTENING.search(line)
        if not match:
            raise RuntimeError(f"the fake API server did not start: {line}{self.process.stdout.read()}")
        self.port = int(match[1])
        return self

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
            self.process.stdout.close()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def kubeconfig(self, token: str | None = None) -> Path:
        path = self.workdir / "kubeconfig"
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {"server": self.url}}],
            "users": [{"name": "agent", "user": {"token": token or self.token}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "agent"}}],
        }))  # fmt: skip
        return path

    def _call(self, method: str, path: str, body=None) -> dict:
        import httpx

        answer = httpx.request(method, self.url + path, json=body, headers={"Authorization": f"Bearer {self.token}"}, timeout=5,
                               verify=str(self.tls[0]) if self.tls else True)  # fmt: skip
        answer.raise_for_status()
        return answer.json()

    def objects_now(self) -> dict:
        return self._call("GET", "/fake/objects")

    def put(self, what: str, body) -> None:
        """Replace the cluster's nodes or pods (a list), or the exporter's text (``{"text": …}``)."""
        self._call("PUT", f"/fake/{what}", body)

    def writes(self) -> dict:
        return self._call("GET", "/fake/writes")
