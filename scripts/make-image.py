#!/usr/bin/env python3
"""Deterministic generator of OCI image archives (`oci-archive` tars) for ocicert.

    make-image.py demo  OUT.tar [--tag TAG]
    make-image.py bench OUT.tar [--size-mb 220] [--files 6000] [--layers 4] [--seed 1] [--tag TAG]

The output is a tar of an OCI image layout: `oci-layout`, `index.json` (one image manifest,
tagged with `org.opencontainers.image.ref.name`), and `blobs/sha256/<hex>` holding the manifest,
the config and gzip-compressed layer tars.

Everything is fixed (tar mtimes, uids, modes, gzip header mtime, entry order, pseudo-random
seed), so two runs produce byte-identical archives on the same machine. The uncompressed layer
tars (and so `rootfs.diff_ids`) depend only on this script and the fixtures; the compressed
bytes also depend on the zlib build Python links against.

Layers are streamed to temporary files next to OUT while both digests are computed, so memory
use stays small whatever the image size. Only the Python standard library is used.

`demo` builds a small 3-layer image from `../fixtures` (relative to this script):
  layer 0 (base)    etc/os-release (Debian 12), etc/ssl/certs/ca-certificates.crt and
                    usr/local/share/ca-certificates/corp-root.crt = certs/root-ca.pem
  layer 1 (app)     app/server.pem, app/server.key, app/legacy/expired.pem, app/lib/app.jar,
                    app/bin/tool, root/.ssh/id_ed25519, app/keystore.p12, app/weak-ca.pem
  layer 2 (cleanup) whiteout root/.ssh/.wh.id_ed25519 and app/README.txt
  config Env has TLS_KEY = base64 of keys/ec-sec1.pem (a key passed by environment variable).

`bench` builds LAYERS layers totalling about SIZE_MB MiB uncompressed in about FILES files:
file sizes 1 KiB..2 MiB, about 40% of the bytes log-like text (gzip ~4:1) and 60% pseudo-random
bytes, one large binary file (40 MiB, or a quarter of the total for small sizes), and 5
key/certificate files from the fixtures spread over the layers.
"""

import argparse
import base64
import gzip
import hashlib
import io
import json
import math
import os
import random
import sys
import tarfile
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, os.pardir, "fixtures")

KIB = 1024
MIB = 1024 * 1024

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"

CREATED = "2025-01-01T00:00:00Z"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
GZIP_LEVEL = 6  # what docker/buildkit (Go's DefaultCompression) use
CHUNK = 256 * KIB


def fixture(rel):
    with open(os.path.join(FIXTURES, rel), "rb") as f:
        return f.read()


def canonical_json(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


class HashingWriter:
    """A write-only stream that hashes and counts what passes through to `inner` (may be None)."""

    def __init__(self, inner=None):
        self.inner = inner
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data):
        self.sha.update(data)
        self.size += len(data)
        if self.inner is not None:
            self.inner.write(data)
        return len(data)

    def flush(self):
        if self.inner is not None:
            self.inner.flush()

    def tell(self):
        return self.size

    def digest(self):
        return "sha256:" + self.sha.hexdigest()


class GeneratedReader:
    """A file-like object yielding exactly `size` bytes, produced chunk by chunk by `produce(n)`."""

    def __init__(self, size, produce):
        self.remaining = size
        self.produce = produce
        self.buffer = b""
        self.pos = 0

    def read(self, n=-1):
        available = len(self.buffer) - self.pos
        if n is None or n < 0:
            n = self.remaining + available
        if available < n and self.remaining > 0:
            parts = [self.buffer[self.pos:]]
            while available < n and self.remaining > 0:
                want = min(max(n - available, CHUNK), self.remaining)
                data = self.produce(want)[:want]
                self.remaining -= len(data)
                available += len(data)
                parts.append(data)
            self.buffer, self.pos = b"".join(parts), 0
        out = self.buffer[self.pos:self.pos + n]
        self.pos += len(out)
        return out


# --------------------------------------------------------------------------------------------
# Layers


