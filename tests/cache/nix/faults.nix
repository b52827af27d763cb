# tests/cache/nix/faults.nix: jobs for the binary-cache fault tests.  `big` writes `size`
# MiB of random bytes (incompressible: its upload takes a while); `onSmall` refers to
# `small`, so publishing it publishes a closure of two paths; `usesBig` reads `big` while
# it builds and does not refer to it (`big` is a build-time dependency only).
{ salt ? "", size ? 16 }:
let
  mk = name: script: derivation {
    inherit name;
    system = "x86_64-linux";
    builder = "/bin/sh";
    args = [ "-c" script ];
    SALT = salt;
  };
in
rec {
  small = mk "small" ''echo "$SALT" > $out'';
  onSmall = mk "on-small" ''echo "$SALT ${small}" > $out'';
  lone = mk "lone" ''echo "$SALT lone" > $out'';
  big = mk "big" ''
    /bin/dd if=/dev/urandom of=$out bs=1M count=${toString size} status=none
    echo "$SALT" >> $out
  '';
  usesBig = mk "uses-big" ''test -s ${big} && echo "$SALT uses big" > $out'';
}
