#!/usr/bin/env bash
# One priority order over every runnable step of a system, whatever features it needs,
# on SQLite and PostgreSQL (Hydra's dispatcher): with one machine and one slot, a plain
# step bumped to globalPriority 100 runs before the steps of older builds that need
# features (each its own machine type), which then run in Hydra's order (more required
# features first, then the older build); without a bump, a newer step needing a feature
# goes before older plain ones, and those go by build id; a step's run time is charged
# to its jobset when it ends (no reload of the shares needed), so a newer build of the
# jobset that used less goes first.  The order is what the builders write into a file.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/lib.sh"
SYSTEM=$(nix-instantiate --eval -E builtins.currentSystem | tr -d '"')
# the local store builds what needs these features (the runner's nix-daemon reads it)
NIX_CONFIG+=$'\n''extra-system-features = big kvm'

step_busy() { [ "$(q "SELECT busy FROM BuildSteps WHERE build = $1 ORDER BY stepnr DESC LIMIT 1")" = "$2" ]; }
order() { [ -e "$DIR/order" ] && tr '\n' ' ' <"$DIR/order" | sed 's/ $//'; }
order_is() { [ "$(order)" = "$1" ]; }

body() {
    local g ids last y
    printf 'local %s - 1 1 big,kvm\n' "$SYSTEM" >"$T/machines-$BACKEND"
    run_bg --machines "$T/machines-$BACKEND"

    phase "a plain build bumped to globalPriority 100 overtakes older builds needing features"
    g=$(submit -A gate)
    wait_until 30 step_busy "$g" 30 || fail "$BACKEND: gate is not building"
    mapfile -t ids < <(submit -A orderBig -A orderKvm -A orderBigKvm -A orderPlain)
    [ "${#ids[@]}" = 4 ] || fail "$BACKEND: submit: ${ids[*]}"
    q "UPDATE Builds SET globalPriority = 100 WHERE id = ${ids[3]}" >/dev/null
    sleep 1.5 # queued behind the gate, the bump seen
    touch "$DIR/go"
    wait_until 30 order_is "order-plain order-big-kvm order-big order-kvm" ||
        fail "$BACKEND: order '$(order)', expected the bumped plain build first"
    wait_until 20 build_is "${ids[1]}" "1|0|0" || fail "$BACKEND: orderKvm: $(build_row "${ids[1]}")"
    : >"$DIR/order"

    phase "no bump: a step needing a feature first, then plain ones by build id"
    g=$(submit -A gate2)
    wait_until 30 step_busy "$g" 30 || fail "$BACKEND: gate2 is not building"
    SALT=$SALT-2 submit -A orderPlain >/dev/null
    SALT=$SALT-2 submit -A orderBig >/dev/null
    last=$(SALT=$SALT-2 submit -A orderPlain2)
    sleep 1.5
    touch "$DIR/go2"
    # order-big needs a feature: Hydra's order puts it before plain steps of the same
    # priority, then the plain ones by build id
    wait_until 30 order_is "order-big order-plain order-plain2" ||
        fail "$BACKEND: order '$(order)', expected order-big order-plain order-plain2"
    wait_until 20 build_is "$last" "1|0|0" || fail "$BACKEND: orderPlain2: $(build_row "$last")"
    : >"$DIR/order"

    phase "a step's time is charged to its jobset when it ends: x's 3 s put it behind y"
    y=$(submit --jobset y -A mid)
    wait_until 20 build_is "$y" "1|0|0" || fail "$BACKEND: y's first build: $(build_row "$y")"
    g=$(submit --jobset x -A gate3)
    wait_until 30 step_busy "$g" 30 || fail "$BACKEND: gate3 is not building"
    sleep 3
    touch "$DIR/go3"
    wait_until 20 build_is "$g" "1|0|0" || fail "$BACKEND: gate3: $(build_row "$g")"
    g=$(submit -A gate4)
    wait_until 30 step_busy "$g" 30 || fail "$BACKEND: gate4 is not building"
    submit --jobset x -A orderD >/dev/null
    last=$(submit --jobset y -A orderE)
    sleep 1.5
    touch "$DIR/go4"
    wait_until 30 order_is "order-e order-d" ||
        fail "$BACKEND: order '$(order)', expected y's build before x's (x used 3 s)"
    wait_until 20 build_is "$last" "1|0|0" || fail "$BACKEND: orderE: $(build_row "$last")"
    run_stop
    assert_eq "$(busy_rows)" 0 "$BACKEND: busy rows"
    assert_eq "$(q "SELECT count(*) FROM Builds WHERE finished = 0")" 0 "$BACKEND: queue empty"
}

for_backends body
echo "hydra priority: ok"
