#!/usr/bin/env bash
# The Nix matrix for a farm: tests/farm/ca.test.sh with b1 (ssh://) running Nix 2.3x
# (Debian unstable) and b2 (ssh-ng://) Nix 2.26 (Debian 13) next to b3 and b4 on this
# host's Nix 2.8: the CA chain's links go 2.3x -> 2.26 -> 2.8, each resolved with the
# output the release before built, outputs as Nix 2.8 builds them, and the runner
# reports each host's release.  The trees come from tests/harness/nixtree.sh (.ci/run
# creates them when absent).
source "$(dirname "$0")/../harness/env.sh"
need_nix
for s in trixie sid; do
    d=$(bash "$ROOT/tests/harness/nixtree.sh" dir $s)
    [ -f "$d/.sluice-tree" ] || skip "no Nix tree $d (tests/harness/nixtree.sh ensure $s)"
done
export SLUICE_LAB_TREES="1:sid 2:trixie"
bash "$ROOT/tests/farm/ca.test.sh"
