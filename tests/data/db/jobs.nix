# Jobs for the `sluice submit` tests: input-addressed, floating content-addressed,
# deferred (input-addressed on a CA input), multi-output, nested sets with and without
# recurseForDerivations, a list, meta fields as Hydra reads them, and arguments.
{ salt ? "0", extra ? [ ] }:
let
  mk = name: attrs: derivation ({
    inherit name;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" "echo ${name} ${salt} > $out" ];
  } // attrs);
  ca = mk "ca" { __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256"; };
in {
  ia = mk "ia" { } // {
    meta = {
      description = "an input-addressed job";
      homepage = "https://example.org/ia";
      license = [ { shortName = "mit"; } { shortName = "gpl3"; } ];
      maintainers = [ { email = "a@example.org"; } { name = "no email"; } { email = "b@example.org"; } ];
      timeout = 1234;
      maxSilent = 56;
      schedulingPriority = 7;
      isHydraChannel = true;
    };
  };
  inherit ca;
  deferred = mk "deferred" { args = [ "-c" "/bin/cat ${ca} > $out" ]; };
  multi = mk "multi" { outputs = [ "out" "dev" ]; args = [ "-c" "echo > $out; echo > $dev" ]; };
  nested = { recurseForDerivations = true; inner = mk "inner" { }; deeper = { recurseForDerivations = true; x = mk "x" { }; }; };
  hidden = { y = mk "y" { }; };
  list = [ (mk "l0" { }) (mk "l1" { }) ] ++ extra;
  notADerivation = 42;
}
