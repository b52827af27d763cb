# sluice as a Nix package (callPackage-style):
#   pkgs.callPackage ./package.nix { }
# The build is the Makefile's: `make` then `make install PREFIX=$out` (binary, man
# pages, the systemd unit, documentation).  sluice runs nix-store, nix-instantiate,
# nix-daemon and ssh: they are put on its PATH.
{
  lib,
  stdenv,
  makeWrapper,
  pkg-config,
  sqlite,
  postgresql,
  openssl,
  jansson,
  libmicrohttpd,
  zstd,
  xz,
  bzip2,
  curl,
  nix,
  openssh,
}:

stdenv.mkDerivation {
  pname = "sluice";
  version = lib.fileContents ./VERSION;

  src = lib.cleanSourceWith {
    src = ./.;
    filter =
      path: type:
      let
        base = baseNameOf path;
      in
      !(lib.hasPrefix "build" base || base == "ci-out" || base == "result");
  };

  nativeBuildInputs = [
    makeWrapper
    pkg-config
  ];
  buildInputs = [
    sqlite
    postgresql
    openssl
    jansson
    libmicrohttpd
    zstd
    xz
    bzip2
    curl
  ];

  buildFlags = [ "build/sluice" ];
  installFlags = [ "PREFIX=${placeholder "out"}" ];
  enableParallelBuilding = true;

  # The test suite needs a Nix store it may build in, PostgreSQL and ssh hosts: it runs
  # in the project's CI (.ci/run), not in the sandbox.
  doCheck = false;

  postInstall = ''
    wrapProgram $out/bin/sluice --prefix PATH : ${
      lib.makeBinPath [
        nix
        openssh
      ]
    }
  '';

  meta = {
    description = "Build-farm queue runner for Nix, a drop-in for Hydra's queue runner";
    license = lib.licenses.mit;
    platforms = lib.platforms.linux;
    mainProgram = "sluice";
  };
}
