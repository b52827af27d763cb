#!/usr/bin/env bash
# --hydra-conf FILE and $HYDRA_CONFIG: the keys of Hydra's runner that sluice
# understands become sluice's settings (seen by `sluice config`), each one it ignores
# is warned about, sluice.conf and flags override them, and a bad value stops the
# command.
source "$(dirname "$0")/../harness/env.sh"
cat >"$T/hydra.conf" <<'CONF'
max_output_size = 1000000
max_log_size = 2000000
max_unsupported_time = 30
gc_roots_dir = /nix/var/nix/gcroots/per-user/hydra/hydra-roots
store_uri = s3://example-cache
xxx-jobset-repeats = p:j:2
base_uri = https://hydra.example.org
CONF
conf() { grep "^$1 = " <<<"$out" | sed -E "s/^$1 = //; s/ +#.*//"; }

out=$("$SLUICE" config --hydra-conf "$T/hydra.conf" 2>"$T/err") || fail "config --hydra-conf"
assert_eq "$(conf max-output-size)" 1000000 "max_output_size"
assert_eq "$(conf max-log-size)" 2000000 "max_log_size"
assert_eq "$(conf max-unsupported-time)" 30 "max_unsupported_time"
assert_eq "$(conf gc-roots-dir)" /nix/var/nix/gcroots/per-user/hydra/hydra-roots "gc_roots_dir"
grep -q "ignoring store_uri = s3://example-cache" "$T/err" || fail "no warning for store_uri: $(cat "$T/err")"
assert_eq "$(conf jobset-repeats)" p:j:2 "xxx-jobset-repeats"
! grep -q "xxx-jobset-repeats" "$T/err" || fail "xxx-jobset-repeats warned about: $(cat "$T/err")"
! grep -q base_uri "$T/err" || fail "hydra-server's base_uri warned about"

# HYDRA_CONFIG as Hydra's programs read it; a flag and sluice.conf win over it
mkdir -p "$SLUICE_STATE_DIR"
printf 'max-log-size = 5\n' >"$SLUICE_STATE_DIR/sluice.conf"
out=$(HYDRA_CONFIG=$T/hydra.conf "$SLUICE" config --max-output-size 7 2>/dev/null) || fail "config with HYDRA_CONFIG"
assert_eq "$(conf max-output-size)" 7 "a flag overrides hydra.conf"
assert_eq "$(conf max-log-size)" 5 "sluice.conf overrides hydra.conf"
assert_eq "$(conf max-unsupported-time)" 30 "HYDRA_CONFIG read"

# bad input: a clear message and a non-zero exit
printf 'max_log_size = 64M\n' >"$T/bad.conf"
rc=0
"$SLUICE" config --hydra-conf "$T/bad.conf" >/dev/null 2>"$T/err" || rc=$?
[ "$rc" -ne 0 ] || fail "a bad max_log_size was accepted"
grep -q "max_log_size = '64M'" "$T/err" || fail "bad value message: $(cat "$T/err")"
rc=0
"$SLUICE" config --hydra-conf "$T/none.conf" >/dev/null 2>"$T/err" || rc=$?
[ "$rc" -ne 0 ] || fail "a missing hydra.conf was accepted"
echo "hydra-conf: ok"