class Entry:
    """One tar entry: a directory, a regular file (bytes or generated) or a symlink."""

    def __init__(self, path, kind="file", data=b"", size=None, reader=None, mode=None, target=""):
        self.path = path.strip("/")
        self.kind = kind
        self.data = data
        self.size = len(data) if size is None else size
        self.reader = reader  # callable returning a fresh file-like object of `size` bytes
        self.mode = mode if mode is not None else (0o755 if kind == "dir" else 0o644)
        self.target = target


def file_entry(path, data, mode=0o644):
    return Entry(path, "file", data=data, mode=mode)


def with_parents(entries, dir_modes=None):
    """Sorts entries by path and inserts a directory entry before the first use of each parent."""
    dir_modes = dir_modes or {}
    explicit = {e.path for e in entries if e.kind == "dir"}
    out, seen = [], set()
    for entry in sorted(entries, key=lambda e: e.path.split("/")):
        parts = entry.path.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent not in seen and parent not in explicit:
                seen.add(parent)
                out.append(Entry(parent, "dir", mode=dir_modes.get(parent, 0o755)))
        if entry.kind == "dir":
            if entry.path in seen:
                continue
            seen.add(entry.path)
        out.append(entry)
    return out


def tar_info(entry):
    info = tarfile.TarInfo(entry.path)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = entry.mode
    if entry.kind == "dir":
        info.type = tarfile.DIRTYPE
        info.size = 0
    elif entry.kind == "symlink":
        info.type = tarfile.SYMTYPE
        info.linkname = entry.target
        info.size = 0
    else:
        info.type = tarfile.REGTYPE
        info.size = entry.size
    return info


