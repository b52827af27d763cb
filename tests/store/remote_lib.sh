# tests/store/remote_lib.sh: sourced by the remote_*.test.sh scripts.  Starts two
# builder hosts (tests/harness/machines.sh), then `remote_run FILTER N` runs the
# store_remote unit tests matching FILTER (tests/store/remote.c) with a private /nix
# as the local store and expects N of them to pass.  Machines stop on exit.
source "$(dirname "${BASH_SOURCE[0]}")/../harness/env.sh"
need_nix
for t in sshd ssh nc ip unshare; do command -v $t >/dev/null || [ -x /usr/sbin/$t ] || skip "$t missing"; done
M=$ROOT/tests/harness/machines.sh
export SLUICE_LAB=$T/lab
trap 'rc=$?; "$M" stop 2 >/dev/null 2>&1 || true; if [ $rc -eq 0 ] || [ $rc -eq 77 ]; then rm -rf "$T"; else echo "test dir kept: $T"; fi' EXIT
"$M" start 2
export NIX_SSHOPTS="-F $SLUICE_LAB/ssh_config"
mkdir -p "$T/local"

remote_run() {
    local out
    out=$(SLUICE_TEST_MACHINES=1 "$SLUICE_LAB/inns" "$T/local" "$SLUICE_BUILD/sluice-test" "$@" 2>&1) || {
        echo "$out" >&2
        fail "store_remote tests"
    }
    echo "$out"
}
