#!/usr/bin/env bash
# `sluice drv show` and `sluice drv path` as commands: the spec's vectors (files
# outside the store, shown under their store path), derivations with control bytes,
# non-UTF-8 env values, LF/TAB in system and impure outputs instantiated by the real
# Nix here and compared with `nix show-derivation`, several DRVs in one object, and
# bad input: exit status 1 with the file and byte offset in the message, 2 for usage.
source "$(dirname "$0")/../harness/env.sh"
D=$ROOT/tests/data/nix

# json_eq A B: the two files hold the same JSON (bytes that are not UTF-8 kept)
json_eq() {
    python3 - "$1" "$2" <<'EOF'
import json, sys
def load(p):
    with open(p, "rb") as f:
        return json.loads(f.read().decode("utf-8", "surrogateescape"))
a, b = load(sys.argv[1]), load(sys.argv[2])
if a != b:
    print("JSON differs:\n  %r\n  %r" % (a, b))
    sys.exit(1)
EOF
}
run() {
    rc=0
    "$SLUICE" "$@" >"$T/out" 2>"$T/err" || rc=$?
    err=$(cat "$T/err")
}
expect_rc() { [ "$rc" -eq "$1" ] || fail "$2: exit $rc, expected $1; stderr: $err"; }
expect_err() { grep -qF -- "$1" <<<"$err" || fail "$2: stderr lacks '$1': $err"; }

