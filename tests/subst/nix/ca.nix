# The content-addressed graph of tests/subst/ca: `caTop` needs `caMid`, which a binary
# cache has (through its realisation), and `caOwn`, which no cache has; `caMid` needs
# `caBuildOnly` only to be built.  `iaOnCa` is input-addressed on `caMid` (deferred).
# `caAfterIn` (variant b) is in the cache only through the realisation of its resolved
# drv (variant a built it).  `caLoneHit`, `caLoneMiss` and `caLoneTrunc` need nothing: a
# cache has the first, none the second, and the third with its NAR cut short.  Builders
# get no PATH: /bin/sh and its builtins.
{ salt ? "", variant ? "a" }:
let
  system = builtins.currentSystem;
  ca = { __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256"; };
  mk = name: script: extra: derivation ({
    inherit name system;
    builder = "/bin/sh";
    args = [ "-c" script ];
    SALT = salt;
  } // extra);
  mkCA = name: script: extra: mk name script (ca // extra);
in
rec {
  caBuildOnly = mkCA "ca-build-only" "echo build-only $SALT > $out" { };
  caMid = mkCA "ca-mid" ''
    read -r x < $DEP
    echo "mid $x" > $out
  '' { DEP = caBuildOnly; };
  caOwn = mkCA "ca-own" "echo own $SALT > $out" { };
  caTop = mkCA "ca-top" ''
    read -r a < $MID
    read -r b < $OWN
    echo "$a / $b" > $out
  '' { MID = caMid; OWN = caOwn; };
  # caIn's drv differs by variant, its output does not: caAfterIn's queued drv differs,
  # its resolved drv is the same
  caIn = mkCA "ca-in" "echo in $SALT > $out" { VARIANT = variant; };
  caAfterIn = mkCA "ca-after-in" ''
    read -r x < $IN
    echo "after $x" > $out
  '' { IN = caIn; };
  caLoneHit = mkCA "ca-lone-hit" "echo lone hit $SALT > $out" { };
  caLoneMiss = mkCA "ca-lone-miss" "echo lone miss $SALT > $out" { };
  caLoneTrunc = mkCA "ca-lone-trunc" ''
    i=0
    while [ $i -lt 4000 ]; do echo "lone trunc $SALT line $i"; i=$((i + 1)); done > $out
  '' { };
  iaOnCa = mk "ia-on-ca" ''
    read -r a < $MID
    echo "ia $a" > $out
  '' { MID = caMid; };
}
