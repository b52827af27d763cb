# tests/harness/env.sh: sourced by every integration test.  Sets Nix's settings for the
# tests (never this machine's /etc/nix), $SLUICE, a per-test temporary directory $T
# (removed on success) and small assertion helpers.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SLUICE_BUILD=${SLUICE_BUILD:-$ROOT/build}
SLUICE=$SLUICE_BUILD/sluice
export NIX_CONFIG=$(printf '%s\n' 'experimental-features = nix-command ca-derivations' \
    'substituters =' 'build-users-group =' 'sandbox = false' 'fsync-metadata = false')
export NIX_CONF_DIR=$ROOT/tests/harness/nixconf   # an empty nix.conf: /etc/nix is not read
T=$(mktemp -d /tmp/sluice-it.XXXXXX)
export SLUICE_STATE_DIR=$T/state
export SLUICE_CONF_DIR=$T/etc-sluice   # never this machine's /etc/sluice
trap 'rc=$?; if [ $rc -eq 0 ] || [ $rc -eq 77 ]; then rm -rf "$T"; else echo "test dir kept: $T"; fi' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIPPED: $*"; exit 77; }
# wait_until SECS CMD...: run CMD every 0.1 s until it succeeds (1 after SECS seconds)
wait_until() {
    local secs=$1 i=0
    shift
    while ! "$@"; do
        i=$((i + 1))
        [ $i -lt $((secs * 10)) ] || return 1
        sleep 0.1
    done
    return 0
}
assert_eq() { [ "$1" == "$2" ] || fail "${3:-values differ}: got '$1', expected '$2'"; }
need_nix() { command -v nix-store >/dev/null || skip "nix-store not installed"; }
