#!/usr/bin/env bash
# bench/farm.sh: a content-addressed graph built on a farm of three builder hosts, by
# sluice and by Nix's own build hook, on the same hosts in the same run.
#
#   bench/farm.sh [REPS [N]]        defaults: 3 repetitions (at least 3), N = 200
#   KIND=ca|ia                      content-addressed (default) or input-addressed
#
# The graph is bench/dag.nix --argstr n N --arg ca true|false (10 layers, 2-3 deps per
# node).
# The hosts are tests/harness/machines.sh's b1..b3 ($SLUICE_LAB when set, else a lab of
# its own under /tmp, stopped on exit), as this machines file:
#
#   ssh://b1 x86_64-linux - 2 1 ca-derivations
#   ssh-ng://b2 x86_64-linux - 2 2 ca-derivations
#   ssh-ng://b3 x86_64-linux - 2 1 ca-derivations
#
# Per repetition, each with a fresh salt and freshly wiped builder stores (the hosts are
# restarted):
#   nix       nix-store -r --max-jobs 0 --builders FILE $(nix-instantiate ...)  (NIX_SSHOPTS)
#   sluice    sluice build --machines FILE dag.nix ...  (a fresh state dir and SQLite DB)
# Both times include evaluation and instantiation.  The two sides alternate (nix,
# sluice, nix, ...).  Both tools' stderr is kept in bench/out/logs/.  Lock contention
# ("database is busy", "waiting for ... lock") fails the script when a process outside
# the run had the local store's database open meanwhile (sampled every 0.2 s); else it
# comes from the run's own processes (Nix's hook: nix-store and its build-remote children
# all write the local store; sluice: its concurrent sessions on one builder's store,
# relayed as "ssh://bN stderr:") and its lines are counted in busy_lines.  Any outside
# process during either run fails the script.  Columns (TSV):
#   rep  tool  n  seconds  steps_on_b1  steps_on_b2  steps_on_b3  busy_lines
# one line "ratio <sluice/nix> <kind>" per repetition, then "spread TOOL min median
# max" per tool and "ratio-median <median sluice / median nix> <kind>" (target <= 0.5).
# Then the phase table of the sluice steps (the runner's -v "phases:" lines of every
# repetition): "phase NAME median_ms M p90_ms P steps N" per phase, and "phase overhead"
# (a step's time outside its build; target: median under 200 ms).
# Uses build/sluice (SLUICE_BUILD to change).  The coordinator's store is /nix/store.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# spread, contention, keep_log (lib.sh's bench_setup is not used: no gen-graph here)
source "$ROOT/bench/lib.sh"
STAMP=$(date +%Y%m%d-%H%M%S)
REPS=${1:-3}
N=${2:-200}
[ "$REPS" -ge 3 ] || { echo "REPS must be at least 3" >&2; exit 2; }
KIND=${KIND:-ca}
case $KIND in
ca) CA=true ;;
ia) CA=false ;;
*) echo "KIND must be ca or ia, not '$KIND'" >&2; exit 2 ;;
esac
SLUICE=${SLUICE_BUILD:-$ROOT/build}/sluice
M=$ROOT/tests/harness/machines.sh
export NIX_CONFIG=$(printf '%s\n' 'experimental-features = nix-command ca-derivations' \
    'substituters =' 'build-users-group =' 'sandbox = false' 'fsync-metadata = false')
mkdir -p /tmp/sluice-bench-nixconf
export NIX_CONF_DIR=/tmp/sluice-bench-nixconf
[ -x "$SLUICE" ] || { echo "no $SLUICE (make first)" >&2; exit 1; }

W=$(mktemp -d /tmp/sluice-bench-farm.XXXXXX)
own_lab=0
if [ -z "${SLUICE_LAB:-}" ]; then
    export SLUICE_LAB=$W/lab
    own_lab=1
fi
cleanup() {
    store_watch_stop
    [ "$own_lab" = 0 ] || "$M" stop 3 >/dev/null 2>&1 || true
    rm -rf "$W"
}
trap cleanup EXIT
export NIX_SSHOPTS="-F $SLUICE_LAB/ssh_config"
printf '%s\n' 'ssh://b1 x86_64-linux - 2 1 ca-derivations' \
    'ssh-ng://b2 x86_64-linux - 2 2 ca-derivations' \
    'ssh-ng://b3 x86_64-linux - 2 1 ca-derivations' >"$W/machines"
BUILDERS=$(paste -sd';' "$W/machines")

