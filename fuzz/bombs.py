#!/usr/bin/env python3
"""Writes one small input per bomb class of issue 32 into fixtures/fuzz-regressions/<target>/:
inputs of a few bytes to a few MB that once cost minutes or gigabytes. The fuzz targets replay
them on every test run (tests/it/fuzz_regressions.rs, which also bounds their time), and
scripts/fuzz.sh seeds its corpus with them. Standard library only; the output is deterministic.

    python3 fuzz/bombs.py
"""

import gzip
import hashlib
import hmac
import io
import base64
import json
import os
import struct
import tarfile
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "fixtures", "fuzz-regressions")


def length(n):
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def tlv(tag, content):
    return bytes([tag]) + length(len(content)) + content


def seq(*parts):
    return tlv(0x30, b"".join(parts))


def integer(n):
    raw = n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big")
    return tlv(0x02, raw)


def oid(dotted):
    parts = [int(p) for p in dotted.split(".")]
    body = bytes([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        body += bytes(reversed(chunk))
    return tlv(0x06, body)


DATA = "1.2.840.113549.1.7.1"
PBES2 = "1.2.840.113549.1.5.13"
SCRYPT = "1.3.6.1.4.1.11591.4.11"
PBKDF2 = "1.2.840.113549.1.5.12"
HMAC_SHA256 = "1.2.840.113549.2.9"
AES256_CBC = "2.16.840.1.101.3.4.1.42"
SHROUDED_KEY_BAG = "1.2.840.113549.1.12.10.1.2"
SECRET_BAG = "1.2.840.113549.1.12.10.1.5"
SHA1 = "1.3.14.3.2.26"
SHA256 = "2.16.840.1.101.3.4.2.1"


def aes(iv=b"\x07" * 16):
    return seq(oid(AES256_CBC), tlv(0x04, iv))


def scrypt_pbes2(log_n, r, p):
    kdf = seq(oid(SCRYPT), seq(tlv(0x04, b"saltsalt"), integer(1 << log_n), integer(r), integer(p)))
    return seq(oid(PBES2), seq(kdf, aes()))


def pbkdf2_pbes2(iterations):
    params = seq(tlv(0x04, b"saltsalt"), integer(iterations), seq(oid(HMAC_SHA256), b"\x05\x00"))
    return seq(oid(PBES2), seq(seq(oid(PBKDF2), params), aes()))


def shrouded(algorithm):
    """EncryptedPrivateKeyInfo over junk: the derivation is what costs, not the ciphertext."""
    return seq(algorithm, tlv(0x04, b"\x5a" * 32))


def bag(bag_id, value):
    return seq(oid(bag_id), tlv(0xA0, value))


def pkcs12_kdf(password, salt, purpose, iterations, n):
    """RFC 7292 appendix B with SHA-1 (u = 20, v = 64)."""
    v = 64
    pwd = password.encode("utf-16-be") + b"\x00\x00" if password is not None else b""
    d = bytes([purpose]) * v

    def fill(x):
        n = v * -(-len(x) // v)
        return (x * (n // len(x) + 1))[:n] if x else b""

    i = bytearray(fill(salt) + fill(pwd))
    out = b""
    while len(out) < n:
        a = hashlib.sha1(d + bytes(i)).digest()
        for _ in range(iterations - 1):
            a = hashlib.sha1(a).digest()
        out += a
        b = (a * 4)[:v]
        bn = int.from_bytes(b, "big") + 1
        for j in range(0, len(i), v):
            block = (int.from_bytes(i[j : j + v], "big") + bn) % (1 << (8 * v))
            i[j : j + v] = block.to_bytes(v, "big")
    return out[:n]


def pfx(bags, mac=None):
    """A PFX of one plain content list; `mac` is (digest oid, password or None for junk,
    iterations)."""
    safe = seq(seq(oid(DATA), tlv(0xA0, tlv(0x04, seq(*bags)))))
    body = integer(3) + seq(oid(DATA), tlv(0xA0, tlv(0x04, safe)))
    if mac:
        digest_oid, password, iterations = mac
        salt = b"\x09" * 8
        if password is None:
            digest = b"\x00" * (20 if digest_oid == SHA1 else 32)
        else:
            key = pkcs12_kdf(password, salt, 3, iterations, 20)
            digest = hmac.new(key, safe, hashlib.sha1).digest()
        body += seq(seq(seq(oid(digest_oid), b"\x05\x00"), tlv(0x04, digest)), tlv(0x04, salt), integer(iterations))
    return seq(body)


def write(target, name, data):
    path = os.path.join(OUT, target, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def tar_bytes(members):
    """members: (TarInfo, bytes or None)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def gnu_sparse_header(name, realsize):
    """An old-style GNU sparse ('S') entry: one 512-byte data chunk at the end of `realsize`
    bytes of holes."""
    h = bytearray(512)
    h[0 : len(name)] = name.encode()
    h[100:108] = b"0000644\0"
    h[108:116] = b"0000000\0"
    h[116:124] = b"0000000\0"
    h[124:136] = b"%011o\0" % 512
    h[136:148] = b"%011o\0" % 0
    h[156:157] = b"S"
    h[257:265] = b"ustar  \0"
    # sparse[0] at 386: offset (12 bytes) and numbytes (12 bytes), then isextended at 482 and
    # realsize at 483 as a base-256 number.
    h[386:398] = b"\x80" + (realsize - 512).to_bytes(11, "big")
    h[398:410] = b"%011o\0" % 512
    h[482] = 0
    h[483:495] = b"\x80" + realsize.to_bytes(11, "big")
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h) + b"\x00" * 512


def main():
    # PKCS#12: a secret bag under scrypt N=2^23, r=1, p=16 (82 s and 1 GiB each), many of them.
    write("pkcs12", "scrypt-secret-bags.p12", pfx([bag(SECRET_BAG, seq(oid(SHROUDED_KEY_BAG), tlv(0xA0, tlv(0x04, shrouded(scrypt_pbes2(23, 1, 16)))))) for _ in range(32)]))
    # PKCS#12: key bags at p12-keystore's own cap (10^6 PBKDF2 iterations, 0.47 s each), under a
    # MAC that "changeit" opens.
    key_bags = [bag(SHROUDED_KEY_BAG, shrouded(pbkdf2_pbes2(1_000_000))) for _ in range(40)]
    write("pkcs12", "pbkdf2-key-bags.p12", pfx(key_bags, (SHA1, "changeit", 1)))
    # PKCS#12: a MAC at 10^6 iterations that no password matches (2.4 s per candidate).
    write("pkcs12", "wrong-mac-million.p12", pfx([bag(SECRET_BAG, seq(oid(SHROUDED_KEY_BAG)))], (SHA256, None, 1_000_000)))

    # DSA: a 16,384-bit "DSA PRIVATE KEY" (seconds of modular exponentiation for its
    # fingerprint), forty times.
    big = lambda first: int.from_bytes(bytes([first | 0x40]) + b"\x40" * 2046 + b"\x41", "big")
    dsa = seq(integer(0), integer(big(1)), integer(int.from_bytes(b"\x55" * 32, "big")), integer(big(2)), integer(big(3)), integer(big(4)))
    write("der", "dsa-16384.der", dsa)
    pem = "-----BEGIN DSA PRIVATE KEY-----\n" + base64.encodebytes(dsa).decode() + "-----END DSA PRIVATE KEY-----\n"
    write("pem", "dsa-16384-forty.pem", (pem * 40).encode())

    # PEM: 20,000 tiny broken blocks (past the 10,000 detections per file).
    write("pem", "broken-block-flood.pem", b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n" * 20_000)

    # Layers: a certificate and 5,000 hard links to it; a sparse terabyte; a path over PATH_MAX.
    with open(os.path.join(ROOT, "fixtures", "certs", "leaf.pem"), "rb") as f:
        cert = f.read()
    target = tarfile.TarInfo("etc/ssl/leaf.pem")
    target.size = len(cert)
    members = [(target, cert)]
    for n in range(5_000):
        link = tarfile.TarInfo(f"l/{n}")
        link.type = tarfile.LNKTYPE
        link.linkname = "etc/ssl/leaf.pem"
        members.append((link, None))
    write("layer", "hard-link-crowd.tar", tar_bytes(members))
    write("layer", "sparse-terabyte.tar", gnu_sparse_header("big.img", 1 << 40) * 10 + b"\x00" * 1024)
    deep = tarfile.TarInfo("d/" * 20_000 + "key.pem")
    deep.size = len(cert)
    write("layer", "path-over-path-max.tar", tar_bytes([(deep, cert)]))
    # GNU long names of 64 MiB each (compressed to a few KB): read whole by the tar reader.
    long = tarfile.TarInfo("n" * (64 << 20))
    long.size = len(cert)
    write("layer", "long-name-64mib.tar.gz", gzip.compress(tar_bytes([(long, cert)]), 9, mtime=0))

    # Zip: entries inflating 64 MiB of zeros each, every one with a wrong CRC.
    zeros = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = zeros.compress(b"\x00" * (64 << 20)) + zeros.flush()
    out = io.BytesIO()
    central = io.BytesIO()
    for n in range(12):
        name = f"z{n}.bin".encode()
        offset = out.tell()
        fields = struct.pack("<HHHHHIIIHH", 20, 0, 8, 0, 0x21, 0xDEADBEEF, len(body), 64 << 20, len(name), 0)
        out.write(b"PK\x03\x04" + fields + name + body)
        central.write(b"PK\x01\x02" + struct.pack("<H", 20) + fields + struct.pack("<HHHII", 0, 0, 0, 0, offset) + name)
    cd = central.getvalue()
    start = out.tell()
    out.write(cd + b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, 12, 12, len(cd), start, 0))
    write("archive", "crc-failures.zip", out.getvalue())

    # Manifests: an index listing the same manifest 15,000 times.
    descriptor = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": "sha256:" + hashlib.sha256(b"m").hexdigest(),
        "size": 1,
        "platform": {"architecture": "amd64", "os": "linux"},
    }
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [descriptor] * 15_000}
    write("manifest", "index-repeats.json", json.dumps(index).encode())


if __name__ == "__main__":
    main()
