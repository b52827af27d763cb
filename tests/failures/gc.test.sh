#!/usr/bin/env bash
# Garbage collection during a content-addressed run.  The coordinator's store is a
# private /nix ($T/nix bind-mounted over /nix in a mount namespace per command: one
# store, seen the same by sluice, nix-instantiate and the GC loop); the builders are
# three harness hosts.  While `sluice run` builds a 40-node CA DAG, the CA chain whose
# links run on different hosts and examples/demo.nix, `nix-store --gc` runs in a loop on
# the coordinator and on every builder.  Asserts:
#  - every build succeeds and no step ever fails or is retried (no input, output of a
#    finished step or resolved .drv disappeared under a step), except a rebuild of an
#    output collected on its builder in the instant between its build and its root
#    (see below); outputs as a plain `nix-store -r` in another private store gives them;
#  - after the run, with the runner still up (its ssh master connections open) but no
#    step session left, one GC on each builder collects everything the steps copied
#    there or built: temporary roots live exactly as long as a step's session.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/../farm/lib.sh"
farm_lab 3
machines_file 'ssh://b1 x86_64-linux - 2 1 ca-derivations,hop1' \
    'ssh-ng://b2 x86_64-linux - 2 2 ca-derivations,hop2' \
    'ssh-ng://b3 x86_64-linux - 2 1 ca-derivations,hop3'
DAG=$ROOT/tests/farm/nix/dag.nix
mkdir -p "$T/nix"
CO() { "$SLUICE_LAB/inns" "$T/nix" "$@"; }
builder_store() { find "$SLUICE_LAB/b$1/store" -mindepth 1 -maxdepth 1 ! -name .links 2>/dev/null; }

CO "$SLUICE" submit "$DAG" --argstr n 40 --argstr layers 5 --arg ca true --argstr salt "$SALT" >/dev/null
CO "$SLUICE" submit "$FARM_NIX" --argstr salt "$SALT" --argstr dir "$DIR" -A hopTop >/dev/null
CO "$SLUICE" submit "$ROOT/examples/demo.nix" --argstr salt "$SALT" >/dev/null
all=$(q "SELECT id FROM Builds ORDER BY id" | tr '\n' ' ')

# GC loops: coordinator and builders
gc_loop() {
    local n=0
    while [ ! -e "$DIR/stop-gc" ]; do
        "$@" nix-store --gc >/dev/null 2>>"$DIR/gc-errors" && n=$((n + 1))
        sleep 0.3
    done
    echo "$n" >"$DIR/gc-count-$$-$RANDOM"
}
gc_loop CO &
FARM_BG+=($!)
for i in 1 2 3; do
    gc_loop env NIX_CONF_DIR="$SLUICE_LAB/nixconf" "$SLUICE_LAB/inns" "$SLUICE_LAB/b$i" &
    FARM_BG+=($!)
done

RUN_LOG=$T/run.log
"$SLUICE_LAB/inns" "$T/nix" "$SLUICE" run --machines "$T/machines" >"$RUN_LOG" 2>&1 & # (one pid: exec)
RUN_PID=$!
for id in $all; do
    wait_until 120 build_done "$id" || { tail -20 "$RUN_LOG"; fail "build $id not finished"; }
done
touch "$DIR/stop-gc"
wait "${FARM_BG[@]}"
FARM_BG=()
echo "GCs run (coordinator and builders): $(cat "$DIR"/gc-count-* | tr '\n' ' ')"
for n in $(cat "$DIR"/gc-count-*); do [ "$n" -ge 3 ] || fail "a GC loop ran only $n times"; done

