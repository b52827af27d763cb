#!/usr/bin/env python3
"""gen_drvs.py: write a .nix file with COUNT random derivations for SEED.

    python3 tests/nix/gen_drvs.py --seed 1 --count 500 > drvs.nix
    nix-instantiate drvs.nix            # one drv path per derivation

The file evaluates to an attribute set n0 ... n<COUNT-1> of `builtins.derivation`
calls (builder /bin/sh, system builtins.currentSystem unless --system), so
nix-instantiate instantiates all of them at once.  The same seed always gives the
same file.  Every derivation can also be built (nix-store -r): builders use only /bin/sh
built-ins, every output is one regular file, and fixed outputs have the hashes of
what their builders write.

What varies:
  - names from [A-Za-z0-9+-._?=]; 1-4 outputs (only "out" for fixed outputs);
  - kinds: input-addressed; fixed flat or recursive with md5/sha1/sha256/sha512 and
    outputHash written as base16, nix32, base64 or SRI; floating content-addressed
    (flat or recursive, any of the four algorithms); an input-addressed derivation
    that depends on a floating one becomes deferred;
  - a dependency graph up to --max-depth (6) deep: args read outputs of earlier
    derivations ("${nK.dev}"), sometimes a builtins.toFile source;
  - env values naming input outputs ("x${nK.dev}x${nJ.out}/"): placeholders for floating
    inputs, rewritten when Nix resolves the derivation;
  - env values (and some env names) with quotes, backslashes, "${", newlines, tabs,
    CR, non-ASCII UTF-8, and with --exotic (default on) control bytes and bytes that
    are not UTF-8.

An output's contents never contain a store path, so floating outputs of any method
and algorithm stay valid content-addressed paths; dependencies are read with `read`,
and outputs are written through builtins.placeholder (output names such as "a+b"
are not shell variable names).

The JSON sidecar (--meta FILE) lists per node: name, kind, outputs, deps.
"""
import argparse
import base64
import hashlib
import json
import random
import struct
import sys

NIX32 = "0123456789abcdfghijklmnpqrsvwxyz"
ALGOS = ["md5", "sha1", "sha256", "sha512"]
NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-._?="
OUTPUT_POOL = ["out", "dev", "bin", "lib", "doc", "man", "a+b", "x_y", "v1.2", "q=r", "Dev"]


def nix32(b):
    n = (len(b) * 8 - 1) // 5 + 1
    out = []
    for i in range(n):
        bit = 5 * (n - 1 - i)
        j, s = bit // 8, bit % 8
        v = b[j] >> s
        if j + 1 < len(b):
            v |= b[j + 1] << (8 - s)
        out.append(NIX32[v & 31])
    return "".join(out)


def nar_of_file(contents):
    def s(x):
        return struct.pack("<Q", len(x)) + x + b"\0" * ((8 - len(x) % 8) % 8)

    return b"".join(s(x) for x in [b"nix-archive-1", b"(", b"type", b"regular", b"contents", contents, b")"])


def nix_str(b):
    """A Nix string literal for the bytes b (raw bytes kept, specials escaped)."""
    out = bytearray(b'"')
    i = 0
    while i < len(b):
        c = b[i]
        if c == ord('"'):
            out += b'\\"'
        elif c == ord("\\"):
            out += b"\\\\"
        elif c == ord("\n"):
            out += b"\\n"
        elif c == ord("\t"):
            out += b"\\t"
        elif c == ord("\r"):
            out += b"\\r"
        elif c == ord("$") and i + 1 < len(b) and b[i + 1] == ord("{"):
            out += b"\\${"
            i += 1
        else:
            out.append(c)
        i += 1
    out += b'"'
    return bytes(out)


def nix_attr(name):
    """An attribute selector for an output name (quoted unless an identifier)."""
    if name.replace("_", "a").replace("-", "a").isalnum() and not name[0].isdigit() and "'" not in name:
        return name.encode()
    return nix_str(name.encode())


