#!/usr/bin/env python3
"""Hermetic package sources for the build end-to-end tests and the buildpacks benchmark.

  package_index.py build DIR   makes, from files Debian installed on this host (scripts/setup.sh):
      DIR/simple/<name>/index.html   a PEP 503 index: Flask and its dependencies, plus six
                                     (the "one dependency added" package)
      DIR/files/<wheel>              py3-none-any wheels made from /usr/lib/python3/dist-packages
      DIR/npm/<name>/index.json      npm packuments (served at /npm/<name>): express and its
                                     whole dependency closure, plus is-number as the extra one
      DIR/npm/<name>/-/<name>-<v>.tgz  tarballs made from /usr/share/nodejs/<name>
  package_index.py serve DIR PORT LOG [--token TOKEN] [--tls CERT KEY]
      serves DIR on 0.0.0.0:PORT, appending "GET <path> <status>" per request to LOG (flushed at
      once, for the tests to read). --token: every request must carry TOKEN, as a basic-auth
      password (pip, npm: a registry URL's user:TOKEN@) or a bearer token (npm's _authToken),
      else 401, as a private index does. --tls: HTTPS with that certificate and key.

No network is used: the internet is never reached at test time.
"""
import base64
import hashlib
import http.server
import io
import json
import os
import signal
import ssl
import subprocess
import sys
import tarfile
import zipfile

DIST_PACKAGES = "/usr/lib/python3/dist-packages"
NODE_MODULES = "/usr/share/nodejs"

# Debian strips requires.txt (apt carries the dependencies), so the edges pip must walk are
# the upstream ones of these versions (each project's setup.cfg).
PYTHON_DISTS = {
    "Flask": ["Werkzeug>=2.2.2", "Jinja2>=3.0", "itsdangerous>=2.0", "click>=8.0"],
    "Werkzeug": ["MarkupSafe>=2.1.1"],
    "Jinja2": ["MarkupSafe>=2.0"],
    "MarkupSafe": [],
    "itsdangerous": [],
    "click": [],
    "six": [],
}
NPM_ROOTS = ["express", "is-number"]


def normalized(name):
    return name.lower().replace("_", "-").replace(".", "-")


