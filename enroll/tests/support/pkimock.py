#!/usr/bin/python3
"""Test CA servers for ocicert-enroll: an RFC 7030 EST server and a Vault PKI server.

Usage: pkimock.py CONFIG.json     (Debian /usr/bin/python3 + python3-cryptography only)

CONFIG: {"mode": "est"|"vault", "port": N, "tls_cert": PEM path, "tls_key": PEM path,
         "ca_cert": PEM path, "ca_key": PEM path, "log": path (one JSON line per request),
         "validity_seconds": N (default 86400),
  est:   "users": ["user:pass", ...], "client_ca": PEM path or null (enables TLS client-cert auth),
         "label": "name" or null (served under /.well-known/est/<label>/ as well), "pending_once": bool
  vault: "token": "...", "mount": "pki", "role": "web", "kube_role": "app", "kube_jwt": "...",
         "max_ttl_seconds": N}

EST follows RFC 7030 (+ RFC 8951): GET cacerts -> 200 application/pkcs7-mime, base64 DER certs-only;
POST simpleenroll/simplereenroll with Content-Type application/pkcs10 and a base64 DER PKCS#10 body ->
200 application/pkcs7-mime; smime-type=certs-only, Content-Transfer-Encoding: base64. HTTP Basic is
checked when "users" is set; a verified TLS client certificate is accepted instead when "client_ca" is
set. simplereenroll requires the client certificate and the same SANs (RFC 7030 section 4.2.2).

Vault follows the documented JSON of POST /v1/auth/kubernetes/login and POST /v1/<mount>/sign/<role>:
X-Vault-Token, {"errors": [...]} bodies, the data.certificate / issuing_ca / ca_chain / serial_number /
expiration reply. The issued certificate takes its SANs from the CSR (use_csr_sans) and its lifetime
from "ttl" (capped at max_ttl_seconds): the renew test asks for a few seconds.
"""
import base64, binascii, datetime, json, re, ssl, sys, threading, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

cfg = json.load(open(sys.argv[1]))
ca = x509.load_pem_x509_certificate(open(cfg["ca_cert"], "rb").read())
ca_key = serialization.load_pem_private_key(open(cfg["ca_key"], "rb").read(), None)
log_lock = threading.Lock()
state = {"pending_served": False, "tokens": {cfg.get("token")} - {None}}


def log(entry):
    with log_lock, open(cfg["log"], "a") as f:
        f.write(json.dumps(entry) + "\n")


