# tests/ca/nix/content-addressed.nix: ten jobs around content-addressed (CA) derivations,
# the cases Hydra's own content-addressed suite covers:
#
#   empty_dir                     CA, an empty directory (no inputs: resolves to itself)
#   fails                         CA, the builder fails (build status 1)
#   succeed_with_failed           CA, succeeds with nix-support/failed (build status 6)
#   caDependingOnCA               CA on CA (resolved)
#   caDependingOnCADependingOnCA  CA on CA on CA (resolved twice down the chain)
#   caDependingOnFailingCA        CA on a failing CA (build status 2, never resolved)
#   nonCaDependingOnCA            input-addressed on CA: deferred output, filled when resolved
#   multiOutput                   CA with three outputs, on CA (resolved)
#   caRewrite                     CA whose output refers to itself
#   caRewriteMulti                CA with two outputs referring to each other's paths
#                                 (out -> lib, lib -> itself), on caRewrite (resolved)
#
# `salt` goes into every derivation (and into every output except the empty directory)
# so each run gets derivations never built before.  Builders have no PATH: shell
# builtins and absolute paths only.
{ salt ? "" }:
let
  system = "x86_64-linux";
  ca = { __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256"; };
  mk = name: script: extra: derivation ({
    inherit name system;
    builder = "/bin/sh";
    args = [ "-c" script ];
    SALT = salt;
  } // extra);
  mkCA = name: script: extra: mk name script (ca // extra);
in
rec {
  empty_dir = mkCA "empty-dir" "/bin/mkdir $out" { };

  fails = mkCA "fails" "echo 'failing on purpose'; exit 1" { };

  succeed_with_failed = mkCA "succeed-with-failed" ''
    /bin/mkdir -p $out/nix-support
    echo "$SALT" > $out/result
    : > $out/nix-support/failed
  '' { };

  caDependingOnCA = mkCA "ca-depending-on-ca" ''
    /bin/mkdir $out
    echo "$SALT" > $out/salt
    echo "$FOO" > $out/foo
  '' { FOO = empty_dir; };

  caDependingOnCADependingOnCA = mkCA "ca-depending-on-ca-depending-on-ca" ''
    /bin/mkdir $out
    echo "$SALT" > $out/salt
    echo "$FOO" > $out/foo
  '' { FOO = caDependingOnCA; };

  caDependingOnFailingCA = mkCA "ca-depending-on-failing-ca" ''
    /bin/mkdir $out
    echo "$FOO" > $out/foo
  '' { FOO = fails; };

  nonCaDependingOnCA = mk "non-ca-depending-on-ca" ''
    /bin/mkdir $out
    echo "$SALT" > $out/salt
    echo "$FOO" > $out/foo
  '' { FOO = empty_dir; };

  multiOutput = mkCA "multi-output" ''
    echo "out $SALT $FOO" > $out
    echo "bin $SALT" > $bin
    echo "lib $SALT" > $lib
  '' { outputs = [ "out" "bin" "lib" ]; FOO = empty_dir; };

  caRewrite = mkCA "ca-rewrite" ''
    /bin/mkdir $out
    echo "$SALT" > $out/salt
    echo "$out" > $out/self
  '' { };

  caRewriteMulti = mkCA "ca-rewrite-multi" ''
    /bin/mkdir $out $lib
    echo "$SALT $FOO" > $out/salt
    echo "$lib" > $out/lib
    echo "$out" > $out/self
    echo "$lib" > $lib/self
  '' { outputs = [ "out" "lib" ]; FOO = caRewrite; };
}
