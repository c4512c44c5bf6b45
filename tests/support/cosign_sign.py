#!/usr/bin/python3
"""Hand-made cosign-format signer (prototype of what the project must emit), plain-HTTP registry only.
Usage: cosign_sign.py REGISTRY REPO TAG KEYFILE PASSWORD [MODE [OTHER_TAG]]
MODE (tests of verification failures): "tamper" changes the payload after signing; "other" signs the
digest of OTHER_TAG but stores the signature under TAG's .sig tag (a signature copied from another image).
Decrypts a cosign 'ENCRYPTED SIGSTORE PRIVATE KEY', signs the simple-signing payload for REPO@digest(TAG),
pushes it as REPO:sha256-<hex>.sig (OCI manifest, layer mediaType application/vnd.dev.cosign.simplesigning.v1+json,
annotation dev.cosignproject.cosign/signature)."""
import base64, hashlib, json, sys, urllib.request
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from nacl.secret import SecretBox
reg, repo, tag, keyf, pw = sys.argv[1:6]
mode = sys.argv[6] if len(sys.argv) > 6 else ''
other = sys.argv[7] if len(sys.argv) > 7 else ''
pem = open(keyf).read().split('\n')
blob = json.loads(base64.b64decode(''.join(l for l in pem if l and not l.startswith('-----'))))
kdf = blob['kdf']['params']
sk = hashlib.scrypt(pw.encode(), salt=base64.b64decode(blob['kdf']['salt']), n=kdf['N'], r=kdf['r'], p=kdf['p'], maxmem=64 << 20, dklen=32)
der = SecretBox(sk).decrypt(base64.b64decode(blob['ciphertext']), base64.b64decode(blob['cipher']['nonce']))
key = serialization.load_der_private_key(der, None)
def req(method, url, data=None, headers={}):
    r = urllib.request.Request(url, data=data, method=method, headers=headers)
    return urllib.request.urlopen(r)
acc = 'application/vnd.oci.image.manifest.v1+json,application/vnd.oci.image.index.v1+json,application/vnd.docker.distribution.manifest.v2+json,application/vnd.docker.distribution.manifest.list.v2+json'
digest = req('HEAD', f'http://{reg}/v2/{repo}/manifests/{tag}', headers={'Accept': acc}).headers['Docker-Content-Digest']
signed_digest = digest
if mode == 'other':
    signed_digest = req('HEAD', f'http://{reg}/v2/{repo}/manifests/{other}', headers={'Accept': acc}).headers['Docker-Content-Digest']
payload = json.dumps({"critical": {"identity": {"docker-reference": f"{reg}/{repo}"}, "image": {"docker-manifest-digest": signed_digest},
                      "type": "cosign container image signature"}, "optional": None}, separators=(',', ':')).encode()
sig = base64.b64encode(key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()
if mode == 'tamper':
    payload = payload.replace(b'cosign container image signature', b'cosign container image signaturE')
def push_blob(data):
    d = 'sha256:' + hashlib.sha256(data).hexdigest()
    loc = req('POST', f'http://{reg}/v2/{repo}/blobs/uploads/').headers['Location']
    loc = (loc if loc.startswith('http') else f'http://{reg}{loc}') + ('&' if '?' in loc else '?') + 'digest=' + d
    req('PUT', loc, data=data, headers={'Content-Type': 'application/octet-stream'})
    return d
pd = push_blob(payload)
cfg = json.dumps({"architecture": "", "created": "0001-01-01T00:00:00Z", "history": [{"created": "0001-01-01T00:00:00Z"}], "os": "",
                  "rootfs": {"type": "layers", "diff_ids": [pd]}, "config": {}}, separators=(',', ':')).encode()
cd = push_blob(cfg)
man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                  "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": len(cfg), "digest": cd},
                  "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "size": len(payload), "digest": pd,
                              "annotations": {"dev.cosignproject.cosign/signature": sig}}]}, separators=(',', ':')).encode()
sigtag = digest.replace(':', '-') + '.sig'
req('PUT', f'http://{reg}/v2/{repo}/manifests/{sigtag}', data=man, headers={'Content-Type': 'application/vnd.oci.image.manifest.v1+json'})
print(f'signed {reg}/{repo}@{digest} -> tag {sigtag}')