def write_layer(entries, workdir):
    """Writes entries as a gzip-compressed tar to a temp file; returns a layer descriptor dict."""
    fd, path = tempfile.mkstemp(prefix=".layer-", suffix=".tar.gz", dir=workdir)
    with os.fdopen(fd, "wb") as raw:
        compressed = HashingWriter(raw)
        gz = gzip.GzipFile(filename="", mode="wb", fileobj=compressed, compresslevel=GZIP_LEVEL, mtime=0)
        uncompressed = HashingWriter(gz)
        with tarfile.open(fileobj=uncompressed, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for entry in entries:
                info = tar_info(entry)
                if entry.kind != "file":
                    tar.addfile(info)
                elif entry.reader is not None:
                    tar.addfile(info, entry.reader())
                else:
                    tar.addfile(info, io.BytesIO(entry.data))
        gz.close()
    return {
        "path": path,
        "digest": compressed.digest(),
        "size": compressed.size,
        "diff_id": uncompressed.digest(),
        "uncompressed_size": uncompressed.size,
    }


# --------------------------------------------------------------------------------------------
# Image assembly


def write_image(out, layers, history, env, tag, extra_config=None):
    """Writes the oci-archive. `layers` are write_layer results (their temp files are removed)."""
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": CREATED,
        "config": {"Env": env, "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [l["diff_id"] for l in layers]},
        "history": [{"created": CREATED, "created_by": h} for h in history],
    }
    if extra_config:
        config["config"].update(extra_config)
    config_bytes = canonical_json(config)
    config_digest = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    manifest = {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": config_digest, "size": len(config_bytes)},
        "layers": [{"mediaType": MT_LAYER, "digest": l["digest"], "size": l["size"]} for l in layers],
    }
    manifest_bytes = canonical_json(manifest)
    manifest_digest = "sha256:" + hashlib.sha256(manifest_bytes).hexdigest()
    index = {
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": [
            {
                "mediaType": MT_MANIFEST,
                "digest": manifest_digest,
                "size": len(manifest_bytes),
                "annotations": {REF_NAME: tag},
            }
        ],
    }

    def info(name, size=0, directory=False):
        entry = Entry(name, "dir" if directory else "file", size=size)
        return tar_info(entry)

    def blob_name(digest):
        return "blobs/sha256/" + digest.split(":", 1)[1]

    tmp = out + ".tmp"
    written = set()
    try:
        with open(tmp, "wb") as raw, tarfile.open(fileobj=raw, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for name, data in (("oci-layout", canonical_json({"imageLayoutVersion": "1.0.0"})),
                               ("index.json", canonical_json(index))):
                tar.addfile(info(name, len(data)), io.BytesIO(data))
            tar.addfile(info("blobs", directory=True))
            tar.addfile(info("blobs/sha256", directory=True))
            for digest, data in ((manifest_digest, manifest_bytes), (config_digest, config_bytes)):
                tar.addfile(info(blob_name(digest), len(data)), io.BytesIO(data))
                written.add(digest)
            for layer in layers:
                if layer["digest"] in written:  # identical layers share one blob
                    continue
                written.add(layer["digest"])
                with open(layer["path"], "rb") as blob:
                    tar.addfile(info(blob_name(layer["digest"]), layer["size"]), blob)
        os.replace(tmp, out)
    finally:
        for layer in layers:
            if os.path.exists(layer["path"]):
                os.remove(layer["path"])
        if os.path.exists(tmp):
            os.remove(tmp)
    return manifest_digest


def workdir_for(out):
    return os.path.dirname(os.path.abspath(out)) or "."


# --------------------------------------------------------------------------------------------
# demo

OS_RELEASE = b"""PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
"""

README = b"""demo application

This image is generated by scripts/make-image.py from the ocicert test fixtures.
Every key in it is a throwaway TEST key; none protects anything.
"""


def demo(args):
    root_ca = fixture("certs/root-ca.pem")
    base = with_parents([
        file_entry("etc/os-release", OS_RELEASE),
        file_entry("etc/ssl/certs/ca-certificates.crt", root_ca),
        file_entry("usr/local/share/ca-certificates/corp-root.crt", root_ca),
    ])
    app = with_parents([
        file_entry("app/server.pem", fixture("certs/leaf-chain.pem")),
        file_entry("app/server.key", fixture("keys/leaf.key"), mode=0o600),
        file_entry("app/legacy/expired.pem", fixture("certs/expired.pem")),
        file_entry("app/lib/app.jar", fixture("archives/app.jar")),
        file_entry("app/bin/tool", fixture("elf/embedded-key.bin"), mode=0o755),
        file_entry("root/.ssh/id_ed25519", fixture("keys/openssh-ed25519"), mode=0o600),
        file_entry("app/keystore.p12", fixture("certs/bundle.p12")),
        file_entry("app/weak-ca.pem", fixture("certs/rsa1024-weak.pem")),
    ], dir_modes={"root": 0o700, "root/.ssh": 0o700})
    cleanup = with_parents([
        file_entry("root/.ssh/.wh.id_ed25519", b""),
        file_entry("app/README.txt", README),
    ], dir_modes={"root": 0o700, "root/.ssh": 0o700})

    tls_key = base64.b64encode(fixture("keys/ec-sec1.pem")).decode("ascii")
    work = workdir_for(args.out)
    layers = []
    try:
        for entries in (base, app, cleanup):
            layers.append(write_layer(entries, work))
        history = [
            "/bin/sh -c #(nop) ADD file:debian-12-rootfs.tar.xz in / ",
            "COPY app/ /app/ # buildkit",
            "RUN rm /root/.ssh/id_ed25519",
        ]
        env = [PATH_ENV, "TLS_KEY=" + tls_key]
        return layers, write_image(args.out, layers, history, env, args.tag,
                                   {"WorkingDir": "/app", "Cmd": ["/app/bin/tool"]})
    finally:
        for layer in layers:
            if os.path.exists(layer["path"]):
                os.remove(layer["path"])


# --------------------------------------------------------------------------------------------
# bench

WORDS = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut "
         "labore et dolore magna aliqua request completed connection accepted worker started cache miss "
         "retry scheduled upstream timeout handshake session user order payment invoice shipment "
         "inventory token refresh config reload").split()
LEVELS = ("INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR")
COMPONENTS = ("http", "db", "cache", "auth", "worker", "scheduler", "grpc", "metrics")
SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi", "pe", "su", "xa", "do", "gri", "bel", "tor", "fen")

TEXT_DIRS = ("usr/share/doc/{pkg}", "var/log/{pkg}", "etc/{pkg}", "opt/app/src/{pkg}", "usr/share/{pkg}/i18n",
             "usr/lib/python3/dist-packages/{pkg}")
