#!/usr/bin/env bash
# Randomised agreement with real Nix on built derivations.  tests/nix/gen_drvs.py writes
# COUNT (200) random derivations (input-addressed, fixed, floating CA, deferred, 1-4
# outputs, deep graphs) for a fresh seed, nix-instantiate writes them and
# `nix-store -r -v` builds them all.  Then:
#   - `sluice drv outputs` of every drv in the closure: the realisation id of every
#     output is one Nix registered (`nix realisation info --json`), a printed path is
#     the realised path and Nix's static path, a placeholder is printed exactly for the
#     outputs whose paths are not static;
#   - for every "resolved derivation: 'X' -> 'Y'..." line of the build log,
#     `sluice drv resolve X --input DRV!OUT=PATH...` with the realised paths of X's
#     inputs prints Y and Y's exact ATerm; some of those X carry input placeholders in
#     an env value (depRefs), and at least one such resolution must be among them;
#   - `sluice nar hash` equals `nix hash path` (SRI and --base32) on every output, and
#     `sluice nar dump` equals `nix-store --dump` on some of them.
#
# SEED=N replays a seed (a seed already built once has nothing left to resolve, so
# by default a fresh seed is used and printed); COUNT=N changes the size.
source "$(dirname "$0")/../harness/env.sh"
need_nix
command -v python3 >/dev/null || skip "python3 not installed"

COUNT=${COUNT:-200}
SEED=${SEED:-$(( (RANDOM << 15 | RANDOM) % 100000000 + 1000000 ))}
echo "seed $SEED: $COUNT derivations (replay: SEED=$SEED COUNT=$COUNT $0)"
cd "$T"
python3 "$ROOT/tests/nix/gen_drvs.py" --seed "$SEED" --count "$COUNT" >drvs.nix
nix-instantiate drvs.nix >top.txt 2>instantiate.err ||
    fail "nix-instantiate failed: $(tail -5 instantiate.err)"
sed 's/!.*//' top.txt | sort -u >top-drvs.txt
start=$(date +%s)
xargs -d '\n' nix-store -r -v <top-drvs.txt >built.txt 2>build.log ||
    fail "nix-store -r failed: $(grep -i error build.log | head -5)"
echo "built in $(( $(date +%s) - start )) s"
xargs -d '\n' nix-store -qR <top-drvs.txt | grep '\.drv$' >closure.txt
xargs -d '\n' nix realisation info --json <closure.txt >realisations.json ||
    fail "nix realisation info failed"
xargs -d '\n' nix show-derivation <closure.txt >show.json || fail "nix show-derivation failed"

python3 - "$SLUICE" <<'EOF' || fail "disagreement with Nix (seed $SEED, files in $T)"
import json, re, subprocess, sys
sluice = sys.argv[1]
closure = [l for l in open("closure.txt").read().split("\n") if l]
real = {r["id"]: "/nix/store/" + r["outPath"] for r in json.load(open("realisations.json"))}
show = json.loads(open("show.json", "rb").read().decode("utf-8", "surrogateescape"))
bad = 0
def problem(msg):
    global bad
    bad += 1
    if bad <= 10:
        print(msg)

def run(args, binary=False):
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        problem("%s failed: %s" % (" ".join(args[:3]), p.stderr.decode(errors="replace").strip()))
        return None
    return p.stdout if binary else p.stdout.decode("utf-8", "surrogateescape")

# 1. drv outputs: realisation ids, static paths, placeholders
realised = {}   # (drv, output) -> path
n_static = n_placeholder = 0
for drv in closure:
    out = run([sluice, "drv", "outputs", drv])
    if out is None:
        continue
    outs = show[drv]["outputs"]
    lines = [l.split("\t") for l in out.split("\n") if l]
    if sorted(o for o, _, _ in lines) != sorted(outs):
        problem("%s: outputs %s, nix has %s" % (drv, [l[0] for l in lines], sorted(outs)))
        continue
    for name, path, rid in lines:
        if not rid.endswith("!" + name) or rid not in real:
            problem("%s!%s: realisation id %s not registered by Nix" % (drv, name, rid))
            continue
        realised[(drv, name)] = real[rid]
        static = outs[name].get("path")
        if static:
            n_static += 1
            if path != static or path != real[rid]:
                problem("%s!%s: path %s, nix static %s, realised %s" % (drv, name, path, static, real[rid]))
        else:
            n_placeholder += 1
            if not re.fullmatch(r"/[0-9a-z]{52}", path):
                problem("%s!%s: expected a placeholder, got %s" % (drv, name, path))

# 2. every resolution Nix logged
resolved = re.findall(r"resolved derivation: '([^']*)' -> '([^']*)'\.\.\.", open("build.log", errors="surrogateescape").read())
n_env_placeholder = 0  # resolutions that rewrote a placeholder in an env value
for x, y in resolved:
    if re.search(r"/[0-9a-z]{52}", show[x]["env"].get("depRefs", "")):
        n_env_placeholder += 1
    args = [sluice, "drv", "resolve", x]
    for p, outputs in show[x]["inputDrvs"].items():
        for o in outputs:
            args += ["--input", "%s!%s=%s" % (p, o, realised.get((p, o), "/nix/store/missing"))]
    out = run(args, binary=True)
    if out is None:
        continue
    first, _, text = out.partition(b"\n")
    want = open(y, "rb").read()
    if first.decode() != y:
        problem("resolve %s: got %s, nix %s" % (x, first.decode(), y))
    elif text != want + b"\n":
        problem("resolve %s: ATerm differs from %s" % (x, y))

# 3. NAR hashes and dumps of every output
paths = sorted(set(realised.values()))
for flags in ([], ["--base32"]):
    ours = run([sluice, "nar", "hash"] + flags + paths)
    theirs = run(["nix", "hash", "path"] + flags + paths)
    if ours is not None and ours != theirs:
        problem("nar hash %s differs from nix hash path" % " ".join(flags))
for p in paths[:25]:
    if run([sluice, "nar", "dump", p], binary=True) != run(["nix-store", "--dump", p], binary=True):
        problem("nar dump %s differs" % p)

print("%d drvs, %d outputs (%d static paths, %d placeholders), %d resolutions (%d with a "
      "placeholder in an env value), %d NAR hashes"
      % (len(closure), len(realised), n_static, n_placeholder, len(resolved), n_env_placeholder,
         len(paths)))
if not resolved:
    problem("Nix logged no resolution (nothing content-addressed was built?)")
if not n_env_placeholder:
    problem("no resolution had a placeholder in an env value (the generator lost that case)")
if bad:
    print("%d problems" % bad)
    sys.exit(1)
EOF
