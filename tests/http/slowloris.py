#!/usr/bin/env python3
"""Slowloris against a sluice HTTP server on loopback (tests/http/slowloris.test.sh).

usage: slowloris.py PORT ADDRS PER_ADDR SECONDS

Opens PER_ADDR connections from each of ADDRS source addresses (127.0.0.x), each
trickling one header byte a second and never ending its request head, for at most
SECONDS.  Meanwhile a normal client from 127.0.0.1 asks GET /status once a second
and must be answered.  Prints what happened and exits 1 when the normal client was
locked out or a trickling connection outlived the head deadline by far.
"""
import socket
import sys
import time

port, addrs, per, secs = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
conns = []
refused = 0
for a in range(addrs):
    for _ in range(per):
        s = socket.socket()
        s.bind(("127.0.0.%d" % (a + 2), 0))
        s.settimeout(2)
        try:
            s.connect(("127.0.0.1", port))
            s.sendall(b"GET /status/queue HTTP/1.1\r\nHost: x\r\n")
            conns.append(s)
        except OSError:
            refused += 1
            s.close()
time.sleep(1)
open_now = 0
for s in conns:
    try:
        s.sendall(b"X")
        open_now += 1
    except OSError:
        pass
print("trickling connections open: %d of %d" % (open_now, len(conns) + refused))


def normal_get():
    t0 = time.time()
    try:
        c = socket.create_connection(("127.0.0.1", port), timeout=3)
        c.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = c.recv(100)
        c.close()
        return data.startswith(b"HTTP/1.1 200"), time.time() - t0
    except OSError:
        return False, time.time() - t0


start = time.time()
lockouts = 0
closed_at = None
while time.time() - start < secs:
    ok, dt = normal_get()
    if not ok:
        lockouts += 1
        print("normal client locked out at %.1f s" % (time.time() - start))
    alive = 0
    for s in conns:
        try:
            s.sendall(b"X")
            alive += 1
        except OSError:
            pass
    if alive == 0 and closed_at is None:
        closed_at = time.time() - start
        print("every trickling connection was closed by %.1f s" % closed_at)
        break
    time.sleep(1)
for s in conns:
    s.close()
print("normal requests locked out: %d" % lockouts)
if lockouts:
    sys.exit(1)
if conns and closed_at is None:
    print("trickling connections still open after %d s" % secs)
    sys.exit(1)