class Gen:
    def __init__(self, seed, exotic):
        self.r = random.Random(seed)
        self.exotic = exotic

    def name(self, i):
        r = self.r
        n = r.randint(1, 24)
        body = "".join(r.choice(NAME_CHARS) for _ in range(n))
        # start with a letter; never end in ".drv"
        return ("n%d-" % i) + r.choice("abcXYZ") + body.replace(".drv", "_drv")

    def value(self):
        r = self.r
        parts = [b"plain", b'quote"', b"back\\slash", b"new\nline", b"tab\t", b"cr\r",
                 "caf\u00e9 \u2603 \U0001f600".encode(), b"${notinterp}", b"$dollar", b"''",
                 b"", b" ", b"a,b", b"(paren)", b"[br]", b"%s %d"]
        if self.exotic:
            parts += [b"\x01\x02", b"\x7f", b"\xff\xfe", b"\xc3", b"\x1b[0m"]
        return b"".join(r.choice(parts) for _ in range(r.randint(0, 6)))

    def env_name(self, k):
        r = self.r
        if r.random() < 0.15:
            weird = [b'k"q', b"k\\b", b"k\nl", b"k\tt", "k\u00e9".encode(), b"k y", b"K.Z-"]
            if self.exotic:
                weird.append(b"k\xff")
            return r.choice(weird) + str(k).encode()
        return ("v%d_%s" % (k, "".join(r.choice("abcxyz") for _ in range(r.randint(1, 6))))).encode()


