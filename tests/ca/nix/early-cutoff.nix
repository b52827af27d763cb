# tests/ca/nix/early-cutoff.nix: early cutoff.  upstream1 and upstream2 are different
# content-addressed derivations (they differ in a dummy attribute) with identical output,
# so they produce the same store path; downstream1 and downstream2 each depend on one of
# them and are otherwise equal, so both resolve to the same derivation.
{ salt ? "" }:
let
  ca = { __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256"; };
  mkCA = name: script: extra: derivation (ca // {
    inherit name;
    system = "x86_64-linux";
    builder = "/bin/sh";
    args = [ "-c" script ];
    SALT = salt;
  } // extra);
  upstream = dummy: mkCA "upstream" ''
    /bin/mkdir $out
    echo "$SALT" > $out/salt
  '' { DUMMY = dummy; };
  downstream = up: mkCA "downstream" ''
    /bin/mkdir $out
    echo "$SALT" > $out/salt
    echo "$UP" > $out/up
  '' { UP = up; };
in
rec {
  upstream1 = upstream "one";
  upstream2 = upstream "two";
  downstream1 = downstream upstream1;
  downstream2 = downstream upstream2;
}
