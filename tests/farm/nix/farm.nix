# Derivations for the farm and builder-failure tests (tests/farm, tests/failures).
#
# `salt` goes into every derivation, so a fresh salt gives derivations never built
# anywhere.  `dir` is a scratch directory of the test outside the store (builders run
# without a sandbox, /tmp is shared with the builder hosts): builders leave marks there
# and wait for files the test creates.  Builders get no PATH: /bin/sh with its builtins
# and absolute tools.  Every builder prints "farm-mark <name> <salt>" in its process
# arguments, so a test finds (or misses) it in a builder host's process list.
{ salt ? "", dir ? "/nonexistent", n ? 12, sleep ? "2" }:
let
  system = builtins.currentSystem;
  mk = name: script: extra: derivation ({
    inherit name system salt;
    builder = "/bin/sh";
    args = [ "-c" script "farm-mark ${name} ${salt}" ];
  } // extra);
  ca = { __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256"; };
  catAll = deps: ''
    for f in ${toString deps}; do read l < $f; echo "$l"; done > $out
  '';

  # n independent leaves sleeping `sleep` seconds each
  leaf = i: mk "leaf-${toString i}" ''
    /bin/sleep ${sleep}
    echo "leaf ${toString i} ${salt}" > $out
  '' { };
  leaves = builtins.genList leaf n;

  # an IA chain: base <- mid (IA on IA); used where inputs must travel
  base = mk "base" ''echo "base ${salt}" > $out'' { };
  mid = mk "mid" ''read l < ${base}; echo "mid $l" > $out'' { };

  # a CA chain whose links need the features hop1, hop2, hop3 (one host each), so each
  # link runs on another host; a deferred IA node on top
  hop1 = mk "hop-1" ''echo "hop1 ${salt}" > $out'' (ca // { requiredSystemFeatures = [ "hop1" ]; });
  hop2 = mk "hop-2" ''read l < ${hop1}; echo "hop2 $l" > $out'' (ca // { requiredSystemFeatures = [ "hop2" ]; });
  hop3 = mk "hop-3" ''read l < ${hop2}; read m < ${hop1}; echo "hop3 $l $m" > $out''
    (ca // { requiredSystemFeatures = [ "hop3" ]; });
  hopTop = mk "hop-top" ''read l < ${hop3}; read m < ${base}; echo "top $l $m" > $out'' { };

  # prints `lines` lines of 100 bytes as fast as it can, then stays silent a minute
  chatty = name: lines: features: mk name ''
    i=0
    while [ $i -lt ${toString lines} ]; do
      echo "chatty ${salt} line $i 0123456789012345678901234567890123456789012345678901234567890123456789"
      i=$((i + 1))
    done
    /bin/sleep 60
    echo done > $out
  '' { requiredSystemFeatures = features; };

  # silent until the test creates ${dir}/go (at most `sleep` seconds)
  gate = name: features: mk name ''
    i=0
    while [ ! -e ${dir}/go ] && [ $i -lt $((${sleep} * 5)) ]; do /bin/sleep 0.2; i=$((i + 1)); done
    echo "${name} ${salt}" > $out
  '' { requiredSystemFeatures = features; };
  cancelShared = gate "cancel-shared" [ "hop2" ];
  # a floating CA output written, then a pause until ${dir}/gc-done-<name> (a GC on the
  # builder runs meanwhile), then the output checked: it must have survived
  gcWindow = name: features: mk name ''
    echo "${name} ${salt}" > $out
    echo $out > ${dir}/wrote-${name}
    i=0
    while [ ! -e ${dir}/gc-done-${name} ] && [ $i -lt 300 ]; do /bin/sleep 0.2; i=$((i + 1)); done
    [ -e $out ] || { echo "$out was collected during the build"; exit 1; }
  '' (ca // { requiredSystemFeatures = features; });
  cancelOn = name: mk name ''read l < ${cancelShared}; echo "${name} $l" > $out'' { };
  bytesScript = ''
    printf 'bytes-nul:\000:\000\000:end\n'
    s=0123456789abcdef; i=0
    while [ $i -lt 17 ]; do s="$s$s"; i=$((i + 1)); done
    printf 'bytes-long:%s:end\n' "$s"
    printf 'bytes-garbage:\001\002\003\177\200\201\237\300\301\376\377\020:end\n'
    printf 'bytes-done\n'
  '';
  bytes = name: features: mk name ''
    ${bytesScript}
    echo "${name} ${salt}" > $out
  '' { requiredSystemFeatures = features; };
  # the same bytes, then a builder activity of 100 fields with a NUL in its text and a
  # log line of 100 fields (`@nix` messages Nix passes on), then exit 1: Nix puts the
  # last log lines, bytes and all, into the error message
  fields = builtins.concatStringsSep "," (builtins.genList (i: "\"f${toString i}\\u0000\"") 100);
  bytesFail = name: features: mk name ''
    printf '%s\n' '@nix {"action":"start","id":4242,"level":0,"type":101,"text":"nul\u0000text","fields":[${fields}]}'
    printf '%s\n' '@nix {"action":"result","id":4242,"type":101,"fields":[${fields}]}'
    ${bytesScript}
    exit 1
  '' { requiredSystemFeatures = features; };
in
{
  inherit leaves base mid hopTop;

  # the top of n leaves
  spread = mk "spread" (catAll leaves) { };

  # needs the `extra` feature (one host has it)
  extra = mk "extra" ''echo "extra ${salt}" > $out'' { requiredSystemFeatures = [ "extra" ]; };
  # needs `big`, a mandatory feature of one host (nothing else may run there)
  big = mk "big" ''echo "big ${salt}" > $out'' { requiredSystemFeatures = [ "big" ]; };
  # system "builtin" (builtin:fetchurl of a file the test wrote): any host may run it
  fetched = import <nix/fetchurl.nix> {
    url = "file://${dir}/blob";
    sha256 = builtins.hashFile "sha256" (/. + "${dir}/blob");
  };
  # a feature no host has
  quantum = mk "quantum" ''echo quantum > $out'' { requiredSystemFeatures = [ "quantum" ]; };
  # a system no host has
  alien = mk "alien" ''echo alien > $out'' { system = "riscv64-none"; };

  # sleeps `sleep` seconds in silence (crash, cut, cancel tests)
  silent = mk "silent" ''/bin/sleep ${sleep}; echo "silent ${salt}" > $out'' { };
  silent2 = mk "silent2" ''/bin/sleep ${sleep}; echo "silent2 ${salt}" > $out'' { };
  # prints a line every half second for `sleep` seconds
  ticking = mk "ticking" ''
    i=0
    while [ $i -lt $((${sleep} * 2)) ]; do echo "tick $i"; /bin/sleep 0.5; i=$((i + 1)); done
    echo "ticking ${salt}" > $out
  '' { };
  # a build that waits on `silent` (timeout propagation to dependents)
  afterSilent = mk "after-silent" ''read l < ${(mk "silent" ''/bin/sleep ${sleep}; echo "silent ${salt}" > $out'' { })}; echo "after $l" > $out'' { };
  # 2 MB of log on b1 (hop1), on b2 (hop2), on a host with the mandatory feature liar
  chatty1 = chatty "chatty-1" 20000 [ "hop1" ];
  chatty2 = chatty "chatty-2" 20000 [ "hop2" ];
  chattyLiar = chatty "chatty-liar" 20000 [ "liar" ];
  # silent until ${dir}/go exists: on b1, on b2
  gate1 = gate "gate-1" [ "hop1" ];
  gate2 = gate "gate-2" [ "hop2" ];
  # cancellation: cancel-x on b1; cancel-a and cancel-b both need cancel-shared (b2)
  cancelX = gate "cancel-x" [ "hop1" ];
  cancelA = cancelOn "cancel-a";
  cancelB = cancelOn "cancel-b";
  # a GC on the builder while the scratch output exists: on b1, on b2
  gcWindow1 = gcWindow "gc-window-1" [ "hop1" ];
  gcWindow2 = gcWindow "gc-window-2" [ "hop2" ];
  # 200 kB of output
  fat = mk "fat" ''
    i=0
    while [ $i -lt 2000 ]; do
      echo "fat ${salt} 01234567890123456789012345678901234567890123456789012345678901234567890123456789012"
      i=$((i + 1))
    done > $out
  '' { };
  # a log of bytes, not text: NUL bytes, a 2 MiB line, binary garbage (high bytes,
  # control characters; tests/failures/bytes.test.sh prints the same bytes with
  # bytesScript) -- on the local store, on b1 (hop1), on b2 (hop2)
  bytesLocal = bytes "bytes-local" [ ];
  bytes1 = bytes "bytes-1" [ "hop1" ];
  bytes2 = bytes "bytes-2" [ "hop2" ];
  bytesFailLocal = bytesFail "bytes-fail-local" [ ];
  bytesFail1 = bytesFail "bytes-fail-1" [ "hop1" ];
  bytesFail2 = bytesFail "bytes-fail-2" [ "hop2" ];
  inherit bytesScript;
  # a different output at every round (the builder's process id), on b1 (hop1, ssh://)
  # and b2 (hop2, ssh-ng://); the checked ones ask for it (isDetermistic, sic)
  nondet1 = mk "nondet-1" ''echo "${salt} $$" > $out'' { requiredSystemFeatures = [ "hop1" ]; };
  nondet2 = mk "nondet-2" ''echo "${salt} $$" > $out'' { requiredSystemFeatures = [ "hop2" ]; };
  nondetChecked1 = mk "nondet-checked-1" ''echo "${salt} $$" > $out''
    { requiredSystemFeatures = [ "hop1" ]; isDetermistic = "1"; };
  nondetChecked2 = mk "nondet-checked-2" ''echo "${salt} $$" > $out''
    { requiredSystemFeatures = [ "hop2" ]; isDetermistic = "1"; };
  # for a peer whose reply to the build makes no sense (feature garble)
  garbled = mk "garbled" ''echo "garbled ${salt}" > $out'' { requiredSystemFeatures = [ "garble" ]; };
}
