#!/usr/bin/env bash
# GC roots as Hydra keeps them, on SQLite and PostgreSQL: with Hydra's gc_roots_dir
# (from hydra.conf) an output root is GC_ROOTS_DIR/<basename> -> the output, registered
# with the store (nix-store --gc --print-roots lists it) and not listed in
# sluice_gcroots, so hydra-update-gc-roots alone prunes it; without it, sluice's own
# output roots go after the default keep-outputs-days (30) once their build finished.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/lib.sh"

body() {
    local id o dir=$T/hydra-roots-$BACKEND id2 o2
    printf 'gc_roots_dir = %s\n' "$dir" >"$T/hydra-$BACKEND.conf"
    id=$(submit -A empty)
    sl run --once --hydra-conf "$T/hydra-$BACKEND.conf"
    assert_eq "$rc" 0 "$BACKEND: run --once with gc_roots_dir ($err)"
    assert_eq "$(build_row "$id")" "1|0|0" "$BACKEND: build finished"
    o=$(out_of "$id")
    assert_eq "$(readlink "$dir/${o#/nix/store/}")" "$o" "$BACKEND: root in gc_roots_dir"
    nix-store --gc --print-roots 2>/dev/null | grep -qF "$dir/${o#/nix/store/} -> $o" ||
        fail "$BACKEND: the store does not list $dir/${o#/nix/store/} as a root"
    assert_eq "$(q "SELECT count(*) FROM sluice_gcroots WHERE path = '$o'")" 0 "$BACKEND: no sluice_gcroots row"
    [ ! -e "$SLUICE_STATE_DIR/roots/${o#/nix/store/}" ] || fail "$BACKEND: a root under the state dir too"

    # without gc_roots_dir: sluice's roots, dropped after 30 days by default
    id2=$(submit -A mid)
    sl run --once
    assert_eq "$(build_row "$id2")" "1|0|0" "$BACKEND: second build finished"
    o2=$(out_of "$id2")
    assert_eq "$(q "SELECT kind FROM sluice_gcroots WHERE path = '$o2'")" output "$BACKEND: sluice's own root"
    q "UPDATE sluice_gcroots SET created = created - 29 * 86400 WHERE path = '$o2'" >/dev/null
    sl run --once
    assert_eq "$(q "SELECT count(*) FROM sluice_gcroots WHERE path = '$o2'")" 1 "$BACKEND: a 29-day-old root kept"
    q "UPDATE sluice_gcroots SET created = created - 2 * 86400 WHERE path = '$o2'" >/dev/null
    sl run --once
    assert_eq "$(q "SELECT count(*) FROM sluice_gcroots WHERE path = '$o2'")" 0 "$BACKEND: a 31-day-old root dropped"
    [ -n "$(readlink "$dir/${o#/nix/store/}")" ] || fail "$BACKEND: sluice removed a root in gc_roots_dir"
}

for_backends body
echo "hydra roots: ok"
