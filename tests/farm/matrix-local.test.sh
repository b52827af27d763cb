#!/usr/bin/env bash
# The whole Nix matrix in one farm: tests/farm/ca.test.sh with the local store served
# by a Nix 2.26 daemon (tests/harness/localnix.sh: drvs instantiated by Nix 2.26,
# realisations recorded in its store), b1 (ssh://) on Nix 2.3x, b2 (ssh-ng://) on Nix
# 2.26, b3 and b4 on this host's Nix 2.8.  Every output is checked against Nix 2.8
# building the same drvs in a private store, and the local 2.26 store must know every
# CA output afterwards.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/../harness/localnix.sh"
need_nix
for s in trixie sid; do
    d=$(bash "$ROOT/tests/harness/nixtree.sh" dir $s)
    [ -f "$d/.sluice-tree" ] || skip "no Nix tree $d (tests/harness/nixtree.sh ensure $s)"
done
localnix trixie
export SLUICE_LAB_TREES="1:sid 2:trixie"
bash "$ROOT/tests/farm/ca.test.sh"
