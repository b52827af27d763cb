#!/usr/bin/env bash
# bench/phases.sh: a remote step's time, phase by phase, with and without warm sessions.
#
#   bench/phases.sh [REPS [N]]     defaults: 3 repetitions (at least 3), N = 100
#
# `sluice build` of bench/dag.nix (N nodes, CA) on three fresh builder hosts of
# tests/harness/machines.sh (b1 ssh://, b2 and b3 ssh-ng://, 2 jobs each), with
# `warm-sessions = 0` and `= 4`, alternating (0, 4, 0, 4, ...), every run on freshly
# wiped builder stores.  Prints one line per run ("run REP WARM SECONDS"), "spread
# warm-W min median max" per setting, then the phase table of each setting
# (bench/lib.sh phase_table over the runner's -v "phases:" lines of all its runs).
# Uses build/sluice (BUILD to change); its own lab under a temp dir.
source "$(dirname "$0")/lib.sh"
REPS=${1:-3}
N=${2:-100}
[ "$REPS" -ge 3 ] || { echo "REPS must be at least 3" >&2; exit 2; }
SLUICE=$BDIR/sluice
[ -x "$SLUICE" ] || { echo "no $SLUICE (make first)" >&2; exit 1; }
export NIX_CONFIG=$(printf '%s\n' 'experimental-features = nix-command ca-derivations' \
    'substituters =' 'build-users-group =' 'sandbox = false' 'fsync-metadata = false')
export NIX_CONF_DIR=$ROOT/tests/harness/nixconf
W=$(mktemp -d /tmp/sluice-bench-phases.XXXXXX)
export SLUICE_LAB=$W/lab NIX_SSHOPTS="-F $W/lab/ssh_config"
M=$ROOT/tests/harness/machines.sh
trap '"$M" stop 3 >/dev/null 2>&1; rm -rf "$W"' EXIT
printf '%s\n' 'ssh://b1 x86_64-linux - 2 1 ca-derivations' \
    'ssh-ng://b2 x86_64-linux - 2 1 ca-derivations' \
    'ssh-ng://b3 x86_64-linux - 2 1 ca-derivations' >"$W/machines"
for rep in $(seq "$REPS"); do
    for warm in 0 4; do
        "$M" start 3 >/dev/null # fresh stores
        echo 'system-features = ca-derivations' >>"$SLUICE_LAB/nixconf/nix.conf"
        printf 'warm-sessions = %s\n' "$warm" >"$W/conf"
        rm -rf "$W/state"
        t0=$(date +%s%N)
        SLUICE_CONFIG=$W/conf SLUICE_LOG=3 "$SLUICE" --state-dir "$W/state" build --no-out-link \
            --machines "$W/machines" bench/dag.nix --argstr n "$N" --arg ca true \
            --argstr salt "phases-$rep-$warm-$t0" >/dev/null 2>"$W/err" ||
            { tail -5 "$W/err" >&2; exit 1; }
        t=$((($(date +%s%N) - t0) / 1000000))
        printf 'run\t%s\t%s\t%d.%03d\n' "$rep" "$warm" $((t / 1000)) $((t % 1000))
        printf '%d.%03d\n' $((t / 1000)) $((t % 1000)) >>"$W/tot.$warm"
        grep -h ': phases: ' "$W/err" | sed 's/.*: phases: //' >>"$W/phases.$warm" || true
    done
done
for warm in 0 4; do printf 'spread\twarm-%s\t%s\n' "$warm" "$(spread "$W/tot.$warm")"; done
for warm in 0 4; do
    echo "phases with warm-sessions = $warm:"
    phase_table "$W/phases.$warm"
done
