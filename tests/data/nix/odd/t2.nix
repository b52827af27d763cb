{
  ctl = builtins.derivation { name = "ctl"; system = "x86_64-linux"; builder = "/bin/sh";
    v1 = builtins.fromJSON "\"a\\u0001b\\u0008c\\u000cd\\u001fe\\u007ff\"";
    v2 = builtins.readFile ./bad.bin;
    
  };
  sys = builtins.derivation { name = "sys"; system = "x86\n_64\t-linux"; builder = "/bin/sh"; };
  sysq = builtins.derivation { name = "sysq"; system = "x86\"_64\\-linux"; builder = "/bin/sh"; };
  outsp = builtins.derivation { name = "outsp"; system = "x86_64-linux"; builder = "/bin/sh"; outputs = ["out" "a b"]; };
  outsp2 = builtins.derivation { name = "outsp"; system = "x86_64-linux"; builder = "/bin/sh"; outputs = ["out" "a\"b"]; __contentAddressed = true; };
}
