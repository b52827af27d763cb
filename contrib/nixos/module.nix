# NixOS module: services.sluice, the queue runner as a hardened systemd service.
#
#   imports = [ ./contrib/nixos/module.nix ];   # or the flake's nixosModules.default
#   services.sluice = {
#     enable = true;
#     database.type = "postgresql";              # a local PostgreSQL database "sluice"
#     machines = [ { uri = "ssh-ng://builder@b1"; systems = [ "x86_64-linux" ];
#                    sshKey = "/etc/sluice/id_ed25519"; maxJobs = 8; } ];
#     adminTokenFile = "/run/secrets/sluice-token.conf";  # "http-admin-token = ..."
#     settings.max-log-size = 134217728;
#   };
#
# The configuration is /etc/sluice/sluice.conf (sluice.conf(5)), generated from
# `settings`; secrets stay out of the Nix store through `!include` of adminTokenFile.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.services.sluice;
  inherit (lib)
    mkOption
    mkEnableOption
    mkIf
    types
    ;

  machineLine =
    m:
    lib.concatStringsSep " " [
      m.uri
      (if m.systems == [ ] then "-" else lib.concatStringsSep "," m.systems)
      (if m.sshKey == null then "-" else toString m.sshKey)
      (toString m.maxJobs)
      (toString m.speedFactor)
      (if m.supportedFeatures == [ ] then "-" else lib.concatStringsSep "," m.supportedFeatures)
      (if m.mandatoryFeatures == [ ] then "-" else lib.concatStringsSep "," m.mandatoryFeatures)
      (if m.publicHostKey == null then "-" else m.publicHostKey)
    ];

  machinesFile = pkgs.writeText "sluice-machines" (
    lib.concatMapStrings (m: machineLine m + "\n") cfg.machines
  );

  dbUrl =
    if cfg.database.type == "postgresql" then
      "postgresql://${cfg.user}@/${cfg.database.name}?host=/run/postgresql"
    else
      "sqlite:${cfg.stateDir}/sluice.db";

  value = v: if lib.isBool v then lib.boolToString v else toString v;

  allSettings =
    {
      db = dbUrl;
      http = "${cfg.http.address}:${toString cfg.http.port}";
      store = "daemon";
    }
    // lib.optionalAttrs (cfg.machines != [ ]) { machines = toString machinesFile; }
    // cfg.settings;

  confText =
    lib.concatStrings (lib.mapAttrsToList (k: v: "${k} = ${value v}\n") allSettings)
    + lib.optionalString (cfg.adminTokenFile != null) "!include ${toString cfg.adminTokenFile}\n";
