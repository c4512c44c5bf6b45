#!/usr/bin/python3
"""Registry v2 token server (distribution token auth) for the tests: ES256 JWTs with an x5c header.
Usage: tokenserver.py PORT KEY.pem CERT.pem ISSUER [USER:PASS]
With USER:PASS, a token is issued only for correct basic auth; every requested scope is granted."""
import base64, json, sys, time, uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import urlparse, parse_qs
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography import x509

port, keyf, certf, issuer = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
creds = sys.argv[5] if len(sys.argv) > 5 else None
key = serialization.load_pem_private_key(open(keyf, 'rb').read(), None)
der = x509.load_pem_x509_certificate(open(certf, 'rb').read()).public_bytes(serialization.Encoding.DER)
b64u = lambda b: base64.urlsafe_b64encode(b).rstrip(b'=').decode()

def sign(claims):
    hdr = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(der).decode()]}
    si = b64u(json.dumps(hdr).encode()) + '.' + b64u(json.dumps(claims).encode())
    r, s = decode_dss_signature(key.sign(si.encode(), ec.ECDSA(hashes.SHA256())))
    return si + '.' + b64u(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))

class H(BaseHTTPRequestHandler):
    def do_GET(self):
        u = urlparse(self.path); q = parse_qs(u.query)
        user = 'anonymous'
        if creds:
            a = self.headers.get('Authorization', '')
            if not a.startswith('Basic ') or base64.b64decode(a[6:]).decode() != creds:
                self.send_response(401); self.end_headers(); return
            user = creds.split(':')[0]
        access = []
        for sc in q.get('scope', []):
            typ, name, actions = sc.split(':') if sc.count(':') == 2 else (sc.split(':')[0], ':'.join(sc.split(':')[1:-1]), sc.split(':')[-1])
            access.append({"type": typ, "name": name, "actions": actions.split(',')})
        now = int(time.time())
        tok = sign({"iss": issuer, "sub": user, "aud": q.get('service', [''])[0], "exp": now + 300,
                    "nbf": now - 10, "iat": now, "jti": str(uuid.uuid4()), "access": access})
        body = json.dumps({"token": tok, "access_token": tok, "expires_in": 300}).encode()
        self.send_response(200); self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body))); self.end_headers(); self.wfile.write(body)
        sys.stderr.write(f"issued token user={user} scopes={q.get('scope')}\n")
HTTPServer(('127.0.0.1', port), H).serve_forever()
