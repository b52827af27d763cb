# Workload of the crash tests: a layered DAG of content-addressed derivations (as
# bench/dag.nix, n nodes in `layers` layers, 2-3 deps each) plus a failing CA job and a
# CA job depending on it.  Every builder appends its name to `counter` (a file outside
# the store) before it writes its output, so the tests can count real builds.
#   nix-instantiate crash.nix --argstr salt s1 --argstr counter /tmp/c [--argstr n 200]
{ n ? "200", layers ? "10", salt ? "0", counter }:
let
  L = builtins.fromJSON layers;
  w = (builtins.fromJSON n) / L;
  mod = a: b: a - (a / b) * b;
  ca = { __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256"; };
  depIdx = j: [ j (mod (7 * j + 1) w) ] ++ (if mod j 2 == 1 then [ (mod (13 * j + 5) w) ] else []);
  uniq = xs: builtins.attrNames (builtins.listToAttrs (map (x: { name = toString x; value = null; }) xs));
  mk = name: script: derivation ({
    inherit name;
    system = "x86_64-linux";
    builder = "/bin/sh";
    args = [ "-c" "echo ${name} >> ${counter}; ${script}" ];
  } // ca);
  node = l: j:
    let deps = if l == 0 then [] else map (k: builtins.elemAt (builtins.elemAt grid (l - 1)) (builtins.fromJSON k)) (uniq (depIdx j));
    in mk "c-${salt}-${toString l}-${toString j}" "echo ${salt} ${toString l} ${toString j} ${toString deps} > $out";
  grid = builtins.genList (l: builtins.genList (j: node l j) w) L;
  fails = mk "c-${salt}-fails" "echo failing on purpose; exit 1";
  afterFail = mk "c-${salt}-after-fail" "echo ${fails} > $out";
in
  builtins.listToAttrs (builtins.genList (j: { name = "top${toString j}"; value = builtins.elemAt (builtins.elemAt grid (L - 1)) j; }) w)
  // { inherit fails afterFail; }
