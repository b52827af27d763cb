# Small derivations for the runner's integration tests (tests/runner/*.test.sh).
#
# `salt` goes into every derivation, so a fresh salt gives derivations that were never
# built.  `dir` is a scratch directory of the test outside the store: builders run
# without a sandbox, so a test steers them through files there (`ok` makes `flaky`
# succeed, `go` releases `gate`) and reads what they write (`order`).  Builders get no
# PATH: /bin/sh with its builtins and absolute tools (/bin/mkdir, /bin/sleep).
{ salt ? "", dir ? "/nonexistent" }:
let
  system = builtins.currentSystem;
  mk = name: script: extra: derivation ({
    inherit name system salt;
    builder = "/bin/sh";
    args = [ "-c" script ];
  } // extra);
  sh = name: script: mk name script { };

  # fails for good (exit 1)
  broken = sh "broken" ''
    echo "broken ${salt}: about to fail"
    exit 1
  '';
  # fails until the test creates ${dir}/ok (flaky2: ${dir}/ok2)
  flakyOn = name: flag: sh name ''
    echo "${name} ${salt}: looking for ${dir}/${flag}"
    [ -e ${dir}/${flag} ] || exit 1
    echo ${name} > $out
  '';
  flaky = flakyOn "flaky" "ok";
  # waits until the test creates ${dir}/go (gate2: go2, ...; at most a minute), then
  # succeeds
  gateOn = name: flag: sh name ''
    echo "${name} ${salt}: waiting"
    i=0
    while [ ! -e ${dir}/${flag} ] && [ $i -lt 600 ]; do /bin/sleep 0.1; i=$((i + 1)); done
    echo ${name} > $out
  '';
  gate = gateOn "gate" "go";
  # records its name in ${dir}/order (dispatch order with one slot)
  orderedWith = name: extra: mk name ''
    echo ${name} >> ${dir}/order
    echo ${name} > $out
  '' extra;
  ordered = name: orderedWith name { };
  fod = mk "fod" ''
    echo "fod ${salt}: building"
    printf 'fod %s\n' '${salt}' > $out
  '' {
    outputHashMode = "flat";
    outputHashAlgo = "sha256";
    outputHash = builtins.hashString "sha256" "fod ${salt}\n";
  };
  # a fixed-output derivation failing until ${dir}/${flag} exists: Nix reports a failed
  # fixed-output build as a transient failure (retried)
  fodFlakyOn = name: flag: mk name ''
    echo "${name} ${salt}: looking for ${dir}/${flag}"
    [ -e ${dir}/${flag} ] || exit 1
    printf '%s %s\n' ${name} '${salt}' > $out
  '' {
    outputHashMode = "flat";
    outputHashAlgo = "sha256";
    outputHash = builtins.hashString "sha256" "${name} ${salt}\n";
  };
  mid = sh "mid" ''
    echo "mid ${salt}: building"
    echo mid > $out
  '';
in
{
  # status 0: an empty directory
  empty = sh "empty" ''
    echo "empty ${salt}: building an empty directory"
    /bin/mkdir $out
  '';
  # status 1
  fail = broken;
  # status 6: succeeds, but nix-support/failed
  failedOutput = sh "failed-output" ''
    /bin/mkdir -p $out/nix-support
    echo "tests failed" > $out/nix-support/failed
  '';
  # status 0 with a release name, a product and metrics
  products = sh "products" ''
    /bin/mkdir -p $out/nix-support
    printf 'product of %s\n' '${salt}' > $out/manual.txt
    echo "doc manual $out/manual.txt" > $out/nix-support/hydra-build-products
    echo "products-1.0" > $out/nix-support/hydra-release-name
    printf 'speed 42.5 s\nsize 7\n' > $out/nix-support/hydra-metrics
  '';
  # two builds sharing a failing dependency, and a third one for the cached failure
  depA = sh "dep-a" "read x < ${flaky}; echo a > $out";
  depB = sh "dep-b" "read x < ${flaky}; echo b > $out";
  depC = sh "dep-c" "read x < ${flaky}; echo c > $out";
  inherit flaky gate fod mid;
  flaky2 = flakyOn "flaky2" "ok2";
  fodFlaky = fodFlakyOn "fod-flaky" "fixed";
  fodFlaky2 = fodFlakyOn "fod-flaky2" "fixed2";
  onFod = sh "on-fod" "read x < ${fod}; echo on-fod > $out";
  onMid = sh "on-mid" "read x < ${mid}; echo on-mid > $out";
  onGate = sh "on-gate" "read x < ${gate}; echo on-gate > $out";
  # status 7 with meta.timeout = 1
  slow = sh "slow" "/bin/sleep 30; echo slow > $out" // { meta.timeout = 1; };
  # status 10 with a small max-log-size
  chatty = sh "chatty" ''
    i=0
    while [ $i -lt 2000 ]; do echo "line $i of a long log ${salt}"; i=$((i + 1)); done
    echo chatty > $out
  '';
  # status 11 with a small max-output-size
  big = sh "big" ''
    i=0
    while [ $i -lt 200 ]; do echo "some output bytes $i ${salt}"; i=$((i + 1)); done > $out
  '';
  # status 9: no machine has this system
  alien = mk "alien" "exit 1" { system = "riscv-alien"; };
  # content-addressed (floating)
  ca = mk "ca" ''
    echo "ca ${salt}" > $out
  '' { __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256"; };
  gate2 = gateOn "gate2" "go2";
  gate3 = gateOn "gate3" "go3";
  gate4 = gateOn "gate4" "go4";
  gate5 = gateOn "gate5" "go5";
  orderA = ordered "order-a";
  orderB = ordered "order-b";
  orderC = ordered "order-c";
  orderD = ordered "order-d";
  orderE = ordered "order-e";
  orderF = ordered "order-f";
  orderG = ordered "order-g";
  # needing features (a machine type of their own each)
  orderBig = orderedWith "order-big" { requiredSystemFeatures = [ "big" ]; };
  orderKvm = orderedWith "order-kvm" { requiredSystemFeatures = [ "kvm" ]; };
  orderBigKvm = orderedWith "order-big-kvm" { requiredSystemFeatures = [ "big" "kvm" ]; };
  orderPlain = ordered "order-plain";
  orderPlain2 = ordered "order-plain2";
  # a different output at every round (the builder's process id)
  nondet = sh "nondet" "echo ${salt} $$ > $out";
  # ... in a derivation that asks Hydra's runner to check it (isDetermistic, sic)
  nondetChecked = mk "nondet-checked" "echo ${salt} $$ > $out" { isDetermistic = "1"; };
  det = sh "det" "echo ${salt} > $out";
}
