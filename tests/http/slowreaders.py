#!/usr/bin/env python3
"""Slow readers of a big log (tests/http/slowreaders.test.sh).

usage: slowreaders.py PORT PATH N SECONDS RUNNER_PID

N clients ask for PATH at once and then read 4 KiB a second; meanwhile the runner's
VmRSS is sampled.  Prints the peak RSS in MiB and how the requests were answered.
"""
import socket
import sys
import time

port, path, n, secs, pid = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]


def rss_mib():
    with open("/proc/%s/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


conns = []
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.%d" % (2 + i % 4), 0))  # 4 addresses: under the per-address limit
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
    conns.append(s)
peak = rss_mib()
codes = {}
start = time.time()
first = [b""] * n
while time.time() - start < secs:
    for i, s in enumerate(conns):
        s.settimeout(0.05)
        try:
            d = s.recv(4096)
            if len(first[i]) < 20:
                first[i] += d
        except OSError:
            pass
    peak = max(peak, rss_mib())
    time.sleep(0.5)
for f in first:
    code = f[9:12].decode("ascii", "replace") or "none"
    codes[code] = codes.get(code, 0) + 1
for s in conns:
    s.close()
print("answers: %s" % " ".join("%s x%d" % kv for kv in sorted(codes.items())))
print("peak runner RSS: %.0f MiB" % peak)