TEXT_EXTS = ("log", "txt", "conf", "py", "md", "json")
BIN_DIRS = ("usr/lib/x86_64-linux-gnu", "usr/lib/{pkg}", "opt/app/lib", "usr/share/{pkg}/data", "usr/bin",
            "opt/app/assets/{pkg}")
BIN_EXTS = ("so", "bin", "dat", "pak", "gz", "")

BENCH_FIXTURES = (
    ("etc/ssl/private/server.key", "keys/leaf.key", 0o600),
    ("etc/ssl/certs/server-chain.pem", "certs/leaf-chain.pem", 0o644),
    ("usr/local/share/ca-certificates/corp-root.crt", "certs/root-ca.pem", 0o644),
    ("home/app/.ssh/id_ed25519", "keys/openssh-ed25519", 0o600),
    ("opt/app/config/keystore.p12", "certs/bundle.p12", 0o644),
)


def text_producer(seed):
    rng = random.Random(seed)
    bits = rng.getrandbits
    nwords = len(WORDS)
    state = {"t": bits(24)}

    def produce(n):
        out, total = [], 0
        t = state["t"]
        while total < n:
            r = bits(64)
            t += r & 0x3FF
            words = " ".join(WORDS[(r >> (10 + 6 * k)) % nwords] for k in range(3 + (r >> 60) % 5))
            line = "2024-%02d-%02dT%02d:%02d:%02d.%03dZ %-5s [%s] %s id=%06x took=%dms\n" % (
                1 + (t >> 28) % 12, 1 + (t >> 23) % 28, (t >> 18) % 24, (t >> 12) % 60, (t >> 6) % 60,
                (r >> 40) % 1000, LEVELS[(r >> 50) % 6], COMPONENTS[(r >> 53) % 8], words,
                (r >> 20) & 0xFFFFFF, (r >> 44) % 5000)
            out.append(line)
            total += len(line)
        state["t"] = t
        return "".join(out).encode("ascii")

    return produce


def binary_producer(seed):
    rng = random.Random(seed)
    return rng.randbytes


def generated(size, kind, seed):
    def make():
        producer = text_producer(seed) if kind == "text" else binary_producer(seed)
        return GeneratedReader(size, producer)
    return make


def file_sizes(rng, count, total, low=KIB, high=2 * MIB):
    """`count` sizes in [low, high] summing to about `total`.

    log(size) follows an exponential distribution truncated to [log low, log high] (so sizes follow
    a truncated power law: many small files, a few up to `high`); its rate is bisected until the
    sum matches `total`. A fixed set of uniform draws keeps the result deterministic.
    """
    if count <= 0:
        return []
    span = math.log(high / low)
    draws = [rng.random() for _ in range(count)]

    def sizes(rate):
        out = []
        for u in draws:
            if abs(rate) < 1e-9:
                x = u * span
            else:
                x = -math.log1p(-u * -math.expm1(-rate * span)) / rate
            out.append(min(high, max(low, int(low * math.exp(x)))))
        return out

    lo_rate, hi_rate = -20.0, 20.0  # larger rate -> smaller files
    for _ in range(60):
        mid = (lo_rate + hi_rate) / 2
        if sum(sizes(mid)) > total:
            lo_rate = mid
        else:
            hi_rate = mid
    return sizes(hi_rate)


def pkg_name(rng):
    return "".join(SYLLABLES[rng.getrandbits(4)] for _ in range(2 + rng.getrandbits(1)))


