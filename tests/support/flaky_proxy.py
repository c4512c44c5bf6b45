#!/usr/bin/python3
"""HTTP proxy for the tests: answers the first N requests with 429 (Retry-After: 1), then
forwards every request to UPSTREAM unchanged. Logs one line per request to stderr.
Usage: flaky_proxy.py PORT UPSTREAM_HOST:PORT N"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpkit

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
            httpkit.send(self, 429, b"", [("Retry-After", "1")])
            return
        status, headers, data = httpkit.forward(self, upstream, body)
        sys.stderr.write(f"{status} {self.command} {self.path}\n")
        httpkit.send(self, status, data, headers)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = handle_any

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
