#!/usr/bin/env python3
"""Seed inputs for the fuzz_wire target (tests/fuzz/fuzz_wire.c): byte 0 picks the
decoder, byte 1 the version variant, the rest is a reply recorded from Nix 2.8
(tests/data/store/tx/) or built here.  Writes tests/fuzz/corpus/wire/seed-*."""
import os, struct
root = os.path.dirname(os.path.abspath(__file__)) + '/..'
tx = root + '/data/store/tx/'
out = root + '/fuzz/corpus/wire/'
def u64(n): return struct.pack('<Q', n)
def s(b):
    if isinstance(b, str): b = b.encode()
    return u64(len(b)) + b + b'\0' * ((8 - len(b) % 8) % 8)
def rd(n): return open(tx + n, 'rb').read()
LAST, ERR, NEXT, START, STOP, RES = 0x616c7473, 0x63787470, 0x6f6c6d67, 0x53545254, 0x53544f50, 0x52534c54
P = '/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk-ia-simple'
realis = '{"dependentRealisations":{},"id":"sha256:00!out","outPath":"5r10i2xayliqjmz28jb6np7iqcbgqkjk-ia-simple","signatures":[]}'
qpi = rd('worker-query-path-info.reply')
info_body = qpi[16:]  # after LAST and the valid flag
activity = (u64(START) + u64(7) + u64(3) + u64(105) + s("building '/nix/store/x.drv'") +
            u64(2) + u64(1) + s('/nix/store/x.drv') + u64(0) + u64(1) + u64(0) +
            u64(RES) + u64(7) + u64(101) + u64(1) + u64(1) + s('a log line') +
            u64(NEXT) + s('next text\n') + u64(STOP) + u64(7))
error = (u64(ERR) + s('Error') + u64(0) + s('Error') + s("\x1b[31;1merror:\x1b[0m bad") + u64(0) +
         u64(1) + u64(0) + s('trace'))
build_result = (u64(0) + s('') + u64(1) + u64(0) + u64(1700000000) + u64(1700000001) + u64(1) +
                s('sha256:00!out') + s(realis))
seeds = {
    'handshake-worker': (0, 0, rd('worker-handshake.reply')),
    'handshake-worker-old': (0, 0, u64(0x6478696f) + u64(0x115) + u64(LAST)),
    'handshake-serve': (1, 0, rd('serve-handshake.reply')),
    'stderr-pathinfo': (2, 0, activity + u64(LAST) + info_body),
    'stderr-error': (2, 0, activity + error),
    'stderr-error-old': (2, 3, u64(ERR) + s('old style') + u64(1)),
    'worker-build-result': (3, 0, activity + u64(LAST) + build_result),
    'worker-build-result-old': (3, 3, u64(LAST) + u64(3) + s('failed')),
    'serve-build-ca': (4, 0, rd('serve-build-ca.reply')),
    'serve-build-fail': (4, 0, rd('serve-build-fail.reply')),
    'serve205-build-ca': (4, 2, rd('serve205-build-ca.reply')),
    'serve-path-infos': (5, 0, rd('serve-query-path-infos.reply')),
    'framed': (6, 0, u64(3) + b'abc' + u64(5) + b'defgh' + u64(0)),
    'nar-example': (7, 0, open(root + '/data/store/example.nar', 'rb').read()),
    'nar-worker': (7, 0, rd('worker-nar-from-path.reply')[8:]),
    'nar-serve': (7, 0, rd('serve-dump.reply')),
    'valid-paths': (8, 0, rd('worker-query-valid-paths.reply')),
    'output-map': (9, 0, rd('worker-output-map.reply')),
    'output-map-unknown': (9, 0, u64(LAST) + u64(2) + s('dev') + s('') + s('out') + s(P)),
    'realisation': (10, 0, rd('worker-realisation.reply')),
    'realisation-old': (10, 1, u64(LAST) + u64(1) + s(P)),
    'realisation-none': (10, 0, u64(LAST) + u64(0)),
    'pipelined-infos': (11, 0, qpi + rd('worker-query-path-info-invalid.reply') + qpi),
    'pipelined-error': (11, 0, qpi + error + qpi),
}
os.makedirs(out, exist_ok=True)
for name, (sel, var, body) in seeds.items():
    open(out + 'seed-' + name, 'wb').write(bytes([sel, var]) + body)
print(len(seeds), 'seeds')
