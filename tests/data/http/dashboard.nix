# Derivations for the dashboard test.  `top` is content-addressed and depends on the
# content-addressed `dep`, so the runner resolves it (a status-13 row for `top`, then
# a step for the resolved drv).  The resolved drv prints a line every 0.2 s (its log
# grows while it runs), with some UTF-8 and a tab on the way, until `ticks` lines or
# until the file `release` exists (the test decides when it ends; builds run without a
# sandbox in the tests).
# `quick` succeeds at once with an empty log, `broken` fails, `foreign` is for another system.  `salt`
# makes every run's derivations new.
{ salt ? "x", ticks ? "100", release ? "" }:
let
  ca = { __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256"; };
  dep = derivation ({
    name = "dash-dep-${salt}";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" "echo dep-log; echo dep > $out" ];
  } // ca);
in {
  inherit dep;
  top = derivation ({
    name = "dash-top-${salt}";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" ''
      echo "start grüße ✓"
      i=0
      while [ $i -lt ${ticks} ]; do
        printf 'tick-%d\t<b>&\n' $i; i=$((i+1))
        if [ -n "${release}" ] && [ -e "${release}" ]; then break; fi
        /bin/sleep 0.2
      done
      read v < ${dep}
      echo "$v" > $out
      echo end
    '' ];
  } // ca);
  quick = derivation {
    name = "dash-quick-${salt}";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" "echo > $out" ]; # prints nothing: its log is empty
  };
  # for a machine that cannot be reached (the test's machines file), so it is disabled
  foreign = derivation {
    name = "dash-foreign-${salt}";
    system = "aarch64-linux";
    builder = "/bin/sh";
    args = [ "-c" "echo > $out" ];
  };
  broken = derivation {
    name = "dash-broken-${salt}";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" "echo going to fail; exit 1" ];
  };
}
