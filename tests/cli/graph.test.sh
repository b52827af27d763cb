#!/usr/bin/env bash
# `sluice drv graph`: the graph of examples/demo.nix (fixed, IA, CA on IA, CA on CA,
# IA on CA = deferred) agrees with real Nix (`nix show-derivation -r`: every drv, its
# kind from its outputs, its input drvs); the tree and edge formats; .nix and .drv
# inputs give the same graph; -A/--arg/--argstr; file names are never run through a
# shell; errors and usage; the examples build with real Nix (builders use no PATH).
source "$(dirname "$0")/../harness/env.sh"
need_nix
command -v python3 >/dev/null || skip "python3 not installed"

DEMO=$ROOT/examples/demo.nix
salt=g$(date +%s%N)

# expected_edges DRV...: the --edges output computed from `nix show-derivation -r`
expected_edges() {
    nix show-derivation -r "$@" | python3 -c '
import json, sys
d = json.load(sys.stdin)
def kind(outs):
    o = next(iter(outs.values()))
    if o.get("hash") == "impure": return "impure"
    if o.get("hash"): return "fixed"
    if o.get("hashAlgo"): return "CA"
    if o.get("path"): return "IA"
    return "deferred"
nodes = sorted("%s %s" % (kind(v["outputs"]), p) for p, v in d.items())
edges = sorted("%s -> %s" % (p, i) for p, v in d.items() for i in v["inputDrvs"])
print("\n".join(nodes + edges))'
}
# sorted body (everything but the summary line) of a --edges output
body() { sed '$d' <<<"$1" | LC_ALL=C sort; }
summary() { tail -1 <<<"$1"; }
sorted() { LC_ALL=C sort <<<"$1"; }

