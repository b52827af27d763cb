# tests/subst/builders: `dep` is in a binary cache; `useA`, `useB` and `useC` need it and
# go to hosts b1, b2, b3 (features hop1, hop2, hop3).  Builders get no PATH.
{ salt ? "" }:
let
  system = builtins.currentSystem;
  mk = name: script: extra: derivation ({
    inherit name system salt;
    builder = "/bin/sh";
    args = [ "-c" script ];
  } // extra);
  dep = mk "dep" ''
    i=0
    while [ $i -lt 2000 ]; do echo "dep ${salt} line $i"; i=$((i + 1)); done > $out
  '' { };
  use = name: feature: mk name ''
    read -r x < ${dep}
    echo "${name} $x" > $out
  '' { requiredSystemFeatures = [ feature ]; };
in
{
  inherit dep;
  useA = use "use-a" "hop1";
  useB = use "use-b" "hop2";
  useC = use "use-c" "hop3";
}