# --- the spec's vectors (no Nix needed)
n=0
: >"$T/pairs"
for f in "$D"/drv/*/*.drv "$D"/drv/*/resolved/*.drv; do
    n=$((n + 1))
    run drv show "$f"
    expect_rc 0 "drv show $f"
    cp "$T/out" "$T/show-$n.json"
    printf '%s %s\n' "$T/show-$n.json" "$(dirname "$f")/show-derivation.json" >>"$T/pairs"
    run drv path "$f"
    expect_rc 0 "drv path $f"
    assert_eq "$(cat "$T/out")" "/nix/store/$(basename "$f")" "drv path $f"
done
[ $n -ge 16 ] || fail "only $n vectors"
python3 - "$T/pairs" <<'EOF' || fail "drv show differs from show-derivation.json"
import json, sys
for line in open(sys.argv[1]):
    a, b = line.split()
    if json.load(open(a)) != json.load(open(b)):
        print("differs:", a, b)
        sys.exit(1)
EOF

# several DRVs: one object, each once; drv path: one line per file
run drv show "$D"/drv/ia-simple/*.drv "$D"/drv/ca-a/*.drv "$D"/drv/ia-simple/*.drv
expect_rc 0 "drv show of three"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d) == 2, d.keys()' "$T/out" ||
    fail "drv show of two distinct drvs"
run drv path "$D"/drv/ia-simple/*.drv "$D"/drv/ca-a/*.drv
expect_rc 0 "drv path of two"
assert_eq "$(wc -l <"$T/out")" 2 "drv path of two"

# --- bad input
cp "$D/drv/ia-deps/55nw3zqhs9fd0b89y1yjbsizfyprhqj9-ia-deps.drv" "$T/full.drv"
bad=$T/00000000000000000000000000000000-bad.drv
head -c 100 "$T/full.drv" >"$bad"
run drv show "$bad"
expect_rc 1 "truncated drv"
expect_err "$bad: at byte 100: unexpected end of input (truncated)" "truncated drv"
[ ! -s "$T/out" ] || fail "truncated drv: output on stdout"
run drv path "$bad"
expect_rc 1 "drv path of a truncated drv"
expect_err "at byte 100" "drv path of a truncated drv"
sed 's/("name","ia-deps"),("out"/("out","x"),("name","ia-deps"),("out"/' "$T/full.drv" >"$bad"
run drv show "$bad"
expect_rc 1 "unsorted env"
expect_err "not sorted" "unsorted env"
expect_err "at byte " "unsorted env"
printf 'Derive([("out","","","")],[],["/nix/store/00000000000000000000000000000000-.."],"x","b",[],[])' >"$bad"
run drv path "$bad"
expect_rc 1 "'..' as a name"
expect_err "$bad: at byte 30: invalid store path" "'..' as a name"
printf 'Derive([("out","","","")],[],[],"x","b",["a\\qb"],[])' >"$bad"
run drv show "$bad"
expect_rc 1 "bad escape"
expect_err "invalid escape" "bad escape"
head -c 5000000 /dev/zero | tr '\0' 'x' >"$bad"
run drv show "$bad"
expect_rc 1 "garbage"
expect_err "at byte 0: not a derivation" "garbage"
run drv show "$T/missing.drv"
expect_rc 1 "missing file"
run drv show /nix/store/00000000000000000000000000000000-nope.drv
expect_rc 1 "missing store drv"
expect_err "00000000000000000000000000000000-nope.drv" "missing store drv"
run drv show "$T/full.drv"
expect_rc 1 "file not named like a store path"
expect_err "not a derivation path" "file not named like a store path"
run drv show
expect_rc 2 "drv show without arguments"
run drv show --bogus "$T/full.drv"
expect_rc 2 "drv show with an unknown flag"
run drv path
expect_rc 2 "drv path without arguments"
run drv path --name x.y "$T/full.drv"
expect_rc 0 "drv path --name"
case $(cat "$T/out") in /nix/store/*-x.y.drv) ;; *) fail "drv path --name: $(cat "$T/out")" ;; esac

# --- against the real Nix
need_nix
X=$'\nextra-experimental-features = impure-derivations'
drvs=()
for spec in "t1.nix weird" "t2.nix ctl" "t2.nix sys" "t2.nix outsp" "t3.nix imp"; do
    set -- $spec
    d=$(NIX_CONFIG="$NIX_CONFIG$X" nix-instantiate "$D/odd/$1" -A "$2" 2>/dev/null) ||
        fail "nix-instantiate $1 -A $2"
    drvs+=("$d")
    cmp -s "$d" "$D/odd/$(basename "$d")" || fail "$d differs from the copy in tests/data"
    NIX_CONFIG="$NIX_CONFIG$X" nix show-derivation "$d" >"$T/nix.json"
    run drv show "$d"
    expect_rc 0 "drv show $d"
    json_eq "$T/out" "$T/nix.json" || fail "drv show $d"
    run drv path "$d"
    assert_eq "$(cat "$T/out")" "$d" "drv path $d"
done
NIX_CONFIG="$NIX_CONFIG$X" nix show-derivation "${drvs[@]}" >"$T/nix.json"
run drv show "${drvs[@]}"
json_eq "$T/out" "$T/nix.json" || fail "drv show of several"

# a drv mixing a deferred and a floating CA output: Nix refuses it, so do we
printf 'Derive([("a","","",""),("out","","r:sha256","")],[],[],"x","/bin/sh",[],[])' >"$T/mixed.drv"
nix-store --add "$T/mixed.drv" >/dev/null 2>"$T/nix.err" && fail "Nix accepted a drv with mixed output kinds"
grep -q "can't mix derivation output types" "$T/nix.err" || fail "Nix's refusal changed: $(cat "$T/nix.err")"
cp "$T/mixed.drv" "$T/00000000000000000000000000000000-mixed.drv"
run drv show "$T/00000000000000000000000000000000-mixed.drv"
expect_rc 1 "drv with mixed output kinds"
expect_err "mixes output kinds" "drv with mixed output kinds"

# Nix writes a system with '"' unescaped and cannot read the drv back; neither do we
d=$(nix-instantiate "$D/odd/t2.nix" -A sysq 2>/dev/null || true)
run drv show "$D/odd/rkh4kzrpfg0dndmpv7da1jz8bnfbjhk2-sysq.drv"
expect_rc 1 "drv with a quote in system"
expect_err "at byte 85: expected ','" "drv with a quote in system"
echo "ok: $n vectors, ${#drvs[@]} odd drvs, bad input"
