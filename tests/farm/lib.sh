# tests/farm/lib.sh: shared by the farm and builder-failure tests (tests/farm/*.test.sh,
# tests/failures/*.test.sh), sourced after harness/env.sh.  SQLite only: the database
# layer has its own tests on both backends.
#
#   farm_lab N              start a private lab of N builder hosts b1..bN
#                           ($SLUICE_LAB=$T/lab, NIX_SSHOPTS set; stopped at exit).  A
#                           private lab even when CI exported one: these tests crash,
#                           cut and reconfigure hosts.  The hosts' Nix offers the
#                           features extra, big, hop1, hop2, hop3 (which host gets
#                           which is up to the machines file).
#                           SLUICE_LAB_TREES ("2:trixie 3:sid") puts hosts on the Nix
#                           matrix (tests/harness/machines.sh)
#   nix_version_of I        the Nix release host bI runs (its tree's, or this host's)
#   check_nix_versions      the runner's machines.json (as /status/machines) gives each
#                           ssh host bI the release it runs (call while the runner runs)
#   machines_file TEXT      write $T/machines
#   untrusted_host I        run a nix-daemon on host bI whose nix.conf trusts nobody;
#                           prints a remote-program for ssh-ng:// (the serve form for
#                           ssh:// is $UNTRUSTED_SERVE) that reaches the store through
#                           it, so Nix itself refuses us as an untrusted user
#   q SQL                   query the database ('|' between columns)
#   sl ARGS...              run sluice; sets $rc, $out, $err (never fails itself)
#   run_bg ARGS...          `sluice run` in the background ($RUN_PID, log $RUN_LOG)
#   run_stop                SIGTERM to it and wait
#   wait_until SECS CMD...  poll CMD until it succeeds (1 when it never does)
#   inst ATTR...            nix-instantiate tests/farm/nix/farm.nix (with $SALT, $DIR)
#   submit ARGS...          sluice submit of farm.nix; prints the new build ids
#   build_row ID            finished|buildStatus of a build
#   steps_of ID             stepnr|name|status|machine of its build rows
#   max_conc MACHINE        most steps running at once on MACHINE (from BuildSteps
#                           start/stop times, half-open seconds: a lower bound of what
#                           really ran at once, so "<= max jobs" is a sound check)
#   builder_drvs I          .drv files in host bI's store
#   host_has I PATTERN      1 when a process of host bI has PATTERN in its arguments
#   nix_oracle DRV...       build DRVs (copied with their closure) with plain
#                           nix-store -r in a private store ($T/oracle); prints their
#                           output paths, sorted
set -euo pipefail
need_nix
for t in sshd ssh nc ip unshare sqlite3 jq; do
    command -v $t >/dev/null || [ -x /usr/sbin/$t ] || skip "$t missing"
done
[ "$(id -u)" = 0 ] || skip "needs root (network and mount namespaces)"
M=$ROOT/tests/harness/machines.sh
FARM_NIX=$ROOT/tests/farm/nix/farm.nix
FARM_NAME=$(basename "$0" .test.sh)
SALT="$FARM_NAME-$$-$(date +%s%N)"
DIR=$T/dir
mkdir -p "$DIR" "$SLUICE_STATE_DIR"
export SLUICE_DB=sqlite:$SLUICE_STATE_DIR/sluice.db
RUN_PID=
FARM_N=0
FARM_BG=()

farm_cleanup() {
    local p
    # a failed farm test shows why a host was passed over (disabled, failed sessions)
    if [ "${farm_rc:-0}" -ne 0 ] && [ -n "${RUN_LOG:-}" ] && [ -f "$RUN_LOG" ]; then
        echo "--- warnings and errors of $RUN_LOG:" >&2
        grep -E 'warning|error|disabled' "$RUN_LOG" | tail -25 >&2 || true
    fi
    for p in ${RUN_PID:+"$RUN_PID"} "${FARM_BG[@]}"; do
        kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    if [ "$FARM_N" -gt 0 ]; then "$M" stop "$FARM_N" >/dev/null 2>&1 || true; fi
    return 0
}
farm_prev_trap=$(trap -p EXIT | sed "s/^trap -- '//; s/' EXIT\$//; s/'\\\\''/'/g")
# shellcheck disable=SC2064
trap "farm_rc=\$?; farm_cleanup; (exit \$farm_rc); $farm_prev_trap" EXIT

farm_lab() {
    FARM_N=$1
    export SLUICE_LAB=$T/lab
    "$M" start "$FARM_N"
    # the builders' Nix checks required features against its own system-features
    echo 'system-features = nixos-test benchmark big-parallel ca-derivations extra big hop1 hop2 hop3' \
        >>"$SLUICE_LAB/nixconf/nix.conf"
    export NIX_SSHOPTS="-F $SLUICE_LAB/ssh_config"
    FARM_NSP=sl$(printf '%s' "$(cd "$SLUICE_LAB" && pwd)" | md5sum | cut -c1-8)-
}

machines_file() { printf '%s\n' "$@" >"$T/machines"; }

nix_version_of() {
    local t
    t=$(cat "$SLUICE_LAB/b$1.tree" 2>/dev/null || true)
    if [ -n "$t" ]; then cat "$t/.sluice-tree"; else nix-store --version | sed 's/.* //'; fi
}

