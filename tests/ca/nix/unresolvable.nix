# tests/ca/nix/unresolvable.nix: a CA derivation p on a CA input a, and q on p, for the
# tests that take a's output (and .drv) away while p waits to be resolved; r on two CA
# inputs a and b, for the test that takes both away.
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
  a = mk "unres-a" ''echo "a $SALT" > $out'' { };
  p = mk "unres-p" ''echo "p $SALT $A" > $out'' { A = a; };
  q = mk "unres-q" ''echo "q $SALT $P" > $out'' { P = p; };
  b = mk "unres-b" ''echo "b $SALT" > $out'' { };
  r = mk "unres-r" ''echo "r $SALT $A $B" > $out'' { A = a; B = b; };
}
