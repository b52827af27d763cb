# preferLocalBuild as Hydra's runner reads it (tests/runner/hydra-local.test.sh).
{ salt ? "" }:
let
  mk = name: extra: derivation ({
    inherit name salt;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" "echo ${name} > $out" ];
  } // extra);
in
{
  preferLocal = mk "prefer-local" { preferLocalBuild = true; };
  plain = mk "plain-remote" { };
}
