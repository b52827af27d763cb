{
  description = "sluice, a build-farm queue runner for Nix, a drop-in for Hydra's queue runner";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAll (pkgs: rec {
        sluice = pkgs.callPackage ./package.nix { };
        default = sluice;
      });

      overlays.default = final: prev: { sluice = final.callPackage ./package.nix { }; };

      devShells = forAll (pkgs: {
        default = pkgs.mkShell {
          inputsFrom = [ self.packages.${pkgs.stdenv.hostPlatform.system}.sluice ];
          packages = [
            pkgs.clang-tools
            pkgs.postgresql
            pkgs.sqlite
            pkgs.jq
            pkgs.tmux
            pkgs.nix
          ];
        };
      });

      nixosModules.default = {
        imports = [ ./contrib/nixos/module.nix ];
        nixpkgs.overlays = [ self.overlays.default ];
      };

      checks = forAll (pkgs: {
        sluice = self.packages.${pkgs.stdenv.hostPlatform.system}.sluice;
      });
    };
}
