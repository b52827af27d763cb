#!/usr/bin/env python3
# A misbehaving `nix-store --serve --write` for tests/failures/limits.test.sh: it speaks
# the serve handshake, answers QueryValidPaths (nothing is valid), and on
# BuildDerivation floods its stderr (the build log of the serve protocol) forever,
# ignoring any log limit and never answering (FAKEPEER_MODE=garble: it answers a build
# status no Nix has, for tests/failures/bytes.test.sh).  It exits when its client goes
# away.
# The pid of a peer asked to build goes to $FAKEPEER_PIDFILE when that is set (sessions
# opened ahead of need and never used are not the one the test follows).
import os
import select
import struct
import sys

inp = sys.stdin.buffer
out = sys.stdout.buffer


def u64():
    b = inp.read(8)
    if len(b) < 8:
        sys.exit(0)
    return struct.unpack("<Q", b)[0]


def string():
    n = u64()
    inp.read(n + (-n % 8))


def put(v):
    out.write(struct.pack("<Q", v))


def note_pid():
    if os.environ.get("FAKEPEER_PIDFILE"):
        with open(os.environ["FAKEPEER_PIDFILE"], "w") as f:
            f.write("%d\n" % os.getpid())


if u64() != 0x390C9DEB:
    sys.exit(1)
u64()  # client version
put(0x5452EECB)
put(0x207)
out.flush()
line = b"fakepeer: a build log line that no limit stops " + b"x" * 50 + b"\n"
while True:
    cmd = u64()
    if cmd == 8:
        note_pid()
    if cmd == 1:  # QueryValidPaths: lock, substitute, paths
        u64()
        u64()
        for _ in range(u64()):
            string()
        put(0)
        out.flush()
    elif cmd == 8 and os.environ.get("FAKEPEER_MODE") == "garble":
        # BuildDerivation answered with a build status no Nix has, then nothing
        put(300)
        out.flush()
        while inp.read(65536):
            pass
        sys.exit(0)
    elif cmd == 8:  # BuildDerivation: never answered
        while True:
            try:
                os.write(2, line * 100)
            except OSError:
                sys.exit(0)
            r, _, _ = select.select([0], [], [], 0.001)
            if r and not os.read(0, 65536):
                sys.exit(0)
    else:
        sys.exit(1)