in
{
  options.services.sluice = {
    enable = mkEnableOption "sluice, a build-farm queue runner for Nix";

    package = mkOption {
      type = types.package;
      default = pkgs.sluice or (pkgs.callPackage ../../package.nix { });
      defaultText = lib.literalExpression "pkgs.sluice";
      description = "The sluice package.";
    };

    user = mkOption {
      type = types.str;
      default = "sluice";
      description = "User sluice runs as; it is made a trusted user of the nix-daemon.";
    };

    group = mkOption {
      type = types.str;
      default = "sluice";
      description = "Group sluice runs as.";
    };

    stateDir = mkOption {
      type = types.str;
      default = "/var/lib/sluice";
      description = "State directory (SQLite database, logs, GC roots); must be under /var/lib.";
    };

    settings = mkOption {
      type = types.attrsOf (
        types.oneOf [
          types.str
          types.int
          types.bool
          types.float
        ]
      );
      default = { };
      example = {
        max-log-size = 134217728;
        keep-outputs-days = 30;
      };
      description = "Keys of sluice.conf(5); they override the values this module derives.";
    };

    machines = mkOption {
      default = [ ];
      description = "Build machines (Nix's machines file format); empty: the local store builds.";
      type = types.listOf (
        types.submodule {
          options = {
            uri = mkOption {
              type = types.str;
              description = "ssh://user@host or ssh-ng://user@host.";
            };
            systems = mkOption {
              type = types.listOf types.str;
              default = [ ];
            };
            sshKey = mkOption {
              type = types.nullOr types.str;
              default = null;
            };
            maxJobs = mkOption {
              type = types.ints.positive;
              default = 1;
            };
            speedFactor = mkOption {
              type = types.ints.positive;
              default = 1;
            };
            supportedFeatures = mkOption {
              type = types.listOf types.str;
              default = [ ];
            };
            mandatoryFeatures = mkOption {
              type = types.listOf types.str;
              default = [ ];
            };
            publicHostKey = mkOption {
              type = types.nullOr types.str;
              default = null;
              description = "Base64 public host key, as in Nix's machines file.";
            };
          };
        }
      );
    };

    http = {
      address = mkOption {
        type = types.str;
        default = "127.0.0.1";
        description = "Address of the HTTP server (status, metrics, dashboard).";
      };
      port = mkOption {
        type = types.port;
        default = 8198;
      };
    };

    adminTokenFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = ''
        A file holding the line `http-admin-token = TOKEN`, included by sluice.conf at run
        time so the token never enters the Nix store.
      '';
    };

    database = {
      type = mkOption {
        type = types.enum [
          "sqlite"
          "postgresql"
        ];
        default = "sqlite";
        description = "SQLite in the state directory, or a local PostgreSQL database.";
      };
      name = mkOption {
        type = types.str;
        default = "sluice";
        description = "PostgreSQL: the database (owned by the sluice user).";
      };
      createLocally = mkOption {
        type = types.bool;
        default = true;
        description = "PostgreSQL: create the database and its user on this host.";
      };
    };
  };

  config = mkIf cfg.enable {
    users.users.${cfg.user} = {
      isSystemUser = true;
      inherit (cfg) group;
      home = cfg.stateDir;
    };
    users.groups.${cfg.group} = { };

    nix.settings.trusted-users = [ cfg.user ];

    environment.etc."sluice/sluice.conf".text = confText;
    environment.systemPackages = [ cfg.package ];

    services.postgresql = mkIf (cfg.database.type == "postgresql" && cfg.database.createLocally) {
      enable = true;
      ensureDatabases = [ cfg.database.name ];
      ensureUsers = [
        {
          name = cfg.user;
          ensureDBOwnership = cfg.database.name == cfg.user;
        }
      ];
    };

    systemd.services.sluice = {
      description = "sluice, a build-farm queue runner for Nix";
      wantedBy = [ "multi-user.target" ];
      after = [
        "network-online.target"
        "nix-daemon.socket"
      ] ++ lib.optional (cfg.database.type == "postgresql") "postgresql.service";
      wants = [ "network-online.target" ];
      requires = lib.optional (
        cfg.database.type == "postgresql" && cfg.database.createLocally
      ) "postgresql.service";
      restartTriggers = [ confText ];
      path = [
        config.nix.package
        pkgs.openssh
      ];
      preStart = "${lib.getExe cfg.package} db init >/dev/null";
      serviceConfig = {
        Type = "notify";
        NotifyAccess = "main";
        WatchdogSec = 60;
        ExecStart = "${lib.getExe cfg.package} run";
        ExecReload = "${pkgs.coreutils}/bin/kill -HUP $MAINPID";
        User = cfg.user;
        Group = cfg.group;
        StateDirectory = lib.removePrefix "/var/lib/" cfg.stateDir;
        StateDirectoryMode = "0750";
        WorkingDirectory = cfg.stateDir;
        UMask = "0027";
        KillMode = "mixed";
        TimeoutStopSec = 120;
        Restart = "on-failure";
        RestartSec = 10;
        LimitNOFILE = 65536;
        NoNewPrivileges = true;
        CapabilityBoundingSet = "";
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        PrivateMounts = true;
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectClock = true;
        ProtectHostname = true;
        ProtectProc = "invisible";
        ProcSubset = "pid";
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        LockPersonality = true;
        MemoryDenyWriteExecute = true;
        RemoveIPC = true;
        RestrictAddressFamilies = [
          "AF_UNIX"
          "AF_INET"
          "AF_INET6"
        ];
        SystemCallArchitectures = "native";
        SystemCallFilter = [
          "@system-service"
          "~@privileged @resources"
        ];
      };
    };
  };
}
