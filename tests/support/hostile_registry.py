#!/usr/bin/python3
"""A registry that misbehaves on purpose, for the hostile-input tests (stdlib only).

Usage: hostile_registry.py PORT THIRD_PORT DIR LOG

DIR holds one image as the tests wrote it: DIR/manifests/v1 (its media type in v1.type) and
DIR/blobs/<digest>. The first component of the repository picks the misbehaviour, so one server
plays every part (`/v2/<mode>/app/...`):

  ok            serves the image faithfully (the control)
  huge          the manifest declares and sends more than the client's 4 MiB cap
  endless       the manifest is a chunked stream that never ends, sent as fast as possible
  baddigest     the first layer is served with one byte flipped (same length)
  silent        the manifest request is read and never answered, not even a status line
  stall         the manifest answer sends its headers and a few bytes, then nothing, for ever
  trickle       the manifest answer sends one byte every 0.3 s, for ever
  stallblob     the manifest is fine; the first layer stops half way and stays open
  trickleblob   the manifest is fine; the first layer comes one byte every 0.3 s (never idle
                for a whole second, so only a floor on throughput ends it)
  html500       the manifest answers 500 with a long HTML page (with an ANSI escape in it)
  html404       the manifest answers 404 with an HTML page
  htmlok        the manifest answers 200 with an HTML page (a captive portal)
  realmother    every request wants a Bearer token from http://localhost:THIRD_PORT/token
  realmsame     every request wants a Bearer token from http://127.0.0.1:THIRD_PORT/token
  redirectblob  every blob request is redirected (307) to http://127.0.0.1:THIRD_PORT/blob/DIGEST

THIRD_PORT is a token service on another origin: it logs the Authorization it receives and
hands out the token `tok-hostile`; under /blob/ it serves the blobs (blob storage). Every request to either server is logged as one line:
`<server> <mode> <method> <path> authorization=<absent|basic user=NAME|bearer|other>`.
Passwords are never written to the log.
"""
import base64, os, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpkit

port, third_port, root, log_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
log_lock = threading.Lock()
TOKEN = "tok-hostile"
CAP = 4 * 1024 * 1024


def log(line):
    with log_lock, open(log_path, "a") as f:
        f.write(line + "\n")


def describe(auth):
    if not auth:
        return "absent"
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "basic":
        try:
            user = base64.b64decode(value).decode().split(":", 1)[0]
        except Exception:
            user = "?"
        return f"basic user={user}"
    if scheme.lower() == "bearer":
        return "bearer"
    return "other"


def read(*parts):
    with open(os.path.join(root, *parts), "rb") as f:
        return f.read()


def forever():
    while True:
        time.sleep(3600)


HTML = (
    b"<!DOCTYPE html>\n<html><head><title>502 Upstream Trouble</title>"
    b"<style>body { color: red }</style></head>\n<body>\x1b[31m<h1>Upstream Trouble</h1>\n"
    b"<p>The proxy could not reach the registry.</p>"
    + b"<p>" + b"padding " * 20000 + b"</p></body></html>\n"
)


class Registry(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def send(self, status, body=b"", headers=()):
        httpkit.send(self, status, body, headers)

    def do_GET(self):
        parts = self.path.split("?")[0].split("/")
        mode = parts[2] if len(parts) > 2 else ""
        log(f"registry {mode or '-'} {self.command} {self.path} "
            f"authorization={describe(self.headers.get('Authorization'))}")
        if self.path == "/v2/" or self.path == "/v2":
            return self.send(200, b"{}", [("Content-Type", "application/json")])
        if mode in ("realmother", "realmsame"):
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                host = "localhost" if mode == "realmother" else "127.0.0.1"
                challenge = (f'Bearer realm="http://{host}:{third_port}/token",'
                             f'service="hostile",scope="repository:{mode}/app:pull"')
                return self.send(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}',
                                 [("WWW-Authenticate", challenge),
                                  ("Content-Type", "application/json")])
        if "manifests" in parts:
            return self.manifest(mode)
        if "blobs" in parts and mode == "redirectblob":
            return self.send(307, b"", [("Location", f"http://127.0.0.1:{third_port}/blob/{parts[-1]}")])
        if "blobs" in parts:
            return self.blob(mode, parts[-1])
        self.send(404, b'{"errors":[{"code":"NAME_UNKNOWN"}]}')

    do_HEAD = do_GET

    def manifest(self, mode):
        body = read("manifests", "v1")
        media = read("manifests", "v1.type").decode().strip()
        if mode == "huge":
            padded = body[:-1] + b" " * (CAP + 1024 - len(body)) + b"}"
            return self.send(200, padded, [("Content-Type", media)])
        if mode == "endless":
            self.send_response(200)
            self.send_header("Content-Type", media)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b" " * 65536
            framed = b"%x\r\n%s\r\n" % (len(chunk), chunk)
            sent = 0
            try:
                self.wfile.write(b"1\r\n{\r\n")
                while True:
                    self.wfile.write(framed)
                    sent += len(chunk)
            except OSError:
                log(f"registry endless stopped after {sent} bytes")
            return
        if mode == "silent":
            forever()
        if mode == "stall":
            self.send_response(200)
            self.send_header("Content-Type", media)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:10])
            self.wfile.flush()
            forever()
        if mode == "trickle":
            self.send_response(200)
            self.send_header("Content-Type", media)
            self.send_header("Content-Length", str(CAP))
            self.end_headers()
            try:
                while True:
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.3)
            except OSError:
                return
        if mode == "html500":
            return self.send(500, HTML, [("Content-Type", "text/html")])
        if mode == "html404":
            return self.send(404, HTML.replace(b"502 Upstream", b"404 Not").replace(b"Upstream", b"Page"),
                             [("Content-Type", "text/html")])
        if mode == "htmlok":
            return self.send(200, HTML, [("Content-Type", "text/html; charset=utf-8")])
        self.send(200, body, [("Content-Type", media)])

    def blob(self, mode, digest):
        path = os.path.join(root, "blobs", digest)
        if not os.path.exists(path):
            return self.send(404, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}')
        data = read("blobs", digest)
        layer = read("first-layer").decode().strip()
        if digest == layer and mode == "baddigest":
            data = bytearray(data)
            data[len(data) // 2] ^= 0x01
            data = bytes(data)
        if digest == layer and mode == "stallblob":
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            forever()
        if digest == layer and mode == "trickleblob":
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                for byte in data:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.3)
            except OSError:
                pass
            return
        self.send(200, data, [("Content-Type", "application/octet-stream")])

    def log_message(self, *args):
        pass


class Third(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        log(f"third - {self.command} {self.path} "
            f"authorization={describe(self.headers.get('Authorization'))}")
        if self.path.startswith("/blob/"):
            data = read("blobs", self.path[len("/blob/"):])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        body = b'{"token":"%s","expires_in":300}' % TOKEN.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


for server in (ThreadingHTTPServer(("127.0.0.1", third_port), Third),):
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
main = ThreadingHTTPServer(("127.0.0.1", port), Registry)
main.daemon_threads = True
main.serve_forever()