fresh_hosts() {
    SLUICE_LAB_KEEP=0 "$M" start 3 >/dev/null
    # warm each host's sshd once, for both tools alike
    for i in 1 2 3; do ssh -F "$SLUICE_LAB/ssh_config" "b$i" true; done
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# drv files on the builders (there must be none for sluice) and built paths per host
host_paths() { find "$SLUICE_LAB/b$1/store" -maxdepth 1 -name '*-n-*' ! -name '*.drv' 2>/dev/null | wc -l; }

uptime >&2
printf 'rep\ttool\tn\tseconds\tsteps_on_b1\tsteps_on_b2\tsteps_on_b3\tbusy_lines\n'
for rep in $(seq 1 "$REPS"); do
    salt=farm-$$-$rep-$(date +%s%N)

    fresh_hosts
    store_watch_start "$W/watch"
    t0=$(now_ms)
    nix-store -r --max-jobs 0 --builders "$BUILDERS" \
        $(nix-instantiate bench/dag.nix --argstr n "$N" --arg ca "$CA" --argstr salt "nix-$salt" 2>/dev/null) \
        >"$W/nix.out" 2>"$W/nix.err" || { tail -5 "$W/nix.err" >&2; exit 1; }
    t_nix=$(($(now_ms) - t0))
    store_watch_stop
    keep_log "$W/nix.err" "farm-$STAMP-$rep-nix.err"
    # the hook's own processes contend for the local store among themselves: counted,
    # a failure only when a process outside the run held the store meanwhile
    busy=$(contention_outside "$W/nix.err" "$W/watch") && exit 1
    awk -v a="$t_nix" 'BEGIN { printf "%.3f\n", a / 1000 }' >>"$W/nix.tot"
    printf '%s\tnix\t%s\t%d.%03d\t%s\t%s\t%s\t%s\n' "$rep" "$N" $((t_nix / 1000)) $((t_nix % 1000)) \
        "$(host_paths 1)" "$(host_paths 2)" "$(host_paths 3)" "$busy"

    fresh_hosts
    rm -rf "$W/state"
    store_watch_start "$W/watch"
    t0=$(now_ms)
    SLUICE_LOG=3 "$SLUICE" --state-dir "$W/state" build --machines "$W/machines" bench/dag.nix \
        --argstr n "$N" --arg ca "$CA" --argstr salt "sluice-$salt" >"$W/sluice.out" 2>"$W/sluice.err" ||
        { tail -5 "$W/sluice.err" >&2; exit 1; }
    t_sl=$(($(now_ms) - t0))
    store_watch_stop
    grep -h ': phases: ' "$W/sluice.err" | sed 's/.*: phases: //' >>"$W/phases" || true
    keep_log "$W/sluice.err" "farm-$STAMP-$rep-sluice.err"
    # sluice's builders contend for their own stores between its sessions (the relayed
    # "ssh://bN stderr:" lines): counted alike; any outside process fails the run
    busy_sl=$(contention_outside "$W/sluice.err" "$W/watch") && exit 1
    awk -v a="$t_sl" 'BEGIN { printf "%.3f\n", a / 1000 }' >>"$W/sluice.tot"
    db=$W/state/sluice.db
    per() { sqlite3 "$db" "SELECT count(*) FROM BuildSteps WHERE status = 0 AND machine = '$1'"; }
    printf '%s\tsluice\t%s\t%d.%03d\t%s\t%s\t%s\t%s\n' "$rep" "$N" $((t_sl / 1000)) $((t_sl % 1000)) \
        "$(per ssh://b1)" "$(per ssh-ng://b2)" "$(per ssh-ng://b3)" "$busy_sl"
    drvs=$(for i in 1 2 3; do find "$SLUICE_LAB/b$i/store" -maxdepth 1 -name '*.drv'; done | wc -l)
    [ "$drvs" = 0 ] || echo "warning: $drvs .drv files on the builders after the sluice run" >&2
    awk -v a="$t_sl" -v b="$t_nix" -v k="$KIND" 'BEGIN { printf "ratio\t%.3f\t%s\n", a / b, k }'
done
for tool in nix sluice; do printf 'spread\t%s\t%s\n' "$tool" "$(spread "$W/$tool.tot")"; done
awk -v a="$(spread "$W/sluice.tot" | cut -f2)" -v b="$(spread "$W/nix.tot" | cut -f2)" -v k="$KIND" \
    'BEGIN { printf "ratio-median\t%.3f\t%s\n", a / b, k }'
# the phase table of every sluice step of every repetition (the runner's -v lines)
phase_table "$W/phases"
uptime >&2