def record_hash(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def egg_info(dist):
    for entry in os.listdir(DIST_PACKAGES):
        if entry.endswith(".egg-info") and entry.split("-")[0].lower() == dist.lower():
            return os.path.join(DIST_PACKAGES, entry)
    sys.exit(f"package_index: no {dist} in {DIST_PACKAGES}; run scripts/setup.sh")


def wheel(dist, requires, out_dir):
    """A pure-Python wheel of one Debian-installed distribution (compiled speedups left out:
    MarkupSafe falls back to its Python code)."""
    info = egg_info(dist)
    version = os.path.basename(info)[len(dist) + 1:].split("-")[0].removesuffix(".egg")
    files = {}
    for top in open(os.path.join(info, "top_level.txt")).read().split():
        path = os.path.join(DIST_PACKAGES, top)
        if os.path.isfile(path + ".py"):
            files[top + ".py"] = open(path + ".py", "rb").read()
            continue
        for root, dirs, names in os.walk(path):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(names):
                if name.endswith((".so", ".pyc")):
                    continue
                full = os.path.join(root, name)
                files[os.path.relpath(full, DIST_PACKAGES)] = open(full, "rb").read()
    meta = f"{dist}-{version}.dist-info"
    # Console scripts (flask) come from entry points, which the egg-info keeps.
    entry_points = os.path.join(info, "entry_points.txt")
    if os.path.isfile(entry_points):
        files[f"{meta}/entry_points.txt"] = open(entry_points, "rb").read()
    metadata = f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    files[f"{meta}/METADATA"] = metadata.encode()
    files[f"{meta}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: slipway-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = "".join(f"{p},{record_hash(d)},{len(d)}\n" for p, d in files.items()) + f"{meta}/RECORD,,\n"
    files[f"{meta}/RECORD"] = record.encode()
    filename = f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(out_dir, filename), "w", zipfile.ZIP_DEFLATED) as z:
        for path, data in files.items():
            z.writestr(zipfile.ZipInfo(path, (2020, 1, 1, 0, 0, 0)), data)
    return filename


def build_python(root):
    files_dir = os.path.join(root, "files")
    os.makedirs(files_dir, exist_ok=True)
    names = []
    for dist, requires in PYTHON_DISTS.items():
        filename = wheel(dist, requires, files_dir)
        digest = hashlib.sha256(open(os.path.join(files_dir, filename), "rb").read()).hexdigest()
        page_dir = os.path.join(root, "simple", normalized(dist))
        os.makedirs(page_dir, exist_ok=True)
        with open(os.path.join(page_dir, "index.html"), "w") as page:
            page.write(f'<!DOCTYPE html>\n<html><body>\n<a href="../../files/{filename}#sha256={digest}">{filename}</a>\n</body></html>\n')
        names.append(normalized(dist))
    with open(os.path.join(root, "simple", "index.html"), "w") as index:
        index.write("<!DOCTYPE html>\n<html><body>\n" + "".join(f'<a href="{n}/">{n}</a>\n' for n in names) + "</body></html>\n")


def satisfies(pairs):
    """For each (version, range), whether the version satisfies it (Debian's node-semver)."""
    script = "const s=require('/usr/share/nodejs/semver');const p=JSON.parse(require('fs').readFileSync(0));" \
             "console.log(JSON.stringify(p.map(([v,r])=>s.satisfies(v,r))))"
    out = subprocess.run(["node", "-e", script], input=json.dumps(pairs).encode(), capture_output=True, check=True,
                         env=dict(os.environ, NODE_PATH=NODE_MODULES))
    return json.loads(out.stdout)


def find_module(name, parent_dirs):
    """The directory of `name`: bundled in a dependent's node_modules first, then Debian's tree."""
    for parent in parent_dirs:
        candidate = os.path.join(parent, "node_modules", name)
        if os.path.isfile(os.path.join(candidate, "package.json")):
            return candidate
    candidate = os.path.join(NODE_MODULES, name)
    if os.path.isfile(os.path.join(candidate, "package.json")):
        return candidate
    sys.exit(f"package_index: no {name} in {NODE_MODULES}; run scripts/setup.sh")


def build_npm(root, base_url_placeholder="__REGISTRY__"):
    # Walk the closure: each module's package.json "dependencies".
    modules = {}  # name -> (dir, package.json)
    queue = [(name, []) for name in NPM_ROOTS]
    while queue:
        name, parents = queue.pop()
        if name in modules:
            continue
        directory = find_module(name, parents)
        manifest = json.load(open(os.path.join(directory, "package.json")))
        modules[name] = (directory, manifest)
        for dep in (manifest.get("dependencies") or {}):
            queue.append((dep, parents + [directory]))
    # Debian ships one version per module; where a dependent pins another (express asks for
    # debug 2.6.9, Debian has 4.x), the published manifest asks for Debian's version instead.
    edges = [(n, d, r) for n, (_, m) in modules.items() for d, r in (m.get("dependencies") or {}).items()]
    ok = satisfies([[modules[d][1]["version"], r] for _, d, r in edges])
    for (name, dep, wanted), fine in zip(edges, ok):
        if not fine:
            modules[name][1]["dependencies"][dep] = modules[dep][1]["version"]
    for name, (directory, manifest) in modules.items():
        version = manifest["version"]
        for key in ("devDependencies", "peerDependencies", "optionalDependencies", "scripts"):
            manifest.pop(key, None)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.USTAR_FORMAT) as tar:
            def add(arcname, data, mode=0o644):
                item = tarfile.TarInfo(arcname)
                item.size, item.mode, item.mtime = len(data), mode, 1577836800
                tar.addfile(item, io.BytesIO(data))
            add("package/package.json", json.dumps(manifest, indent=2).encode())
            for walk_root, dirs, names in os.walk(directory, followlinks=True):
                dirs[:] = sorted(d for d in dirs if d != "node_modules")
                for file_name in sorted(names):
                    full = os.path.join(walk_root, file_name)
                    relative = os.path.relpath(full, directory)
                    if relative == "package.json" or not os.path.isfile(full):
                        continue
                    add("package/" + relative, open(full, "rb").read())
        data = buffer.getvalue()
        tarball_dir = os.path.join(root, "npm", name, "-")
        os.makedirs(tarball_dir, exist_ok=True)
        tarball = f"{name}-{version}.tgz"
        open(os.path.join(tarball_dir, tarball), "wb").write(data)
        integrity = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
        published = dict(manifest, _id=f"{name}@{version}", dist={
            "tarball": f"{base_url_placeholder}/{name}/-/{tarball}",
            "integrity": integrity, "shasum": hashlib.sha1(data).hexdigest()})
        packument = {"_id": name, "name": name, "dist-tags": {"latest": version}, "versions": {version: published}}
        json.dump(packument, open(os.path.join(root, "npm", name, "index.json"), "w"))


