# tests/ca/nix/outside.nix: inputs built by plain Nix (`nix-store -r`) before sluice sees
# the derivations that need them.
#
#   ia   input-addressed
#   a    CA, no inputs
#   b    CA on a (Nix resolves it itself)
#   p    CA on a and ia
#   q    CA on b
#   p3   CA on a (queued later)
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
  ia = mk "outside-ia" ''echo "ia $SALT" > $out'' { };
  a = mk "outside-a" ''echo "a $SALT" > $out'' ca;
  b = mk "outside-b" ''echo "b $SALT $A" > $out'' (ca // { A = a; });
  p = mk "outside-p" ''echo "p $SALT $A $IA" > $out'' (ca // { A = a; IA = ia; });
  q = mk "outside-q" ''echo "q $SALT $B" > $out'' (ca // { B = b; });
  p3 = mk "outside-p3" ''echo "p3 $SALT $A" > $out'' (ca // { A = a; });
}