def issue(csr, seconds, common_name=None):
    now = datetime.datetime.utcnow()
    subject = csr.subject
    if common_name:
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca.subject)
               .public_key(csr.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(seconds=5))
               .not_valid_after(now + datetime.timedelta(seconds=seconds)))
    try:
        builder = builder.add_extension(
            csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value, critical=False)
    except x509.ExtensionNotFound:
        pass
    from cryptography.hazmat.primitives.asymmetric import ed25519
    algorithm = None if isinstance(ca_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(ca_key, algorithm)


def sans_of(obj):
    try:
        ext = obj.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return sorted(str(n.value) for n in ext)


class Est(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, body=b"", ctype="text/plain", extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        if ctype.startswith("application/pkcs7-mime"):
            self.send_header("Content-Transfer-Encoding", "base64")
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def operation(self):
        m = re.fullmatch(r"/\.well-known/est(?:/([^/]+))?/(cacerts|simpleenroll|simplereenroll)", self.path)
        if not m:
            return None, None
        label, op = m.group(1), m.group(2)
        if label is not None and label != cfg.get("label"):
            return None, None
        return label, op

    def peer(self):
        cert = self.connection.getpeercert(binary_form=True)
        return x509.load_der_x509_certificate(cert) if cert else None

    def do_GET(self):
        label, op = self.operation()
        log({"method": "GET", "path": self.path, "accept": self.headers.get("Accept")})
        if op != "cacerts":
            return self.reply(404, b"not found")
        body = base64.encodebytes(pkcs7.serialize_certificates([ca], serialization.Encoding.DER))
        self.reply(200, body, "application/pkcs7-mime")

    def do_POST(self):
        label, op = self.operation()
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        peer = self.peer()
        auth = self.headers.get("Authorization", "")
        entry = {"method": "POST", "path": self.path, "content_type": self.headers.get("Content-Type"),
                 "cte": self.headers.get("Content-Transfer-Encoding"), "basic": auth.startswith("Basic "),
                 "client_cert": peer.subject.rfc4514_string() if peer else None}
        log(entry)
        if op not in ("simpleenroll", "simplereenroll"):
            return self.reply(404, b"not found")
        basic_ok = any(auth == "Basic " + base64.b64encode(u.encode()).decode() for u in cfg.get("users", []))
        cert_ok = peer is not None and cfg.get("client_ca") is not None
        if op == "simplereenroll" and not cert_ok:
            return self.reply(401, b"simplereenroll needs the current certificate as TLS client certificate",
                              extra=[("WWW-Authenticate", 'Basic realm="est"')])
        if not (basic_ok or cert_ok):
            return self.reply(401, b"authentication required", extra=[("WWW-Authenticate", 'Basic realm="est"')])
        if (self.headers.get("Content-Type") or "").split(";")[0].strip().lower() != "application/pkcs10":
            return self.reply(415, b"expected application/pkcs10")
        try:
            csr = x509.load_der_x509_csr(base64.b64decode(b"".join(raw.split()), validate=True))
        except (binascii.Error, ValueError) as e:
            return self.reply(400, ("bad PKCS#10: %s" % e).encode())
        if not csr.is_signature_valid:
            return self.reply(400, b"bad CSR signature")
        if op == "simplereenroll" and sans_of(csr) != sans_of(peer):
            return self.reply(400, b"simplereenroll: SubjectAltName differs from the current certificate")
        if cfg.get("pending_once") and not state["pending_served"]:
            state["pending_served"] = True
            return self.reply(202, b"pending", extra=[("Retry-After", "1")])
        cert = issue(csr, cfg.get("validity_seconds", 86400))
        body = base64.encodebytes(pkcs7.serialize_certificates([cert], serialization.Encoding.DER))
        self.reply(200, body, "application/pkcs7-mime; smime-type=certs-only")


def duration(text):
    if text is None or text == "":
        return None
    if isinstance(text, int) or str(text).isdigit():
        return int(text)
    m = re.fullmatch(r"(\d+)([smhd])", str(text))
    if not m:
        raise ValueError(text)
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


class Vault(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def errors(self, code, *messages):
        self.reply(code, {"errors": list(messages)})

    def do_GET(self):
        self.errors(405, "1 error occurred:\n\t* unsupported operation\n\n")

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return self.errors(400, "failed to parse JSON input")
        log({"method": "POST", "path": self.path, "content_type": self.headers.get("Content-Type"),
             "has_token": "X-Vault-Token" in self.headers, "namespace": self.headers.get("X-Vault-Namespace"),
             "keys": sorted(body.keys())})
        if self.path == "/v1/auth/kubernetes/login":
            if body.get("role") != cfg.get("kube_role"):
                return self.errors(400, 'invalid role name "%s"' % body.get("role"))
            if body.get("jwt") != cfg.get("kube_jwt"):
                return self.errors(403, "permission denied")
            token = "hvs." + uuid.uuid4().hex
            state["tokens"].add(token)
            return self.reply(200, {
                "request_id": str(uuid.uuid4()), "lease_id": "", "renewable": False, "lease_duration": 0,
                "data": None, "wrap_info": None, "warnings": None,
                "auth": {"client_token": token, "accessor": uuid.uuid4().hex, "policies": ["default", "pki"],
                         "token_policies": ["default", "pki"], "metadata": {"role": cfg.get("kube_role"),
                         "service_account_name": "app", "service_account_namespace": "default"},
                         "lease_duration": 3600, "renewable": True, "entity_id": str(uuid.uuid4()),
                         "token_type": "service", "orphan": True, "mfa_requirement": None, "num_uses": 0}})
        m = re.fullmatch(r"/v1/([^/]+)/sign/([^/]+)", self.path)
        if not m or m.group(1) != cfg.get("mount", "pki"):
            return self.errors(404, "1 error occurred:\n\t* unsupported path\n\n")
        if self.headers.get("X-Vault-Token") not in state["tokens"]:
            return self.errors(403, "permission denied")
        if m.group(2) != cfg.get("role"):
            return self.errors(400, "unknown role: %s" % m.group(2))
        try:
            csr = x509.load_pem_x509_csr(body.get("csr", "").encode())
        except ValueError:
            return self.errors(400, "certificate request could not be parsed")
        try:
            ttl = duration(body.get("ttl")) or 86400
        except ValueError:
            return self.errors(400, "invalid ttl")
        ttl = min(ttl, cfg.get("max_ttl_seconds", 86400 * 30))
        cn = body.get("common_name")
        cert = issue(csr, ttl, cn)
        pem = cert.public_bytes(serialization.Encoding.PEM).decode().strip()
        ca_pem = ca.public_bytes(serialization.Encoding.PEM).decode().strip()
        serial = ":".join("%02x" % b for b in cert.serial_number.to_bytes(20, "big").lstrip(b"\0"))
        self.reply(200, {
            "request_id": str(uuid.uuid4()), "lease_id": "", "renewable": False, "lease_duration": 0,
            "data": {"certificate": pem, "expiration": int(cert.not_valid_after.replace(
                tzinfo=datetime.timezone.utc).timestamp()), "issuing_ca": ca_pem, "ca_chain": [ca_pem],
                "serial_number": serial},
            "wrap_info": None, "warnings": None, "auth": None})


handler = Est if cfg["mode"] == "est" else Vault
server = ThreadingHTTPServer(("127.0.0.1", cfg["port"]), handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cfg["tls_cert"], cfg["tls_key"])
if cfg["mode"] == "est" and cfg.get("client_ca"):
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.load_verify_locations(cfg["client_ca"])
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print("ready", flush=True)
server.serve_forever()