def generate(seed, count, max_depth, system, exotic):
    g = Gen(seed, exotic)
    r = g.r
    nodes = []
    lines = [b"let"]
    for i in range(count):
        kind = r.choices(["ia", "fixed", "floating"], weights=[55, 20, 25])[0]
        name = g.name(i)
        if kind == "fixed":
            outputs = ["out"]
        else:
            k = r.randint(1, 4)
            outputs = r.sample(OUTPUT_POOL, k)
            if r.random() < 0.7 and "out" not in outputs:
                outputs[0] = "out"
        # dependencies: earlier nodes, keeping the depth bounded
        deps = []
        candidates = [j for j in range(len(nodes)) if nodes[j]["depth"] < max_depth]
        if candidates and r.random() < 0.8:
            for _ in range(r.randint(1, 3)):
                j = r.choice(candidates[-60:] if r.random() < 0.7 else candidates)
                o = r.choice(nodes[j]["outputs"])
                if (j, o) not in deps:
                    deps.append((j, o))
        depth = 1 + max([nodes[j]["depth"] for j, _ in deps], default=0)
        # the builder script: literal bytes and interpolated Nix expressions
        script = []

        def lit(b):
            script.append(("lit", b))

        def interp(expr):
            script.append(("expr", expr))

        for n, (j, o) in enumerate(deps):
            lit(b"read d%d < " % n)
            interp(b"n%d.%s" % (j, nix_attr(o)))
            lit(b"; ")
        if r.random() < 0.1:
            lit(b"read s < ")
            interp(b"builtins.toFile %s %s" % (nix_str(("src-%d" % i).encode()),
                                               nix_str(b"source text " + str(i).encode() + b"\n")))
            lit(b"; ")
        attrs = [
            b"name = %s;" % nix_str(name.encode()),
            b"system = %s;" % (system.encode() if system == "builtins.currentSystem" else nix_str(system.encode())),
            b'builder = "/bin/sh";',
        ]
        if outputs != ["out"] or r.random() < 0.3:
            attrs.append(b"outputs = [ %s ];" % b" ".join(nix_str(o.encode()) for o in outputs))
        meta = {"name": name, "kind": kind, "outputs": sorted(outputs), "deps": [[j, o] for j, o in deps]}
        if kind == "fixed":
            contents = b"fixed-%d-%d\n" % (seed, i)
            mode = r.choice(["flat", "recursive"])
            algo = r.choice(ALGOS)
            data = contents if mode == "flat" else nar_of_file(contents)
            digest = hashlib.new(algo, data).digest()
            enc = r.choice(["base16", "nix32", "base64", "sri"])
            if enc == "base16":
                h = digest.hex()
            elif enc == "nix32":
                h = nix32(digest)
            elif enc == "base64":
                h = base64.b64encode(digest).decode()
            else:
                h = algo + "-" + base64.b64encode(digest).decode()
            if enc == "sri" and r.random() < 0.5:
                attrs.append(b"outputHash = %s;" % nix_str(h.encode()))  # algo from the SRI
            else:
                attrs.append(b"outputHashAlgo = %s;" % nix_str(algo.encode()))
                attrs.append(b"outputHash = %s;" % nix_str(h.encode()))
            if mode == "recursive" or r.random() < 0.5:
                attrs.append(b"outputHashMode = %s;" % nix_str(mode.encode()))
            lit(b"echo fixed-%d-%d > " % (seed, i))
            interp(b'builtins.placeholder "out"')
            lit(b";")
            meta.update(mode=mode, algo=algo)
        else:
            if kind == "floating":
                mode = r.choice(["flat", "recursive"])
                algo = r.choices(ALGOS, weights=[1, 1, 4, 1])[0]
                attrs.append(b"__contentAddressed = true;")
                if mode == "flat" or r.random() < 0.5:
                    attrs.append(b"outputHashMode = %s;" % nix_str(mode.encode()))
                if algo != "sha256" or r.random() < 0.5:
                    attrs.append(b"outputHashAlgo = %s;" % nix_str(algo.encode()))
                meta.update(mode=mode, algo=algo)
            dvals = b" ".join(b"$d%d" % n for n in range(len(deps)))
            for o in outputs:
                # output paths through placeholders: output names need not be shell names
                lit(b'echo "%s %s %s" > ' % (name.encode(), o.encode(), dvals))
                interp(b"builtins.placeholder %s" % nix_str(o.encode()))
                lit(b"; ")
        for k in range(r.randint(0, 5)):
            attrs.append(b"%s = %s;" % (nix_str(g.env_name(k)), nix_str(g.value())))
        if deps and r.random() < 0.6:
            # env values that name inputs (a floating input's is a placeholder until the
            # drv is resolved), glued to text and to each other
            refs = [r.choice(deps) for _ in range(r.randint(1, 3))]
            val = b"".join(b"x${n%d.%s}" % (j, nix_attr(o)) for j, o in refs)
            attrs.append(b'depRefs = "%s/";' % val)
            meta["env_refs"] = [[j, o] for j, o in refs]
        if r.random() < 0.2:
            attrs.append(b"requiredSystemFeatures = [ ];")
        rendered = b"".join(nix_str(v)[1:-1] if t == "lit" else b"${" + v + b"}" for t, v in script)
        attrs.append(b'args = [ "-c" "%s" ];' % rendered)
        lines.append(b"  n%d = builtins.derivation { %s };" % (i, b" ".join(attrs)))
        nodes.append(dict(meta, depth=depth))
    lines.append(b"in {")
    lines.append(b" ".join(b"inherit n%d;" % i for i in range(count)))
    lines.append(b"}")
    return b"\n".join(lines) + b"\n", nodes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--max-depth", type=int, default=6)
    ap.add_argument("--system", default="builtins.currentSystem")
    ap.add_argument("--no-exotic", dest="exotic", action="store_false",
                    help="no control bytes or non-UTF-8 bytes in env")
    ap.add_argument("--meta", help="write a JSON description of the nodes here")
    a = ap.parse_args()
    text, nodes = generate(a.seed, a.count, a.max_depth, a.system, a.exotic)
    sys.stdout.buffer.write(text)
    if a.meta:
        with open(a.meta, "w") as f:
            json.dump(nodes, f, indent=1)


if __name__ == "__main__":
    main()