check_nix_versions() {
    local f=$SLUICE_STATE_DIR/machines.json uri i got want
    [ -f "$f" ] || fail "no machines.json in the state directory"
    for uri in $(jq -r '.machines | keys[]' "$f"); do
        i=$(sed -nE 's#^ssh(-ng)?://b([0-9]+).*#\2#p' <<<"$uri")
        [ -n "$i" ] || continue
        got=$(jq -r --arg u "$uri" '.machines[$u].nixVersion' "$f")
        want=$(nix_version_of "$i")
        echo "$uri: Nix $got"
        assert_eq "$got" "$want" "nixVersion of $uri in machines.json"
    done
}

untrusted_host() {
    local i=$1 conf=$SLUICE_LAB/untrusted
    mkdir -p "$conf"
    printf '%s\n' 'experimental-features = nix-command ca-derivations' 'substituters =' \
        'build-users-group =' 'sandbox = false' 'trusted-users = nobody' 'allowed-users = *' \
        >"$conf/nix.conf"
    rm -f "$SLUICE_LAB/b$i/var/nix/daemon-socket/socket"
    setsid ip netns exec "${FARM_NSP}b$i" "$SLUICE_LAB/inns" "$SLUICE_LAB/b$i" \
        env NIX_CONF_DIR="$conf" nix-daemon </dev/null >"$SLUICE_LAB/b$i-daemon.log" 2>&1 &
    disown
    wait_until 10 test -S "$SLUICE_LAB/b$i/var/nix/daemon-socket/socket" ||
        fail "untrusted daemon on b$i did not start"
    # the daemon lives in the host's network namespace: `machines.sh stop` kills it
    UNTRUSTED_NG='nix-daemon%20--store%20daemon'
    UNTRUSTED_SERVE='nix-store%20--store%20daemon'
}

q() { sqlite3 -batch "${SLUICE_DB#sqlite:}" "$1"; }

sl() {
    rc=0
    # from $T: `sluice build` links ./result like nix-build
    (cd "$T" && exec "$SLUICE" "$@") >"$T/sl.out" 2>"$T/sl.err" || rc=$?
    out=$(cat "$T/sl.out")
    err=$(cat "$T/sl.err")
}

run_bg() {
    RUN_LOG=$T/run-$(date +%s%N).log
    "$SLUICE" run "$@" >"$RUN_LOG" 2>&1 &
    RUN_PID=$!
}

run_stop() {
    local r=0
    [ -n "$RUN_PID" ] || return 0
    kill -TERM "$RUN_PID" 2>/dev/null || true
    wait "$RUN_PID" || r=$?
    RUN_PID=
    [ $r -eq 0 ] || { tail -30 "$RUN_LOG" >&2; fail "sluice run exited with $r after SIGTERM"; }
}

inst() {
    local a=()
    for x in "$@"; do a+=(-A "$x"); done
    nix-instantiate "$FARM_NIX" --argstr salt "$SALT" --argstr dir "$DIR" "${a[@]}" 2>/dev/null
}

submit() {
    "$SLUICE" submit "$FARM_NIX" --argstr salt "$SALT" --argstr dir "$DIR" "$@"
}

build_row() { q "SELECT finished, buildStatus FROM Builds WHERE id = $1"; }
build_id() { q "SELECT id FROM Builds WHERE job = '$1' ORDER BY id DESC LIMIT 1"; }
build_done() { [ "$(q "SELECT finished FROM Builds WHERE id = $1")" = 1 ]; }

steps_of() {
    q "SELECT stepnr, drvPath, coalesce(status, -1), machine FROM BuildSteps WHERE build = $1
       ORDER BY stepnr" | sed -E 's#/nix/store/[a-z0-9]{32}-([^|]*)\.drv#\1#'
}

max_conc() {
    q "SELECT coalesce(max(c), 0) FROM (SELECT (SELECT count(*) FROM BuildSteps y
         WHERE y.machine = x.machine AND y.type = 0 AND y.startTime <= x.startTime
           AND coalesce(y.stopTime, 1e18) > x.startTime) AS c
       FROM BuildSteps x WHERE x.machine = '$1' AND x.type = 0)"
}

builder_drvs() { find "$SLUICE_LAB/b$1/store" -maxdepth 1 -name '*.drv' 2>/dev/null || true; }

host_has() {
    local p
    for p in $(ip netns pids "${FARM_NSP}b$1" 2>/dev/null); do
        tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF -- "$2" && return 0
    done
    return 1
}

nix_oracle() {
    mkdir -p "$T/oracle"
    nix-store --export $(nix-store -qR "$@") >"$T/oracle.nar"
    NIX_CONFIG="$NIX_CONFIG"$'\nsystem-features = ca-derivations extra big hop1 hop2 hop3\nmax-jobs = 16' \
        "$SLUICE_LAB/inns" "$T/oracle" env -u NIX_REMOTE sh -c \
        'nix-store --import <"$0" >/dev/null && nix-store -r "$@" 2>/dev/null' "$T/oracle.nar" "$@" |
        sort
}
