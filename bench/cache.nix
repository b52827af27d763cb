# bench/cache.nix: outputs to publish for bench/cache.sh: `nbig` outputs of `bigMiB` MiB
# of random bytes, `nsmall` small outputs (each referring to the one before it), and one
# `largeMiB` output (the memory measurement).  `salt` makes them new.
{ salt ? "", nbig ? 4, bigMiB ? 8, nsmall ? 100, largeMiB ? 256 }:
let
  mk = name: script: derivation {
    inherit name;
    system = "x86_64-linux";
    builder = "/bin/sh";
    args = [ "-c" script ];
    SALT = salt;
  };
  random = name: mib: mk name ''
    /bin/dd if=/dev/urandom of=$out bs=1M count=${toString mib} status=none
    echo "$SALT" >> $out
  '';
  smalls = builtins.genList (i: i) nsmall;
  small = i: mk "small-${toString i}"
    (if i == 0 then ''echo "$SALT 0" > $out''
     else ''echo "$SALT ${toString i} ${small (i - 1)}" > $out'');
in
{
  big = map (i: random "big-${toString i}" bigMiB) (builtins.genList (i: i) nbig);
  small = map small smalls;
  large = random "large" largeMiB;
}
