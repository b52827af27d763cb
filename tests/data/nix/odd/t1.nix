{
  weird = builtins.derivation { name = "weird"; system = "x86_64-linux"; builder = "/bin/sh"; outputs = ["out" "a+b" "A"];
    v1 = "ctl \x01 \x7f del \x08 bs \x0c ff";
    v2 = "q\" b\\ n\n t\t r\r é ☃";
    "k\"ey\n" = "kv";
    args = ["-c" "a\nb"];
  };
  sys = builtins.derivation { name = "sys"; system = "x86\n_64\t-linux"; builder = "/bin/sh"; };
}
