#!/usr/bin/env python3
"""A STAND-IN for HashiCorp Vault, for meshgate's tests only: no Vault
server can be installed on the test machines. It is not Vault and
implements exactly the endpoints the vault plugin uses, with the shapes of
Vault's API documentation, over HTTPS on loopback:

  POST /v1/auth/approle/login      {"role_id", "secret_id"} -> {"auth": {...}}
  POST /v1/auth/token/renew-self   (X-Vault-Token)          -> {"auth": {...}}
  GET  /v1/<mount>/data/<path>     KV v2 read  -> {"data": {"data", "metadata"}}
  POST /v1/<mount>/data/<path>     KV v2 write {"options": {"cas"}, "data"}
  GET  /v1/sys/health

A token expires `--ttl` seconds after its login or last renewal; then it
is refused with 403 {"errors": ["permission denied"]}. A CAS that is not
the current version is refused with 400 {"errors": ["check-and-set
parameter did not match the current version"]}.

usage: vault_standin.py --port P --cert CERT --key KEY --role-id R
       --secret-id S [--ttl SECONDS] [--mount secret] [--log FILE]
The log (one line a request: method, path, status) never holds a body.
"""
import argparse
import json
import secrets
import ssl
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
TOKENS = {}  # token -> expiry (time.monotonic())
KV = {}  # path -> list of versions: {"data", "created_time"}


def now_text():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # the log is ours: no bodies
        pass

    def answer(self, status, body=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        if self.server.log:
            with open(self.server.log, "a") as log:
                log.write(f"{self.command} {self.path} {status}\n")

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        try:
            return json.loads(self.rfile.read(n) or b"{}")
        except ValueError:
            return None

    def token_valid(self):
        token = self.headers.get("X-Vault-Token", "")
        with LOCK:
            expiry = TOKENS.get(token)
            return expiry is not None and time.monotonic() < expiry

    def auth(self, token):
        ttl = self.server.ttl
        return {
            "request_id": secrets.token_hex(8),
            "lease_id": "",
            "renewable": False,
            "lease_duration": 0,
            "data": None,
            "wrap_info": None,
            "warnings": None,
            "auth": {
                "client_token": token,
                "accessor": secrets.token_hex(12),
                "policies": ["default", "meshgate"],
                "token_policies": ["default", "meshgate"],
                "metadata": {"role_name": "meshgate"},
                "lease_duration": ttl,
                "renewable": True,
                "entity_id": "",
                "token_type": "service",
                "orphan": True,
            },
        }

    def kv_path(self):
        prefix = f"/v1/{self.server.mount}/data/"
        if not self.path.startswith(prefix) or len(self.path) == len(prefix):
            return None
        return self.path[len(prefix):]

    def do_GET(self):
        if self.path.startswith("/v1/sys/health"):
            return self.answer(200, {
                "initialized": True, "sealed": False, "standby": False,
                "performance_standby": False, "replication_performance_mode": "disabled",
                "replication_dr_mode": "disabled", "server_time_utc": int(time.time()),
                "version": "stand-in", "cluster_name": "vault-standin",
                "cluster_id": "standin"})
        path = self.kv_path()
        if path is None:
            return self.answer(404, {"errors": []})
        if not self.token_valid():
            return self.answer(403, {"errors": ["permission denied"]})
        with LOCK:
            versions = KV.get(path)
            if not versions:
                return self.answer(404, {"errors": []})
            current = versions[-1]
            return self.answer(200, {
                "request_id": secrets.token_hex(8), "lease_id": "", "renewable": False,
                "lease_duration": 0,
                "data": {"data": current["data"], "metadata": {
                    "created_time": current["created_time"], "custom_metadata": None,
                    "deletion_time": "", "destroyed": False, "version": len(versions)}},
                "wrap_info": None, "warnings": None, "auth": None})

    def do_POST(self):
        body = self.body()
        if body is None:
            return self.answer(400, {"errors": ["failed to parse JSON input"]})
        if self.path == "/v1/auth/approle/login":
            if (body.get("role_id") != self.server.role_id
                    or body.get("secret_id") != self.server.secret_id):
                return self.answer(400, {"errors": ["invalid role or secret ID"]})
            token = "hvs." + secrets.token_urlsafe(24)
            with LOCK:
                TOKENS[token] = time.monotonic() + self.server.ttl
            return self.answer(200, self.auth(token))
        if self.path == "/v1/auth/token/renew-self":
            if not self.token_valid():
                return self.answer(403, {"errors": ["permission denied"]})
            token = self.headers["X-Vault-Token"]
            with LOCK:
                TOKENS[token] = time.monotonic() + self.server.ttl
            return self.answer(200, self.auth(token))
        path = self.kv_path()
        if path is None:
            return self.answer(404, {"errors": []})
        if not self.token_valid():
            return self.answer(403, {"errors": ["permission denied"]})
        if not isinstance(body.get("data"), dict):
            return self.answer(400, {"errors": ["no data provided"]})
        cas = (body.get("options") or {}).get("cas")
        with LOCK:
            versions = KV.setdefault(path, [])
            if cas is not None and cas != len(versions):
                return self.answer(400, {"errors": [
                    "check-and-set parameter did not match the current version"]})
            created = now_text()
            versions.append({"data": body["data"], "created_time": created})
            return self.answer(200, {
                "request_id": secrets.token_hex(8), "lease_id": "", "renewable": False,
                "lease_duration": 0,
                "data": {"created_time": created, "custom_metadata": None,
                         "deletion_time": "", "destroyed": False, "version": len(versions)},
                "wrap_info": None, "warnings": None, "auth": None})


def main():
    ap = argparse.ArgumentParser(description="Vault stand-in for meshgate's tests")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--role-id", required=True)
    ap.add_argument("--secret-id", required=True)
    ap.add_argument("--ttl", type=int, default=3600)
    ap.add_argument("--mount", default="secret")
    ap.add_argument("--log")
    args = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.ttl, server.mount, server.log = args.ttl, args.mount, args.log
    server.role_id, server.secret_id = args.role_id, args.secret_id
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
