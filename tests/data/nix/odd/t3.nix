{ imp = builtins.derivation { name = "imp"; system = "x86_64-linux"; builder = "/bin/sh"; __impure = true; outputs = ["out" "dev"]; }; }
