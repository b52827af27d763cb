# The smallest job: one input-addressed derivation without inputs, writing one file.
#   nix-instantiate examples/hello.nix --argstr salt s1
# `salt` (default "") changes the derivation, so a fresh salt gives a fresh build.
# The builder gets no PATH: it is a `/bin/sh -c` script using the printf builtin.
{ salt ? "" }:
derivation {
  name = "hello";
  system = "x86_64-linux";
  builder = "/bin/sh";
  args = [ "-c" "printf 'Hello, world! %s\\n' '${salt}' > $out" ];
}
