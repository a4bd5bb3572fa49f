#!/usr/bin/env python3
"""A fault-injecting HTTP proxy in front of a registry on loopback (tests only).

    tests/registry/faultproxy.py DIR UPSTREAM-HOST:PORT

Listens on 127.0.0.1 on a free port, writes it to DIR/port (and its pid to
DIR/pid), and forwards every request to UPSTREAM (the Host header passes
unchanged, so the registry's Location headers point back at the proxy).
Each request is logged to DIR/proxy.log as "METHOD PATH STATUS [RANGE]".

Faults come from DIR/rules, read again at every request, one rule a line:

    REGEX ACTION [COUNT]

REGEX is searched in "METHOD PATH" (e.g. "GET /v2/.*/blobs/sha256:ab"); the
first matching rule that has COUNT left applies (no COUNT: always).
ACTION is one of
    status:CODE     answer CODE with a registry-style error body (429 and
                    503 carry "Retry-After: 0")
    truncate:N      forward the answer's headers but only N bytes of its
                    body, then close the connection
    delay:SECONDS   wait, then forward
    corrupt         forward the answer with its first body byte flipped
    serve:FILE      answer 200 with FILE (a manifest: its mediaType as the
                    Content-Type, its sha256 as Docker-Content-Digest), as a
                    registry without limits would
Counts live in the proxy's memory, keyed by the rule's line; writing a new
rules file (new lines) starts new counts.  Stop it by killing DIR/pid.
"""
import hashlib
import http.client
import http.server
import json
import os
import re
import sys
import threading
import time

DIR, UPSTREAM = sys.argv[1], sys.argv[2]
UP_HOST, UP_PORT = UPSTREAM.rsplit(":", 1)
LOCK = threading.Lock()
USED = {}


def log(line):
    with LOCK, open(os.path.join(DIR, "proxy.log"), "a") as f:
        f.write(line + "\n")


def pick_rule(what):
    try:
        with open(os.path.join(DIR, "rules")) as f:
            lines = [ln.strip() for ln in f]
    except FileNotFoundError:
        return None
    for ln in lines:
        if not ln or ln.startswith("#"):
            continue
        parts = ln.split()
        if len(parts) < 2 or not re.search(parts[0], what):
            continue
        with LOCK:
            if len(parts) >= 3:
                if USED.get(ln, 0) >= int(parts[2]):
                    continue
                USED[ln] = USED.get(ln, 0) + 1
        return parts[1]
    return None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else None

    def handle_any(self):
        what = "%s %s" % (self.command, self.path)
        body = self.read_body()
        action = pick_rule(what)
        rng = self.headers.get("Range", "")
        if action and action.startswith("status:"):
            code = int(action.split(":", 1)[1])
            msg = b'{"errors":[{"code":"UNKNOWN","message":"injected fault %d"}]}' % code
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(msg)))
            if code in (429, 503):
                self.send_header("Retry-After", "0")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(msg)
            log("%s %d %s" % (what, code, rng))
            return
        if action and action.startswith("serve:"):
            with open(action.split(":", 1)[1], "rb") as f:
                data = f.read()
            try:
                ctype = json.loads(data).get("mediaType") or "application/octet-stream"
            except ValueError:
                ctype = "application/octet-stream"
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Docker-Content-Digest", "sha256:" + hashlib.sha256(data).hexdigest())
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            log("%s 200 %s%s" % (what, rng, " serve"))
            return
        if action and action.startswith("delay:"):
            time.sleep(float(action.split(":", 1)[1]))
        conn = http.client.HTTPConnection(UP_HOST, int(UP_PORT), timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("transfer-encoding", "connection")}
        if body is not None:
            headers["Content-Length"] = str(len(body))
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection"):
                self.send_header(k, v)
        chunked = resp.getheader("Content-Length") is None and self.command != "HEAD" and resp.status not in (204, 304)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        limit = None
        if action and action.startswith("truncate:"):
            limit = int(action.split(":", 1)[1])
            self.close_connection = True
        self.end_headers()
        log("%s %d %s%s" % (what, resp.status, rng, " " + action if action else ""))
        sent, first = 0, True
        while self.command != "HEAD":
            data = resp.read(65536)
            if not data:
                break
            if action == "corrupt" and first:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            first = False
            if limit is not None and sent + len(data) >= limit:
                data = data[: limit - sent]
                self.wfile.write(data)
                self.wfile.flush()
                conn.close()
                return
            sent += len(data)
            if chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            else:
                self.wfile.write(data)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        conn.close()

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any


def main():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    with open(os.path.join(DIR, "pid"), "w") as f:
        f.write("%d\n" % os.getpid())
    with open(os.path.join(DIR, "port.new"), "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(os.path.join(DIR, "port.new"), os.path.join(DIR, "port"))
    srv.serve_forever()


if __name__ == "__main__":
    main()
