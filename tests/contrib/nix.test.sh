#!/usr/bin/env bash
# The Nix packaging evaluated against a nixpkgs checkout (NIXPKGS; what needs none, the
# parse and the package's inputs, is tests/contrib/nix-parse.test.sh): the package's name
# and version, the flake's packages/devShells/nixosModules/checks, and a NixOS system
# with services.sluice on PostgreSQL whose unit and /etc/sluice/sluice.conf are as
# documented.  Without NIXPKGS the evaluation is skipped with a message (exit 77).
source "$(dirname "$0")/../harness/env.sh"
need_nix
[ -n "${NIXPKGS:-}" ] || skip "NIXPKGS is not set: set NIXPKGS=/path/to/nixpkgs to evaluate the Nix files (tests/contrib/nix-parse.test.sh parses them)"
[ -f "$NIXPKGS/default.nix" ] || fail "NIXPKGS=$NIXPKGS is not a nixpkgs checkout"

ev() { nix-instantiate --eval --strict --json -E "$1" 2>"$T/eval.err" || fail "evaluating: $(cat "$T/eval.err")"; }
VERSION=$(cat "$ROOT/VERSION")
assert_eq "$(ev "((import $NIXPKGS { }).callPackage $ROOT/package.nix { }).name")" "\"sluice-$VERSION\"" \
    "package name"
assert_eq "$(ev "((import $NIXPKGS { }).callPackage $ROOT/package.nix { }).meta.license.spdxId")" '"MIT"' "license"
# the flake, with nixpkgs given as its input
flake="let f = import $ROOT/flake.nix; pkgs = import $NIXPKGS { system = \"x86_64-linux\"; };
  nixpkgs = { lib = pkgs.lib; legacyPackages.x86_64-linux = pkgs;
              legacyPackages.aarch64-linux = import $NIXPKGS { system = \"aarch64-linux\"; }; };
  self = f.outputs { inherit self nixpkgs; }; in self"
assert_eq "$(ev "($flake).packages.x86_64-linux.default.name")" "\"sluice-$VERSION\"" "flake package"
assert_eq "$(ev "builtins.attrNames ($flake)")" \
    '["checks","devShells","nixosModules","overlays","packages"]' "flake outputs"
ev "($flake).devShells.x86_64-linux.default.drvPath" >/dev/null
# a NixOS system using the module
sys="(import $NIXPKGS/nixos { system = \"x86_64-linux\"; configuration = {
  imports = [ $ROOT/contrib/nixos/module.nix ];
  boot.isContainer = true; system.stateVersion = \"24.11\";
  services.sluice = { enable = true; database.type = \"postgresql\";
    machines = [ { uri = \"ssh-ng://b@b1\"; systems = [ \"x86_64-linux\" ]; maxJobs = 4; } ];
    adminTokenFile = \"/run/secrets/sluice-token.conf\"; settings.max-log-size = 1234; }; }; }).config"
conf=$(ev "($sys).environment.etc.\"sluice/sluice.conf\".text" | jq -r .)
grep -qx "db = postgresql://sluice@/sluice?host=/run/postgresql" <<<"$conf" || fail "module conf db: $conf"
grep -qx "max-log-size = 1234" <<<"$conf" || fail "module conf settings: $conf"
grep -qx "!include /run/secrets/sluice-token.conf" <<<"$conf" || fail "module conf token include: $conf"
assert_eq "$(ev "($sys).systemd.services.sluice.serviceConfig.Type")" '"notify"' "module unit type"
assert_eq "$(ev "($sys).systemd.services.sluice.serviceConfig.User")" '"sluice"' "module unit user"
assert_eq "$(ev "builtins.elem \"sluice\" ($sys).nix.settings.trusted-users")" true "trusted user"
assert_eq "$(ev "($sys).services.postgresql.enable")" true "module PostgreSQL"
echo "Nix files evaluated against $NIXPKGS"
