# Build products, release names and metrics as Hydra's runner records them
# (tests/runner/hydra-products.test.sh).  Builders get no PATH: /bin/sh builtins and
# absolute tools only.
{ salt ? "" }:
let
  system = builtins.currentSystem;
  mk = name: script: extra: derivation ({
    inherit name system salt;
    builder = "/bin/sh";
    args = [ "-c" script ];
  } // extra);
in
{
  # no hydra-build-products: one nix-build product per directory output
  plain = mk "plain" "/bin/mkdir -p $out; echo hi > $out/f" { };
  multi = mk "multi" ''
    /bin/mkdir -p $out $doc
    echo lib > $lib
  '' { outputs = [ "out" "doc" "lib" ]; };
  # declared products: good, quoted, missing, outside, malformed
  declared = mk "declared" ''
    /bin/mkdir -p $out/nix-support
    i=0
    while [ $i -lt 3000 ]; do echo "line $i of a product ${salt} padding padding padding padding padding padding padding"; i=$((i + 1)); done > $out/big.bin
    echo manual > "$out/my manual.txt"
    echo weird > "$out/we#ird"
    {
      echo "file binary-dist $out/big.bin"
      echo "doc manual \"$out/my manual.txt\" index.html"
      echo "file missing $out/nope"
      echo "file outside /etc/passwd"
      echo "file climb $out/../../../etc/passwd"
      echo "bad!type x $out/big.bin"
      echo "doc dir $out"
      echo "doc weird $out/we#ird"
    } > $out/nix-support/hydra-build-products
    printf '  rel-1.0\n' > $out/nix-support/hydra-release-name
    printf 'm1 1.5 s\nm1 2.5 ms\nbad$name 3\nm2 4x unit!\nm3 notanumber\n' > $out/nix-support/hydra-metrics
  '' { };
  badrelease = mk "badrelease" ''
    /bin/mkdir -p $out/nix-support
    echo "bad name" > $out/nix-support/hydra-release-name
  '' { };
}
