#!/usr/bin/python3
"""HTTP proxy for the tests: answers the first N requests with 429 (Retry-After: 1), then
forwards every request to UPSTREAM unchanged. Logs one line per request to stderr.
Usage: flaky_proxy.py PORT UPSTREAM_HOST:PORT N"""
import http.client, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, upstream, failures = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
state = {"left": failures}

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if state["left"] > 0:
            state["left"] -= 1
            sys.stderr.write(f"429 {self.command} {self.path}\n")
            self.send_response(429)
            self.send_header("Retry-After", "1")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        host, _, p = upstream.partition(":")
        conn = http.client.HTTPConnection(host, int(p), timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        conn.request(self.command, self.path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        sys.stderr.write(f"{response.status} {self.command} {self.path}\n")
        self.send_response(response.status)
        for k, v in response.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = handle_any

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
