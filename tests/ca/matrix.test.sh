#!/usr/bin/env bash
# The CA suite (tests/ca/suite.test.sh, SQLite) with a local store served by Nix 2.26
# (tests/harness/localnix.sh): sluice runs with `store = daemon`, every drv is
# instantiated by the Debian 13 tree's nix-instantiate through that daemon, and the
# host's Nix 2.8 tools reach the store through it too.  The oracle is the tree's Nix
# 2.26 in its own store (2.26 and 2.8 give different paths to CA outputs that refer to
# themselves).
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/../harness/localnix.sh"
need_nix
localnix trixie
export SLUICE_ORACLE_WRAP=$LOCALNIX_ORACLE
SLUICE_TEST_BACKENDS=${SLUICE_TEST_BACKENDS:-sqlite} bash "$ROOT/tests/ca/suite.test.sh"
