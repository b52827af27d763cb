#!/usr/bin/env bash
# The first contact with a fresh builder store: six steps dispatched at once to a host
# whose store was never opened (its Nix migrates the store's schema on first open,
# waiting for exclusive access to it), on ssh-ng:// and on ssh://, three fresh stores
# each.  Every step builds at its first attempt, and quickly: no session hangs until the
# operation timeout waiting for the store lock that another idle session holds.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/lib.sh"
farm_lab 1
round=0
for proto in ssh-ng ssh; do
    for fresh in 1 2 3; do
        round=$((round + 1))
        "$M" start 1 >/dev/null # a fresh, never opened store
        machines_file "$proto://b1 x86_64-linux - 6 1"
        t0=$(date +%s)
        sl build --no-out-link --machines "$T/machines" "$FARM_NIX" --argstr salt "$SALT-$round" \
            --argstr dir "$DIR" --arg n 6 --argstr sleep 0 -A spread
        dt=$(($(date +%s) - t0))
        echo "$proto, fresh store $fresh: exit $rc after $dt s"
        assert_eq "$rc" 0 "$proto round $fresh: $(tail -3 <<<"$err")"
        id=$(q "SELECT max(id) FROM Builds")
        assert_eq "$(q "SELECT count(*) FROM BuildSteps WHERE build = $id AND status <> 0")" 0 \
            "$proto round $fresh: failed step rows ($(q "SELECT errorMsg FROM BuildSteps WHERE build = $id AND status <> 0" | head -1))"
        [ "$dt" -lt 40 ] || fail "$proto round $fresh: $dt s for seven trivial steps"
    done
done
echo "ok: the first contact with fresh builder stores"
