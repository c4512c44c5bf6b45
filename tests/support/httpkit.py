"""Shared by the test servers in this folder: answering a request, and forwarding one to an
upstream registry unchanged (returning its status, headers and body for the caller to relay)."""
import http.client


def send(handler, status, body=b"", headers=()):
    """Answers `handler`'s request with `status`, `headers` and `body` (no body for HEAD)."""
    handler.send_response(status)
    for k, v in headers:
        handler.send_header(k, v)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


def forward(handler, upstream, body):
    """Sends `handler`'s request to UPSTREAM (host:port); returns (status, headers, body)."""
    host, _, port = upstream.partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("host", "connection")}
    conn.request(handler.command, handler.path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    kept = [(k, v) for k, v in response.getheaders()
            if k.lower() not in ("transfer-encoding", "connection", "content-length")]
    return response.status, kept, data
