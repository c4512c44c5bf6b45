#!/usr/bin/python3
"""A minimal registry that keeps blobs elsewhere, for the tests: it requires Basic auth, serves
manifests from DIR/manifests/<ref> (media type in <ref>.type), and answers blob GETs with a 307
to a second "storage" server on another port, which logs whether an Authorization header
arrived. Usage: redirect_registry.py PORT STORAGE_PORT DIR USER:PASS LOG"""
import base64, os, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from httpkit import send

port, storage_port, root, creds, log_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
log_lock = threading.Lock()

def log(line):
    with log_lock, open(log_path, "a") as f:
        f.write(line + "\n")


class Registry(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        auth = self.headers.get("Authorization", "")
        if auth != "Basic " + base64.b64encode(creds.encode()).decode():
            log(f"registry 401 {self.path}")
            return send(self, 401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', [("WWW-Authenticate", 'Basic realm="test"')])
        log(f"registry auth=basic {self.path}")
        parts = self.path.split("/")
        if self.path == "/v2/":
            return send(self, 200, b"{}")
        if "manifests" in parts:
            ref = parts[-1]
            path = os.path.join(root, "manifests", ref)
            if not os.path.exists(path):
                return send(self, 404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
            media = open(path + ".type").read().strip()
            return send(self, 200, open(path, "rb").read(), [("Content-Type", media)])
        if "blobs" in parts:
            return send(self, 307, b"", [("Location", f"http://127.0.0.1:{storage_port}/storage/{parts[-1]}")])
        send(self, 404)
    do_HEAD = do_GET
    def log_message(self, *args):
        pass

class Storage(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        present = "present" if self.headers.get("Authorization") else "absent"
        log(f"storage authorization={present} {self.path}")
        digest = self.path.rsplit("/", 1)[-1]
        path = os.path.join(root, "blobs", digest)
        if not os.path.exists(path):
            return send(self, 404)
        send(self, 200, open(path, "rb").read(), [("Content-Type", "application/octet-stream")])
    def log_message(self, *args):
        pass

storage = ThreadingHTTPServer(("127.0.0.1", storage_port), Storage)
threading.Thread(target=storage.serve_forever, daemon=True).start()
ThreadingHTTPServer(("127.0.0.1", port), Registry).serve_forever()
