# Derivations for the HTTP tests.  `top` is content-addressed and depends on the
# content-addressed `dep`, so the runner resolves it (a status-13 row, then a step for
# the resolved drv); it prints a known log and sleeps, so the tests can look at a build
# while it runs.  `victim` sleeps long enough to be cancelled while it runs.
# `salt` makes every test run's derivations new.
{ salt ? "x", sleep ? "5" }:
let
  ca = { __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256"; };
  dep = derivation ({
    name = "http-dep-${salt}";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" "echo dep-log; echo dep > $out" ];
  } // ca);
in {
  inherit dep;
  top = derivation ({
    name = "http-top-${salt}";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" ''
      echo start
      i=0; while [ $i -lt 60 ]; do echo "line-$i"; i=$((i+1)); done
      /bin/sleep ${sleep}
      read v < ${dep}
      echo "$v" > $out
      echo end
    '' ];
  } // ca);
  victim = derivation {
    name = "http-victim-${salt}";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" "echo victim; /bin/sleep 30; echo > $out" ];
  };
}
