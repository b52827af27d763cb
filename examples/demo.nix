# A small derivation graph that shows every kind of derivation sluice handles:
#
#   src       fixed-output   (flat sha256 of its content)
#   greeting  input-addressed, two outputs (out, doc), depends on src
#   caBase    content-addressed (floating), depends on greeting (IA)
#   caNext    content-addressed, depends on caBase (CA on CA)
#   report    input-addressed on a CA input, hence deferred: its output path is known
#             only once caNext is built; depends on caNext and greeting.out
#
# The file evaluates to `report`; the other nodes are attributes of it:
#   nix-instantiate examples/demo.nix              the whole graph (top: report)
#   nix-instantiate examples/demo.nix -A caNext    one node and what it needs
#   sluice drv graph examples/demo.nix --argstr salt s1
#
# `salt` (default "") goes into every derivation, so a fresh salt gives a graph that
# has never been built.  Keep it to letters, digits and '-'.
#
# Builders get no PATH: they are `/bin/sh -c '...'` scripts using shell builtins only
# (printf, read, redirections).  CA derivations need the `ca-derivations` experimental
# feature (sluice passes it to nix-instantiate; set it in nix.conf to build with Nix).
{ salt ? "" }:
let
  system = "x86_64-linux";
  sh = script: { builder = "/bin/sh"; args = [ "-c" script ]; };
  ca = { __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256"; };

  srcText = "demo source ${salt}\n";
  src = derivation (sh "printf '%s\\n' 'demo source ${salt}' > $out" // {
    name = "demo-src";
    inherit system;
    outputHashMode = "flat";
    outputHashAlgo = "sha256";
    outputHash = builtins.hashString "sha256" srcText;
  });

  greeting = derivation (sh ''
    read line < ${src}
    printf 'hello from %s\n' "$line" > $out
    printf 'greeting %s: documentation\n' '${salt}' > $doc
  '' // {
    name = "demo-greeting";
    inherit system;
    outputs = [ "out" "doc" ];
  });

  caBase = derivation (sh ''
    read line < ${greeting}
    printf 'ca-base: %s\n' "$line" > $out
  '' // ca // {
    name = "demo-ca-base";
    inherit system;
  });

  caNext = derivation (sh ''
    read line < ${caBase}
    printf 'ca-next: %s\n' "$line" > $out
  '' // ca // {
    name = "demo-ca-next";
    inherit system;
  });

  report = derivation (sh ''
    read a < ${caNext}
    read b < ${greeting.out}
    printf '%s\n%s\nsalt: %s\n' "$a" "$b" '${salt}' > $out
  '' // {
    name = "demo-report";
    inherit system;
  });
in
report // { inherit src greeting caBase caNext report; }
