#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""slow_clients.py HOST PORT COUNT SECONDS SOURCES: COUNT connections to HOST:PORT
from SOURCES loopback addresses (127.0.0.1 .. 127.0.0.SOURCES), each sending one
byte of a request every 2 s and never finishing it, for SECONDS; then all closed.
Prints "opened N" (connections the kernel completed) and "held N" (still open
at the end, as far as a send tells)."""
import socket
import sys
import time

host, port, count, seconds, sources = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    float(sys.argv[4]), int(sys.argv[5])
socks = []
for i in range(count):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    s.bind(("127.0.0.%d" % (1 + i % sources), 0))
    s.connect_ex((host, port))
    socks.append(s)
request = b"GET /metrics HTTP/1.1\r\n"
end = time.monotonic() + seconds
sent = 0
opened = set()
held = 0
while time.monotonic() < end:
    held = 0
    for i, s in enumerate(socks):
        try:
            s.send(request[sent % len(request):sent % len(request) + 1])
            opened.add(i)
            held += 1
        except OSError:
            pass
    sent += 1
    time.sleep(min(2.0, max(0.0, end - time.monotonic())))
for s in socks:
    s.close()
print("opened %d" % len(opened))
print("held %d" % held)
