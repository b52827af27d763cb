# The graph of tests/subst (input-addressed).  `top` needs `mid`, which a binary cache
# has; `mid` needs `buildOnly` only to be built and keeps a reference to `runtime`.
# `own` is in no cache; `badsig` is in the cache signed by a key nobody trusts;
# `truncated` is in the cache with its NAR cut short.  `top2` needs `mid` too.
# `top3` needs `mid` too (tests/subst/later: a build read after `mid` was substituted).
# tests/subst/builders: `dep` is in a cache; `useA`, `useB` and `useC` need it and go to
# hosts b1, b2, b3 (features hop1, hop2, hop3).
# tests/subst/overlap: `slowMid` is in a slow cache with the four paths it refers to
# (`part`), `quick` is in none; `both` needs the two.
# tests/subst/fallback: `fragile` is in the cache (its NAR cut short) and needs `failIn`,
# a known failure; `onFragile` needs it and `side`, which no cache has.
# Builders get no PATH: /bin/sh and its builtins.
{ salt ? "" }:
let
  system = builtins.currentSystem;
  mkWith = name: script: extra: derivation ({
    inherit name system salt;
    builder = "/bin/sh";
    args = [ "-c" script ];
  } // extra);
  mk = name: script: mkWith name script { };
  buildOnly = mk "build-only" "echo build-only ${salt} > $out";
  runtime = mk "runtime" "echo runtime ${salt} > $out";
  mid = mk "mid" ''
    read -r x < ${buildOnly}
    echo "mid $x" > $out
    echo ${runtime} >> $out
  '';
  own = mk "own" "echo own ${salt} > $out";
  badsig = mk "badsig" "echo badsig ${salt} > $out";
  truncated = mk "truncated" ''
    i=0
    while [ $i -lt 4000 ]; do echo "truncated ${salt} line $i"; i=$((i + 1)); done > $out
  '';
  top = mk "top" ''
    read -r a < ${mid}
    read -r b < ${own}
    read -r c < ${badsig}
    read -r d < ${truncated}
    echo "$a / $b / $c / $d" > $out
  '';
  top2 = mk "top2" ''
    read -r a < ${mid}
    echo "top2 $a" > $out
  '';
  top3 = mk "top3" ''
    read -r a < ${mid}
    echo "top3 $a" > $out
  '';
  part = n: mk "part-${toString n}" "echo part ${toString n} ${salt} > $out";
  slowMid = mk "slow-mid" ''
    echo "slow ${part 1} ${part 2} ${part 3} ${part 4}" > $out
  '';
  quick = mk "quick" "echo quick ${salt} > $out";
  failIn = mk "fail-in" "echo fail-in ${salt} > $out";
  fragile = mk "fragile" ''
    read -r x < ${failIn}
    i=0
    while [ $i -lt 4000 ]; do echo "fragile ${salt} $x line $i"; i=$((i + 1)); done > $out
  '';
  side = mk "side" "echo side ${salt} > $out";
  onFragile = mk "on-fragile" ''
    read -r a < ${fragile}
    read -r b < ${side}
    echo "$a / $b" > $out
  '';
  both = mk "both" ''
    read -r a < ${slowMid}
    read -r b < ${quick}
    echo "$a / $b" > $out
  '';
  dep = mk "dep" ''
    i=0
    while [ $i -lt 2000 ]; do echo "dep ${salt} line $i"; i=$((i + 1)); done > $out
  '';
  use = name: feature: mkWith name ''
    read -r x < ${dep}
    echo "${name} $x" > $out
  '' { requiredSystemFeatures = [ feature ]; };
in
{
  inherit buildOnly runtime mid own badsig truncated top top2 top3 dep slowMid quick both
    failIn fragile side onFragile;
  useA = use "use-a" "hop1";
  useB = use "use-b" "hop2";
  useC = use "use-c" "hop3";
}