class Handler(http.server.SimpleHTTPRequestHandler):
    log_path = None
    token = None
    scheme = "http"

    def authorized(self):
        """Whether the request carries the token (always, without --token)."""
        if Handler.token is None:
            return True
        header = self.headers.get("Authorization") or ""
        if header.startswith("Bearer "):
            return header[len("Bearer "):] == Handler.token
        if header.startswith("Basic "):
            try:
                return base64.b64decode(header[len("Basic "):]).decode().split(":", 1)[1] == Handler.token
            except Exception:
                return False
        return False

    def translate_path(self, path):
        # /npm/<name> is the packument of <name>; every other path is a file under the root.
        clean = path.split("?", 1)[0].split("#", 1)[0]
        parts = [p for p in clean.split("/") if p]
        if len(parts) == 2 and parts[0] == "npm":
            return os.path.join(self.directory, "npm", parts[1].replace("%2f", "/").replace("%2F", "/"), "index.json")
        return super().translate_path(path)

    def guess_type(self, path):
        return "application/json" if path.endswith(".json") else super().guess_type(path)

    def do_GET(self):
        if not self.authorized():
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="packages"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.log_request(401)
            return
        # Packuments name their tarballs by the address the client used (the host it reached).
        clean = self.path.split("?", 1)[0]
        parts = [p for p in clean.split("/") if p]
        if len(parts) == 2 and parts[0] == "npm":
            path = self.translate_path(self.path)
            if not os.path.isfile(path):
                self.send_error(404)
                return
            host = self.headers.get("Host") or f"127.0.0.1:{self.server.server_address[1]}"
            # The worst case for secrets: the tarballs are named with the credentials the client
            # sent (npm sends a registry URL's user:password only to that URL), so npm's lockfiles
            # would carry them.
            authorization = self.headers.get("Authorization") or ""
            if Handler.token is not None and authorization.startswith("Basic "):
                host = base64.b64decode(authorization[len("Basic "):]).decode() + "@" + host
            body = open(path, "rb").read().replace(b"__REGISTRY__", f"{Handler.scheme}://{host}/npm".encode())
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.log_request(200)
            return
        super().do_GET()

    def end_headers(self):
        # As PyPI and npmjs do: package files never change (pip's HTTP cache keeps only what is
        # marked fresh), index pages are fresh for a while.
        immutable = self.path.endswith((".whl", ".tgz"))
        self.send_header("Cache-Control", "public, max-age=31536000, immutable" if immutable else "max-age=600")
        super().end_headers()

    def log_request(self, code="-", size="-"):
        with open(self.log_path, "a") as log:
            log.write(f"{self.command} {self.path.split('?', 1)[0]} {code}\n")

    def log_message(self, *args):
        pass


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "build":
        root = sys.argv[2]
        build_python(root)
        build_npm(root)
    elif len(sys.argv) >= 5 and sys.argv[1] == "serve":
        options = sys.argv[5:]
        tls = None
        while options:
            if options[0] == "--token" and len(options) >= 2:
                Handler.token, options = options[1], options[2:]
            elif options[0] == "--tls" and len(options) >= 3:
                tls, options = (options[1], options[2]), options[3:]
            else:
                sys.exit(__doc__)
        # A parent may have blocked signals (the Swift test runner's threads do, and children
        # inherit the mask): stopping must still work.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
        Handler.log_path = sys.argv[4]
        handler = lambda *a, **k: Handler(*a, directory=sys.argv[2], **k)
        server = http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[3])), handler)
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            server.socket = context.wrap_socket(server.socket, server_side=True)
            Handler.scheme = "https"
        print("serving", flush=True)
        server.serve_forever()
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
