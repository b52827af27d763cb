#!/usr/bin/env bash
# bench/gen-only.sh NAME GEN-ARGS...: generate (or reuse) one cached graph of bench/out/graphs
source "$(dirname "$0")/lib.sh"
bench_setup
graph "$@"