def bench(args):
    if args.layers < 1 or args.files < 1 or args.size_mb <= 0:
        sys.exit("make-image.py: --layers, --files and --size-mb must be positive")
    rng = random.Random(args.seed)
    nlayers = args.layers
    total = int(args.size_mb * MIB)
    big_size = min(40 * MIB, total // 4)
    big_layer = min(1, nlayers - 1)

    fixtures = [(path, fixture(rel), mode) for path, rel, mode in BENCH_FIXTURES]
    fixture_bytes = sum(len(d) for _, d, _ in fixtures)
    count = max(0, args.files - 1 - len(fixtures))
    sizes = file_sizes(rng, count, max(0, total - big_size - fixture_bytes))

    # Layer weights: a big base layer, then smaller ones (e.g. 4 layers: 40%, 27%, 20%, 13%).
    weights = [1.0 / (i + 1.5) for i in range(nlayers)]
    cumulative, acc = [], 0.0
    for w in weights:
        acc += w / sum(weights)
        cumulative.append(acc)

    per_layer = [[] for _ in range(nlayers)]
    per_layer[big_layer].append(Entry("opt/app/models/model-weights.bin", size=big_size,
                                      reader=generated(big_size, "binary", rng.getrandbits(63))))
    assigned, text_bytes = big_size, 0
    for i, size in enumerate(sizes):
        # Greedy split so that about 40% of all bytes are text.
        kind = "text" if text_bytes + size <= 0.4 * (assigned + size) else "binary"
        assigned += size
        pkg = pkg_name(rng)
        if kind == "text":
            text_bytes += size
            directory = TEXT_DIRS[rng.getrandbits(8) % len(TEXT_DIRS)].format(pkg=pkg)
            ext = TEXT_EXTS[rng.getrandbits(8) % len(TEXT_EXTS)]
            name = "%s-%d.%s" % (pkg_name(rng), i, ext)
            mode = 0o644
        else:
            directory = BIN_DIRS[rng.getrandbits(8) % len(BIN_DIRS)].format(pkg=pkg)
            ext = BIN_EXTS[rng.getrandbits(8) % len(BIN_EXTS)]
            if directory == "usr/bin":
                name, ext = "%s%d" % (pkg_name(rng), i), ""
            else:
                name = "lib%s-%d" % (pkg_name(rng), i) + ("." + ext if ext else "")
            mode = 0o755 if ext in ("so", "") else 0o644
        u = rng.random()
        layer = next(k for k, c in enumerate(cumulative) if u <= c or k == nlayers - 1)
        per_layer[layer].append(Entry(directory + "/" + name, size=size, mode=mode,
                                      reader=generated(size, kind, rng.getrandbits(63))))
    for k, (path, data, mode) in enumerate(fixtures):
        per_layer[k % nlayers].append(file_entry(path, data, mode))

    work = workdir_for(args.out)
    layers = []
    try:
        for k, entries in enumerate(per_layer):
            layers.append(write_layer(with_parents(entries, {"home/app/.ssh": 0o700}), work))
        history = ["/bin/sh -c #(nop) ADD file:bench-rootfs.tar.xz in / "]
        history += ["RUN /bin/sh -c install-bench-layer-%d # buildkit" % k for k in range(1, nlayers)]
        digest = write_image(args.out, layers, history, [PATH_ENV], args.tag)
    finally:
        for layer in layers:
            if os.path.exists(layer["path"]):
                os.remove(layer["path"])
    stats = {
        "files": len(sizes) + 1 + len(fixtures),
        "text_fraction": round(text_bytes / max(1, assigned), 3),
    }
    return layers, digest, stats


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    p_demo = sub.add_parser("demo", help="small 3-layer image built from the fixtures")
    p_demo.add_argument("out", metavar="OUT.tar")
    p_demo.add_argument("--tag", default="latest")
    p_bench = sub.add_parser("bench", help="large synthetic image for benchmarks")
    p_bench.add_argument("out", metavar="OUT.tar")
    p_bench.add_argument("--size-mb", type=float, default=220, help="uncompressed size in MiB (default 220)")
    p_bench.add_argument("--files", type=int, default=6000, help="number of files (default 6000)")
    p_bench.add_argument("--layers", type=int, default=4, help="number of layers (default 4)")
    p_bench.add_argument("--seed", type=int, default=1, help="pseudo-random seed (default 1)")
    p_bench.add_argument("--tag", default="latest")
    args = parser.parse_args()

    if args.mode == "demo":
        layers, digest = demo(args)
        stats = {}
    else:
        layers, digest, stats = bench(args)
    uncompressed = sum(l["uncompressed_size"] for l in layers)
    compressed = sum(l["size"] for l in layers)
    summary = {
        "out": args.out,
        "manifest": digest,
        "layers": len(layers),
        "uncompressed_bytes": uncompressed,
        "compressed_bytes": compressed,
        **stats,
    }
    print(json.dumps(summary), file=sys.stderr)


if __name__ == "__main__":
    main()
