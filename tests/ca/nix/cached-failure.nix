# tests/ca/nix/cached-failure.nix: failing content-addressed derivations.
#
#   f     CA, no inputs, fails (resolves to itself: FailedPaths keyed by f)
#   base  CA, no inputs, succeeds
#   g     CA on base, fails (resolves to g': FailedPaths keyed by g')
{ salt ? "" }:
let
  ca = { __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256"; };
  mk = name: script: extra: derivation (ca // {
    inherit name;
    system = "x86_64-linux";
    builder = "/bin/sh";
    args = [ "-c" script ];
    SALT = salt;
  } // extra);
in
rec {
  f = mk "cachedfail-f" ''echo "f fails"; exit 1'' { };
  base = mk "cachedfail-base" ''echo "base $SALT" > $out'' { };
  g = mk "cachedfail-g" ''echo "g fails on $BASE"; exit 1'' { BASE = base; };
}