for id in $all; do assert_eq "$(build_row "$id")" "1|0" "build $id"; done
# The windows left are Nix 2.8's own.  A floating CA output's scratch path has a temp
# root from sluice before the build starts (tests/failures/gc-scratch.test.sh), but its
# final path is unknown until Nix moves the output there and registers it, unrooted: a
# GC on the builder can take it (a) between the move and the registration ("getting
# status of '<its output>': No such file or directory"), (b) between the registration
# and the recording of its realisation (an SQLite error naming the output), or (c) from
# then until sluice's AddTempRoot arrives ("vanished").  Each time the attempt row gets
# status 3 and the step runs again at once (nobody's fault).  And (d): a GC that deletes
# an output it visited while a new build of the same CA path finds it still valid (and
# so moves nothing), then registers it again: the path stays registered with no files
# ("registered on the builder could not be read there"); sluice deletes it there
# (ssh-ng://) and builds it again at once, or disables the builder (ssh://).  Anything
# else, a missing input above all, is a bug.
vanished=$(q "SELECT count(*) FROM BuildSteps WHERE status = 3 AND errorMsg LIKE
              'output % vanished on the builder before it was copied back'")
echo "outputs collected on a builder before their root: $vanished (rebuilt at once)"
unreadable=$(q "SELECT count(*) FROM BuildSteps WHERE status = 3 AND errorMsg LIKE
                'output % registered on the builder could not be read there %'")
echo "outputs left registered with no files on a builder: $unreadable (deleted there or the builder disabled, rebuilt)"
bad=$(q "SELECT build, stepnr, drvPath, status, replace(errorMsg, char(10), ' ') FROM BuildSteps
         WHERE status NOT IN (0, 13)
           AND errorMsg NOT LIKE 'output % vanished on the builder before it was copied back'
           AND errorMsg NOT LIKE 'output % registered on the builder could not be read there %'")
own_output_lost() { # ROW: status 3 and what Nix lost is the step's own output
    local drv msg name
    drv=$(cut -d'|' -f3 <<<"$1")
    msg=$(cut -d'|' -f5- <<<"$1")
    name=${drv#/nix/store/????????????????????????????????-}
    name=${name%.drv}
    [ "$(cut -d'|' -f4 <<<"$1")" = 3 ] || return 1
    grep -qE "getting status of '/nix/store/[0-9a-z]{32}-$name(\.tmp)?': No such file or directory" <<<"$msg" ||
        grep -qE "executing SQLite statement .*'/nix/store/[0-9a-z]{32}-$name'" <<<"$msg"
}
lost=0
while IFS= read -r row; do
    [ -n "$row" ] || continue
    if own_output_lost "$row"; then lost=$((lost + 1)); else fail "failed or retried step: $row"; fi
done <<<"$bad"
echo "outputs collected on a builder during Nix's own build: $lost (rebuilt at once)"
for m in ssh://b1 ssh-ng://b2 ssh-ng://b3; do
    echo "$m: $(q "SELECT count(*) FROM BuildSteps WHERE status = 0 AND machine = '$m'") steps"
done
ours=$(q "SELECT path FROM BuildOutputs WHERE build IN (${all// /,}0)" | sort)
mkdir -p "$T/oracle"
theirs=$(NIX_CONFIG="$NIX_CONFIG"$'\nsystem-features = ca-derivations hop1 hop2 hop3\nmax-jobs = 4' \
    "$SLUICE_LAB/inns" "$T/oracle" sh -c '
    nix-store -r $(nix-instantiate "$1" --argstr n 40 --argstr layers 5 --arg ca true --argstr salt "$4"
                   nix-instantiate "$2" --argstr salt "$4" --argstr dir "$5" -A hopTop
                   nix-instantiate "$3" --argstr salt "$4") 2>/dev/null' \
    sh "$DAG" "$FARM_NIX" "$ROOT/examples/demo.nix" "$SALT" "$DIR" 2>/dev/null | sort)
assert_eq "$ours" "$theirs" "outputs against nix-store -r"
for p in $ours; do CO nix-store --check-validity "$p" || fail "$p not valid in the coordinator's store"; done

# no step session left: a GC on each builder takes all the steps left there (one more
# build, with no GC loop running, so that something is left)
mid=$(CO "$SLUICE" submit "$FARM_NIX" --argstr salt "$SALT" --argstr dir "$DIR" -A mid)
wait_until 30 build_done "$mid" || fail "mid not finished"
assert_eq "$(build_row "$mid")" "1|0" "mid"
n=0
for i in 1 2 3; do n=$((n + $(builder_store $i | wc -l))); done
[ "$n" -ge 2 ] || fail "mid left nothing on the builders"
for i in 1 2 3; do
    env NIX_CONF_DIR="$SLUICE_LAB/nixconf" "$SLUICE_LAB/inns" "$SLUICE_LAB/b$i" nix-store --gc >/dev/null 2>&1
    left=$(builder_store $i)
    [ -z "$left" ] || fail "b$i keeps paths after its GC with no step running: $left"
done
echo "$n paths of mid's steps on the builders, all collected once their sessions closed"
kill -0 "$RUN_PID" || fail "the runner died"
run_stop
echo "ok: GC on the coordinator and the builders during a CA run"
