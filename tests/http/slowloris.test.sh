#!/usr/bin/env bash
# Slowloris on loopback, bounded (64 trickling connections from 4 addresses, at most
# 20 s): a client sending its request head a byte a second gets at most
# HTTP_MAX_PER_IP (12) connections per address, is cut off after the head deadline
# (10 s), and a normal client is answered all the while.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/http_lib.sh"
need_nix
need_http_tools
mkdir -p "$SLUICE_STATE_DIR"
start_runner
"$PY" "$ROOT/tests/http/slowloris.py" "$PORT" 4 16 20 | tee "$T/slowloris.out" || fail "slowloris: $(cat "$T/slowloris.out")"
grep -q "trickling connections open: 48 of 64" "$T/slowloris.out" ||
    fail "per-address limit: $(head -1 "$T/slowloris.out")"
stop_runner
echo "ok: slowloris"
