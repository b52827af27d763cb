#!/usr/bin/env bash
# Hostile and malformed requests to the HTTP server of `sluice run` get a 4xx answer and
# never crash it: unknown paths, malformed and unknown ids, path traversal (raw, with
# "..", percent-encoded), invalid drv basenames, bad ?tail, other methods, oversized
# URLs, headers and bodies, broken request lines, and mutations when no admin token is
# configured.  The server answers /status afterwards, and the runner stops cleanly.
# Also: `--http PORT` binds 127.0.0.1; a bad --http value or a port in use stops
# `sluice run` at start with a message.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/http_lib.sh"
need_nix
need_http_tools

"$SLUICE" db init >/dev/null
start_runner   # no --http-admin-token

expect() { # expect CODE PATH [CURL ARGS...]
    local want=$1 path=$2 got
    shift 2
    got=$(hget "$path" --path-as-is "$@")
    [ "$got" = "$want" ] || { cat "$T/body"; fail "$* $path: got $got, expected $want"; }
}
VALID=ln9dra2fsjzplvhsal7ry3b8nvif13xz-absent.drv

expect 200 /
expect 200 /status
expect 200 /status/
expect 404 /nope
expect 404 /status/nope
expect 404 /status/build/1
expect 404 /build/1/nope
expect 404 /build/1/step/1
expect 404 /build/1/step/1/log/head
expect 404 /metrics/x
expect 400 /build/abc
expect 400 /build/0
expect 400 /build/-1
expect 400 /build/01
expect 400 /build/1e3
expect 400 /build/99999999999999999999
expect 400 '/build/%201'
expect 404 /build/12345
expect 404 /build/12345/log
expect 404 /build/12345/step/1/log
expect 400 /build/1/step/x/log
expect 400 /build/1/step/0/log
expect 400 /status/build/abc/active
expect 200 /status/build/12345/active
assert_eq "$(jpy "$T/body" 'j["active"]')" "False" "unknown build active"
# drv basenames and traversal
expect 404 "/log/$VALID"
expect 400 "/log/$VALID?tail=abc"
expect 400 "/log/$VALID?tail=-1"
expect 400 "/log/$VALID?tail=99999999999"
expect 400 /log/abc
expect 400 /log/passwd
expect 400 /log/../../etc/passwd
expect 400 /log/..
expect 400 /log/%2e%2e
expect 400 /log/..%2f..%2fetc%2fpasswd
expect 400 /log/%2fetc%2fpasswd
expect 400 "/log/${VALID%.drv}%2f..%2f.drv"
expect 400 "/log/$VALID%00.txt"
expect 400 /status/../metrics
expect 400 /./status
expect 400 //status
expect 400 /status//machines
expect 404 "/log/$VALID/x"
# an absolute drv path in the URL is not a basename
expect 400 "/log/%2Fnix%2Fstore%2F$VALID"
# methods
expect 405 /status -X PUT
expect 405 /status -X DELETE
expect 405 /status -X POST
expect 405 /metrics -X POST
expect 405 /build/1/cancel
expect 405 /build/1/bump -X PUT
[ "$(header Allow)" = POST ] || fail "405 without Allow: POST"
# mutations without a configured token
expect 403 /build/1/cancel -X POST
grep -q 'no http-admin-token' "$T/body" || fail "403 does not say why"
expect 403 /build/1/cancel -X POST -H 'Authorization: Bearer anything'
expect 403 /build/1/bump -X POST -H 'Authorization: Bearer '
# sizes: URL, one header, many headers, body
long=$(head -c 40000 /dev/zero | tr '\0' a)
code=$(hget "/log/$long"); case $code in 4*) ;; *) fail "long URL: $code" ;; esac
code=$(hget /status -H "X-Big: $long"); case $code in 4*) ;; *) fail "big header: $code" ;; esac
val=${long:0:100}
for i in $(seq 1 400); do printf 'X-H%d: %s\n' "$i" "$val"; done >"$T/headers"
code=$(hget /status -H "@$T/headers"); case $code in 4*) ;; *) fail "many headers: $code" ;; esac
head -c 100000 /dev/zero | tr '\0' c >"$T/big"
expect 413 /build/1/bump -X POST --data-binary "@$T/big"
expect 200 /status --data-binary '' -X GET

# raw bytes: broken request lines and headers get 400 (or the connection is closed), and
# a half request is dropped at the timeout without harm
"$PY" - "$PORT" <<'EOF' || fail "raw requests"
import socket, sys
port = int(sys.argv[1])
cases = [
    b"GARBAGE\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET /status HTTP/9.9\r\n\r\n",
    b"GET /status HTTP/1.1\r\nBad Header Line\r\n\r\n",
    b"GET /status HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"GET /status HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"GET /sta\x00tus HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /log/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /build/1/cancel HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"2000\r\n" + b"x" * 0x2000 + b"\r\n0\r\n\r\n",
]
for raw in cases:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(raw)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    status = data.split(b" ", 2)[1] if data.startswith(b"HTTP/") else b"closed"
    if status != b"closed" and not status.startswith(b"4") and not status.startswith(b"5"):
        print("raw request %r answered %r" % (raw[:40], data[:80]))
        sys.exit(1)
    if status.startswith(b"5") and status != b"505":
        print("raw request %r answered %r" % (raw[:40], data[:80]))
        sys.exit(1)
EOF

# still serving, and the runner is alive
expect 200 /status
assert_eq "$(jpy "$T/body" 'j["queueRunner"]["status"]')" "up" "status after abuse"
expect 200 /metrics
kill -0 "$RUN_PID" || fail "sluice run died"
stop_runner

# bind options
"$SLUICE" run --http 0 >"$T/run2.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do grep -q 'listening on' "$T/run2.log" && break; sleep 0.05; done
grep -q 'http: listening on 127\.0\.0\.1:[0-9]' "$T/run2.log" || { cat "$T/run2.log"; kill $pid; fail "--http PORT does not bind 127.0.0.1"; }
kill -TERM $pid
wait $pid || fail "sluice run --http 0 exit status"
rc=0
"$SLUICE" run --http nonsense:xx >"$T/run3.log" 2>&1 || rc=$?
[ $rc -ne 0 ] || fail "bad --http accepted"
grep -q "bad port" "$T/run3.log" || { cat "$T/run3.log"; fail "bad --http message"; }
"$PY" -c 'import socket,time,sys; s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(30)' >"$T/port" &
holder=$!
for _ in $(seq 1 100); do [ -s "$T/port" ] && break; sleep 0.05; done
rc=0
timeout 20 "$SLUICE" run --http "127.0.0.1:$(cat "$T/port")" >"$T/run4.log" 2>&1 || rc=$?
kill $holder; wait $holder 2>/dev/null || true
[ $rc -eq 1 ] || { cat "$T/run4.log"; fail "port in use: exit status $rc"; }
grep -q "cannot listen" "$T/run4.log" || { cat "$T/run4.log"; fail "port in use message"; }
echo "ok"
