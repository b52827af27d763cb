# tests/ca/nix/shared.nix: one content-addressed derivation `p` shared by several builds,
# as a top level and as a dependency.
#
#   base      CA, no inputs (resolves to itself)
#   p         CA on base (resolves to p')
#   top       CA on p
#   deferred  input-addressed on p (deferred)
{ salt ? "" }:
let
  ca = { __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256"; };
  mk = name: script: extra: derivation ({
    inherit name;
    system = "x86_64-linux";
    builder = "/bin/sh";
    args = [ "-c" script ];
    SALT = salt;
  } // extra);
in
rec {
  base = mk "shared-base" ''echo "base $SALT" > $out'' ca;
  p = mk "shared-p" ''echo "p $SALT $BASE" > $out'' (ca // { BASE = base; });
  top = mk "shared-top" ''echo "top $SALT $P" > $out'' (ca // { P = p; });
  deferred = mk "shared-deferred" ''echo "deferred $SALT $P" > $out'' { P = p; };
}
