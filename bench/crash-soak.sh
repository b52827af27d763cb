#!/usr/bin/env bash
# bench/crash-soak.sh [KILLS]: the crash-safety test with many more kills (default 200),
# as a soak run outside CI.  Prints the seed (replay with SLUICE_CRASH_SEED=...) and
# ends with the test's own verdict.
set -euo pipefail
cd "$(dirname "$0")/.."
export SLUICE_CRASH_KILLS=${1:-200}
export SLUICE_BUILD=${SLUICE_BUILD:-$PWD/build}
time bash tests/crash/kill.test.sh
