#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""A hostile etcd for tests/e2e/test_etcd_abuse.sh: etcd's v3 JSON gateway
(POST /v3/kv/range and /v3/watch) answering as the test asks.

    fake_etcd.py --port PORT --mode-file FILE --doc-file FILE --key KEY --lifetime S

The mode file holds "MODE REVISION", the doc file the key's good value; both
are read at each request. Every mode answers a keys_only range read with the
key's revision (REVISION), so that the agent goes on to read the value:

  good            the document, and a watch that idles until the mode changes
  range_huge      a value of 50 MB (a JSON answer with no Content-Length)
  range_huge_all  50 MB to every range read, keys_only ones too
  range_flat      2 MB of "{}," in the envelope (under the byte bound)
  envelope_nested 100000 '['
  garbage         1 MB of random bytes
  range_trickle   a byte every 0.5 s
  doc_nested      a value of 100000 '['
  doc_flat        a value of 1.5 MB: {"tcpshift":1,"seed":1,"services":[{},{},...]}
  watch_huge      the document at revision 10, then a watch event of 50 MB
  watch_trickle   the document at revision 10, then a watch message, a byte every 0.5 s
  watch_silent    the document at revision 10, then a watch that never answers

Every loop is bounded in count and time; the server exits after --lifetime s.
"""
import argparse
import base64
import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HUGE = 50 * 1000 * 1000
TRICKLE_MAX_S = 60
GOOD_REVISION = 10


def b64(data):
    return base64.b64encode(data).decode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"	# every answer ends with the connection

    def log_message(self, fmt, *args):
        pass

    def mode(self):
        with open(self.server.mode_file) as f:
            words = f.read().split()
        return words[0], int(words[1])

    def begin(self, length=None):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def answer(self, data):
        self.begin(len(data))
        self.wfile.write(data)

    def stream(self, head, unit, total, tail):
        """head, unit repeated up to total bytes, tail: until the peer hangs up."""
        self.begin()
        self.wfile.write(head)
        chunk = unit * (65536 // len(unit))
        sent = 0
        while sent < total:
            self.wfile.write(chunk)
            sent += len(chunk)
        self.wfile.write(tail)

    def trickle(self, data, begin=True):
        if begin:
            self.begin()
        deadline = time.monotonic() + TRICKLE_MAX_S
        for i in range(len(data)):
            if time.monotonic() > deadline:
                break
            self.wfile.write(data[i:i + 1])
            self.wfile.flush()
            time.sleep(0.5)

    def doc(self):
        with open(self.server.doc_file, "rb") as f:
            return f.read()

    def header(self, revision):
        return {"cluster_id": "1", "member_id": "2", "revision": str(revision), "raft_term": "2"}

    def range_answer(self, revision, value):
        kv = {"key": self.server.key64, "create_revision": "2", "mod_revision": str(revision),
              "version": "1"}
        if value is not None:
            kv["value"] = b64(value)
        return json.dumps({"header": self.header(revision), "kvs": [kv], "count": "1"}).encode()

    def do_POST(self):
        try:
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
            mode, revision = self.mode()
            if self.path == "/v3/kv/range":
                self.range(request, mode, revision)
            elif self.path == "/v3/watch":
                self.watch(mode, revision)
            else:
                self.send_error(404)
        except (BrokenPipeError, ConnectionResetError):
            pass	# the agent hung up: what the test wants of it

    def range(self, request, mode, revision):
        if mode.startswith("watch_"):
            revision = GOOD_REVISION
        if mode == "range_huge_all":
            self.stream(b'{"header":{"revision":"1"},"kvs":[', b"{},", HUGE, b"{}]}")
            return
        if request.get("keys_only"):
            self.answer(self.range_answer(revision, None))
            return
        if mode in ("good", "watch_huge", "watch_trickle", "watch_silent"):
            self.answer(self.range_answer(revision, self.doc()))
        elif mode == "range_huge":
            head = (b'{"header":{"revision":"%d"},"kvs":[{"key":"%s","mod_revision":"%d",'
                    b'"value":"' % (revision, self.server.key64.encode(), revision))
            self.stream(head, b"QUFB", HUGE, b'"}]}')
        elif mode == "range_flat":
            self.stream(b'{"header":{"revision":"%d"},"x":[' % revision, b"{},",
                        2 * 1000 * 1000, b"{}]}")
        elif mode == "envelope_nested":
            self.answer(b"[" * 100000)
        elif mode == "garbage":
            self.answer(random.Random(revision).randbytes(1000 * 1000))
        elif mode == "range_trickle":
            self.trickle(self.range_answer(revision, self.doc()))
        elif mode == "doc_nested":
            self.answer(self.range_answer(revision, b"[" * 100000))
        elif mode == "doc_flat":
            flat = b'{"tcpshift":1,"seed":1,"services":[' + b"{}," * 500000 + b"{}]}"
            self.answer(self.range_answer(revision, flat))
        else:
            self.send_error(500, "unknown mode " + mode)

    def watch(self, mode, revision):
        created = json.dumps({"result": {"header": self.header(GOOD_REVISION),
                                         "created": True}}).encode() + b"\n"
        if mode == "watch_silent":
            time.sleep(TRICKLE_MAX_S)
            self.send_error(504)
            return
        if mode == "watch_trickle":
            self.begin()
            self.wfile.write(created)
            self.wfile.flush()
            self.trickle(created, begin=False)
            return
        if mode == "watch_huge":
            head = (b'{"result":{"header":{"revision":"11"},"events":[{"kv":{"key":"%s",'
                    b'"mod_revision":"11","value":"' % self.server.key64.encode())
            self.begin()
            self.wfile.write(created)
            self.wfile.write(head)
            chunk = b"QUFB" * 16384
            for _ in range(HUGE // len(chunk)):
                self.wfile.write(chunk)
            self.wfile.write(b'"}}]}}\n')
            return
        # any other mode: a watch that idles until the mode changes
        self.begin()
        self.wfile.write(created)
        self.wfile.flush()
        deadline = time.monotonic() + self.server.lifetime
        while time.monotonic() < deadline and self.mode() == (mode, revision):
            time.sleep(0.1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode-file", required=True)
    ap.add_argument("--doc-file", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--lifetime", type=float, default=600)
    args = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.mode_file = args.mode_file
    server.key64 = b64(args.key.encode())
    server.lifetime = args.lifetime
    server.doc_file = args.doc_file
    threading.Timer(args.lifetime, server.shutdown).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