top=$(nix-instantiate --no-gc-warning "$DEMO" --argstr salt "$salt")
[[ $top == /nix/store/*-demo-report.drv ]] || fail "nix-instantiate gave '$top'"

# --- edges: same nodes, kinds and edges as Nix, in dependency order
out=$("$SLUICE" drv graph --edges "$DEMO" --argstr salt "$salt")
assert_eq "$(body "$out")" "$(sorted "$(expected_edges "$top")")" "edges of demo.nix"
assert_eq "$(summary "$out")" "5 derivations: 1 IA, 1 fixed, 2 CA, 1 deferred; 5 edges" "summary"
for pair in "fixed demo-src" "IA demo-greeting" "CA demo-ca-base" "CA demo-ca-next" \
    "deferred demo-report"; do
    grep -qE "^${pair% *} /nix/store/[a-z0-9]{32}-${pair#* }\.drv$" <<<"$out" ||
        fail "no '$pair' node in: $out"
done
# node lines come inputs first: every edge's input is listed before its dependent
python3 - "$out" <<'EOF' || fail "node lines are not in dependency order"
import sys
lines = sys.argv[1].splitlines()[:-1]
pos = {l.split()[1]: i for i, l in enumerate(lines) if " -> " not in l}
for l in lines:
    if " -> " in l:
        a, b = l.split(" -> ")
        assert pos[b] < pos[a], l
EOF

# --- the same graph from the .drv path, from a link to it, with flags around it
out2=$("$SLUICE" --state-dir "$T/s" drv graph "$top" --edges -v)
assert_eq "$out2" "$out" "graph of the .drv path"
ln -s "$top" "$T/top.drv"
out3=$("$SLUICE" drv graph --edges "$T/top.drv")
assert_eq "$out3" "$out" "graph of a link to the .drv"

# --- tree: the top drv first, two-space indentation, greeting's subtree shown once
tree=$("$SLUICE" drv graph "$DEMO" --argstr salt "$salt")
assert_eq "$(head -1 <<<"$tree")" "$top (deferred)" "tree root"
assert_eq "$(summary "$tree")" "5 derivations: 1 IA, 1 fixed, 2 CA, 1 deferred; 5 edges" "tree summary"
assert_eq "$(sed '$d' <<<"$tree" | wc -l)" "6" "tree lines"
assert_eq "$(grep -c 'demo-greeting.drv (IA, see above)$' <<<"$tree")" "1" "greeting shown once"
grep -qE '^    /nix/store/[a-z0-9]{32}-demo-ca-base\.drv \(CA\)$' <<<"$tree" ||
    fail "ca-base not at depth 2: $tree"
grep -qE '^(  )+/nix/store/[a-z0-9]{32}-demo-src\.drv \(fixed\)$' <<<"$tree" || fail "no src: $tree"

# --- -A, several -A, --arg, a part of the graph
out=$("$SLUICE" drv graph --edges "$DEMO" -A caNext --argstr salt "$salt")
assert_eq "$(summary "$out")" "4 derivations: 1 IA, 1 fixed, 2 CA, 0 deferred; 3 edges" "-A caNext"
assert_eq "$(body "$out")" \
    "$(sorted "$(expected_edges "$(nix-instantiate --no-gc-warning "$DEMO" -A caNext --argstr salt "$salt")")")" \
    "-A caNext edges"
out=$("$SLUICE" drv graph "$DEMO" -A src -A greeting --arg salt "\"$salt\"")
assert_eq "$(summary "$out")" "2 derivations: 1 IA, 1 fixed, 0 CA, 0 deferred; 1 edge" "-A src -A greeting"
assert_eq "$(grep -c '^/nix/store' <<<"$out")" "2" "two roots"
assert_eq "$(grep -c 'demo-src.drv (fixed)$' <<<"$out")" "2" "src as a root and under greeting"
out=$("$SLUICE" drv graph --edges "$DEMO" -A greeting.doc --argstr salt "$salt")
assert_eq "$(summary "$out")" "2 derivations: 1 IA, 1 fixed, 0 CA, 0 deferred; 1 edge" "-A greeting.doc (DRV!doc)"
out=$("$SLUICE" drv graph "$ROOT/examples/hello.nix" --argstr salt "$salt")
assert_eq "$(summary "$out")" "1 derivation: 1 IA, 0 fixed, 0 CA, 0 deferred; 0 edges" "hello.nix"

# --- file names reach nix-instantiate as one argument, never through a shell
weird="$T/a b;touch \$(echo pwned)'\".nix"
cp "$ROOT/examples/hello.nix" "$weird"
(cd "$T" && "$SLUICE" drv graph "$weird" --argstr salt "$salt" >"$T/weird.out")
assert_eq "$(summary "$(cat "$T/weird.out")")" "1 derivation: 1 IA, 0 fixed, 0 CA, 0 deferred; 0 edges" "odd file name"
[ ! -e "$T/pwned" ] || fail "a file name was run by a shell"
cp "$ROOT/examples/hello.nix" "$T/-dash.nix"
(cd "$T" && "$SLUICE" drv graph -- -dash.nix >/dev/null) || fail "file name starting with '-'"

# --- errors
rc=0; "$SLUICE" drv graph >/dev/null 2>"$T/err" || rc=$?
assert_eq "$rc" "2" "no arguments"
grep -q 'usage: sluice drv graph' "$T/err" || fail "no usage: $(cat "$T/err")"
rc=0; "$SLUICE" drv graph --bogus "$DEMO" >/dev/null 2>"$T/err" || rc=$?
assert_eq "$rc" "2" "unknown option"
grep -q "unknown option --bogus" "$T/err" || fail "unknown option message: $(cat "$T/err")"
rc=0; "$SLUICE" drv graph "$DEMO" -A >/dev/null 2>&1 || rc=$?
assert_eq "$rc" "2" "-A without a value"
rc=0; "$SLUICE" drv graph -A x "$top" >/dev/null 2>&1 || rc=$?
assert_eq "$rc" "2" "-A without a .nix file"
rc=0; "$SLUICE" drv graph "$T/missing.nix" >/dev/null 2>"$T/err" || rc=$?
assert_eq "$rc" "1" "missing .nix file"
grep -q 'nix-instantiate failed' "$T/err" || fail "missing file message: $(cat "$T/err")"
printf '{ x = ; }\n' >"$T/broken.nix"
rc=0; "$SLUICE" drv graph "$T/broken.nix" >/dev/null 2>"$T/err" || rc=$?
assert_eq "$rc" "1" "syntax error in the .nix file"
grep -q 'syntax error' "$T/err" || fail "nix's error is not shown: $(cat "$T/err")"
rc=0; "$SLUICE" drv graph "$DEMO" -A nosuchattr >/dev/null 2>&1 || rc=$?
assert_eq "$rc" "1" "missing attribute"
rc=0; "$SLUICE" drv graph /nix/store/00000000000000000000000000000000-nothing.drv >/dev/null 2>"$T/err" || rc=$?
assert_eq "$rc" "1" "drv not in the store"
rc=0; "$SLUICE" drv graph /nix/store/not-a-valid-path.drv >/dev/null 2>"$T/err" || rc=$?
assert_eq "$rc" "1" "invalid store path"
printf 'not a derivation' >"$T/bogus.drv"
rc=0; "$SLUICE" drv graph "$T/bogus.drv" >/dev/null 2>"$T/err" || rc=$?
assert_eq "$rc" "1" "a .drv outside the store"
rc=0; PATH=/nonexistent "$SLUICE" drv graph "$DEMO" >/dev/null 2>"$T/err" || rc=$?
assert_eq "$rc" "1" "nix-instantiate not found"
grep -q 'cannot run nix-instantiate' "$T/err" || fail "no 'cannot run': $(cat "$T/err")"

# --- the examples build with real Nix: builders need nothing but /bin/sh builtins
res=$(nix-store -r --no-gc-warning "$top" 2>"$T/build.log") || { cat "$T/build.log"; fail "demo.nix does not build"; }
read -r first <"$res"
assert_eq "$first" "ca-next: ca-base: hello from demo source $salt" "demo output"
res=$(nix-store -r --no-gc-warning "$(nix-instantiate --no-gc-warning "$ROOT/examples/hello.nix" --argstr salt "$salt")" 2>>"$T/build.log")
assert_eq "$(cat "$res")" "Hello, world! $salt" "hello output"
echo "drv graph checks passed"
