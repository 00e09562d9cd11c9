#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""notify_listen.py PATH SECONDS: systemd's side of sd_notify for tests: a datagram
socket at PATH; prints each message received within SECONDS as
"<monotonic ms> <message with newlines as spaces>", one per line, flushed."""
import os
import socket
import sys
import time

path, seconds = sys.argv[1], float(sys.argv[2])
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
end = time.monotonic() + seconds
while time.monotonic() < end:
    s.settimeout(max(0.01, end - time.monotonic()))
    try:
        msg = s.recv(4096)
    except socket.timeout:
        continue
    print("%d %s" % (time.monotonic() * 1000, msg.decode(errors="replace").replace("\n", " ")),
          flush=True)
os.unlink(path)
