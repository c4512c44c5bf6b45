#!/usr/bin/python3
"""Adds the OCI 1.1 referrers API in front of a registry that lacks it (distribution 2.8, the
only registry Debian packages): no referrers-capable registry installs here, so this follows
the OCI distribution-spec v1.1.0 ("Pushing manifests with subject", "Listing referrers") for
exactly those two things and forwards everything else to UPSTREAM unchanged.

* PUT /v2/<name>/manifests/<ref> whose body has `subject`: forwarded; on 201 the manifest's
  descriptor (mediaType, digest, size, artifactType — or config.mediaType when absent —, and
  annotations) is recorded under the subject digest, and the response carries
  `OCI-Subject: <subject digest>`.
* GET /v2/<name>/referrers/<digest>[?artifactType=T]: 200, Content-Type
  application/vnd.oci.image.index.v1+json, an image index listing the recorded descriptors
  (filtered by T, with `OCI-Filters-Applied: artifactType`). An empty list is still 200.

Logs one line per request to stderr. Usage: referrers_proxy.py PORT UPSTREAM_HOST:PORT"""
import hashlib, json, re, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpkit

port, upstream = int(sys.argv[1]), sys.argv[2]
referrers = {}  # (name, subject digest) -> [descriptor]
lock = threading.Lock()
INDEX = "application/vnd.oci.image.index.v1+json"
REFERRERS = re.compile(r"^/v2/(?P<name>.+)/referrers/(?P<digest>[a-z0-9]+:[a-f0-9]+)$")
MANIFEST = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)$")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        url = urlsplit(self.path)
        m = REFERRERS.match(url.path)
        if m and self.command == "GET":
            wanted = parse_qs(url.query).get("artifactType", [None])[0]
            with lock:
                found = list(referrers.get((m["name"], m["digest"]), []))
            headers = [("Content-Type", INDEX)]
            if wanted is not None:
                found = [d for d in found if d.get("artifactType") == wanted]
                headers.append(("OCI-Filters-Applied", "artifactType"))
            index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": found}
            sys.stderr.write(f"200 GET {self.path} ({len(found)} referrers)\n")
            httpkit.send(self, 200, json.dumps(index).encode(), headers)
            return
        status, upstream_headers, data = httpkit.forward(self, upstream, body)
        extra = []
        m = MANIFEST.match(url.path)
        if m and self.command == "PUT" and status == 201 and body:
            try:
                manifest = json.loads(body)
            except ValueError:
                manifest = {}
            subject = manifest.get("subject") if isinstance(manifest, dict) else None
            if isinstance(subject, dict) and "digest" in subject:
                descriptor = {
                    "mediaType": manifest.get("mediaType"),
                    "digest": "sha256:" + hashlib.sha256(body).hexdigest(),
                    "size": len(body),
                    "artifactType": manifest.get("artifactType")
                    or manifest.get("config", {}).get("mediaType"),
                }
                if manifest.get("annotations"):
                    descriptor["annotations"] = manifest["annotations"]
                with lock:
                    listed = referrers.setdefault((m["name"], subject["digest"]), [])
                    if descriptor not in listed:
                        listed.append(descriptor)
                extra.append(("OCI-Subject", subject["digest"]))
        sys.stderr.write(f"{status} {self.command} {self.path}\n")
        httpkit.send(self, status, data, upstream_headers + extra)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = handle_any

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
