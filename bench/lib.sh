# bench/lib.sh: sourced by the bench scripts (not run on its own).
#
#   bench_setup            Nix settings of the tests, BUILD dir (default build/; absolute
#                          for another tree's build, with BENCH_NO_MAKE=1), builds
#                          $SLUICE and $GEN (bench/gen-graph.c linked with the project's
#                          objects), temp dir $BT removed on exit
#   bench_load             "1-min load average/cores" for the report
#   pg_up                  a private PostgreSQL (tests/harness/pg.sh), stopped on exit
#   backends_up B...       pg_up when one of B is postgresql (call before db_new)
#   db_new BACKEND NAME    a fresh database (sqlite|postgresql) with sluice's schema;
#                          prints its URL
#   graph NAME GEN-ARGS... a generated graph, cached in bench/out/graphs/NAME (list of
#                          builds); regenerated when its drvs are gone.  Sets $LIST.
#   runner_start STATE URL [ARGS...]   `sluice run` in the background with an HTTP port;
#                          sets $RPID $PORT; runner_stop stops it
#   metric NAME            a sample of /metrics (first match, value only)
#   status_json KEY        a key of the runner's status JSON (sluice status --json)
#   rss_peak_kb PID        VmHWM of a process
#   spread FILE            "min<TAB>median<TAB>max" of the numbers in FILE (one a line)
#   contention FILE...     0 (and the lines on stderr) when Nix's output in FILE shows
#                          lock contention ("database is busy", "waiting for ... lock"):
#                          such a run measures the contention, and the script must fail
#   store_watch_start FILE / store_watch_stop
#                          while a run lasts, note every process of this mount
#                          namespace outside this script's own process tree that has
#                          the local store's database open ("pid comm" lines in FILE)
#   contention_outside LOG WATCH
#                          for a run watched by store_watch_start: 0 (the script must
#                          fail; why on stderr) when WATCH names an outside process;
#                          else the run's own processes contended with each other
#                          (Nix's build hook: nix-store and its build-remote children
#                          all write the local store; sluice's sessions on one
#                          builder's store): prints the count of LOG's contention
#                          lines, returns 1
#   keep_log FILE NAME     copy a run's stderr to bench/out/logs/NAME (kept for reading)
#   phase_table FILE       median and p90 per step phase of the runner's -v "phases:" lines
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/bench/out
BUILD=${BUILD:-build}
case $BUILD in
/*) BDIR=$BUILD ;;
*) BDIR=$ROOT/$BUILD ;;
esac
SLUICE=$BDIR/sluice
GEN=$OUT/gen-graph
RPID=
PORT=
PG_DIR=
BENCH_PIDS=()

bench_cleanup() {
    local p
    if [ -n "$RPID" ]; then kill -TERM "$RPID" 2>/dev/null && wait "$RPID" 2>/dev/null; fi
    store_watch_stop
    for p in "${BENCH_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    if [ -n "$PG_DIR" ]; then bash "$ROOT/tests/harness/pg.sh" stop "$PG_DIR" >/dev/null 2>&1; fi
    rm -rf "$BT"
    return 0
}

bench_setup() {
    mkdir -p "$OUT"
    BT=$(mktemp -d /tmp/sluice-bench.XXXXXX)
    trap 'bench_cleanup' EXIT
    NIX_CONFIG=$(printf '%s\n' 'experimental-features = nix-command ca-derivations' \
        'substituters =' 'build-users-group =' 'sandbox = false')
    export NIX_CONFIG
    mkdir -p "$BT/nixconf"
    export NIX_CONF_DIR=$BT/nixconf
    echo "building $BUILD/sluice and bench/out/gen-graph" >&2
    if [ -z "${BENCH_NO_MAKE:-}" ]; then make -s -j2 BUILD="$BUILD" "$BUILD/sluice" >&2; fi
    # shellcheck disable=SC2046
    cc -std=c17 -O2 -g -D_GNU_SOURCE -Isrc $(pkg-config --cflags sqlite3 libpq libcrypto jansson) \
        -pthread -o "$GEN" bench/gen-graph.c $(ls "$BDIR"/src/util/*.o "$BDIR"/src/nix/*.o \
        "$BDIR"/src/store/*.o "$BDIR"/src/db/*.o) \
        $(pkg-config --libs sqlite3 libpq libcrypto jansson libzstd) -pthread -lm
}

bench_load() {
    awk -v c="$(nproc)" '{ printf "%s/%s", $1, c }' /proc/loadavg
}

# backends_up BACKEND...: the private PostgreSQL when one of them is postgresql, started
# in the script's own shell (db_new runs in $(...): a server started there would be
# neither reused nor stopped)
backends_up() {
    case " $* " in *" postgresql "*) pg_up ;; esac
}

pg_up() {
    [ -n "$PG_DIR" ] && return 0
    PG_DIR=$(mktemp -d /tmp/sluice-bench-pg.XXXXXX)
    bash "$ROOT/tests/harness/pg.sh" start "$PG_DIR" >/dev/null
}

db_new() {
    local backend=$1 name=$2 url
    case $backend in
    sqlite)
        rm -rf "$BT/db-$name"
        mkdir -p "$BT/db-$name"
        url="sqlite:$BT/db-$name/sluice.db"
        ;;
    postgresql)
        [ -n "$PG_DIR" ] || { echo "db_new: no PostgreSQL (backends_up first)" >&2; return 1; }
        psql -X -q -d "postgresql://postgres@/postgres?host=$PG_DIR" \
            -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" -c "CREATE DATABASE $name" >/dev/null
        url="postgresql://postgres@/$name?host=$PG_DIR"
        ;;
    *) echo "unknown backend $backend" >&2; return 1 ;;
    esac
    "$SLUICE" --state-dir "$BT/init-$name" --db "$url" db init >/dev/null
    echo "$url"
}

# graph NAME GEN-ARGS...: generate (fsync-metadata off for the store writes) or reuse
graph() {
    local name=$1 dir first
    shift
    dir=$OUT/graphs/$name
    LIST=$dir/list
    if [ -s "$LIST" ]; then
        first=$(head -1 "$LIST" | cut -f1)
        if [ -e "$first" ] && [ -e "$(tail -1 "$LIST" | cut -f1)" ]; then
            echo "graph $name: reusing $(wc -l <"$LIST") builds from $LIST" >&2
            return 0
        fi
    fi
    rm -rf "$dir"
    mkdir -p "$dir/roots"
    echo "graph $name: generating ($*)" >&2
    NIX_CONFIG="$NIX_CONFIG"$'\nfsync-metadata = false' \
        "$GEN" gen "$@" --salt "$name-$(date +%s%N)" --root-dir "$dir/roots" --list "$LIST.tmp" \
        >"$dir/gen.out" 2>"$dir/gen.err" || { tail -3 "$dir/gen.err" >&2; return 1; }
    mv "$LIST.tmp" "$LIST"
    echo "graph $name: $(cat "$dir/gen.out") (nodes ca deferred builds drv_s db_s)" >&2
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

runner_start() {
    local state=$1 url=$2
    shift 2
    PORT=$(free_port)
    mkdir -p "$state"
    "$SLUICE" --state-dir "$state" --db "$url" run --http "127.0.0.1:$PORT" "$@" \
        >"$state/run.log" 2>&1 &
    RPID=$!
    local i
    for i in $(seq 1 200); do
        curl -sf "http://127.0.0.1:$PORT/metrics" >/dev/null 2>&1 && return 0
        kill -0 "$RPID" 2>/dev/null || { tail -5 "$state/run.log" >&2; return 1; }
        sleep 0.05
    done
    echo "runner did not answer on port $PORT" >&2
    return 1
}

runner_stop() {
    [ -n "$RPID" ] || return 0
    kill -TERM "$RPID" 2>/dev/null || true
    wait "$RPID" 2>/dev/null || true
    RPID=
}

metric() {
    curl -sf "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 == m && v == "" { v = $2 } END { print v }'
}

status_json() {
    curl -sf "http://127.0.0.1:$PORT/status" | python3 -c \
        "import json,sys; print(json.load(sys.stdin)['queueRunner'].get('$1'))"
}

rss_peak_kb() {
    awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"
}

rss_kb() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

spread() {
    sort -g "$1" | awk '{ v[NR] = $1 } END {
        if (!NR) { printf "-\t-\t-"; exit }
        m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.6g\t%.6g\t%.6g", v[1], m, v[NR] }'
}

CONTENTION_RE='database is busy|waiting for (the big garbage collector )?lock|waiting for locks|SQLite database .* is busy'
contention() {
    if grep -qiE "$CONTENTION_RE" "$@" 2>/dev/null; then
        echo "lock contention in Nix's output:" >&2
        grep -iE "$CONTENTION_RE" "$@" | head -5 >&2
        return 0
    fi
    return 1
}

# store_watch_start FILE: a sampler (every 0.2 s) of the processes outside this script's
# tree, in this mount namespace (builder hosts of the lab have their own /nix), with
# /nix/var/nix/db/db.sqlite open
STORE_WATCH_PID=
store_watch_start() {
    local out=$1 me=$$ myns
    myns=$(readlink /proc/self/ns/mnt)
    : >"$out"
    (
        while :; do
            for fd in $(find /proc/[0-9]*/fd -lname '/nix/var/nix/db/db.sqlite*' 2>/dev/null); do
                pid=${fd#/proc/}; pid=${pid%%/*}
                [ "$(readlink "/proc/$pid/ns/mnt" 2>/dev/null)" = "$myns" ] || continue
                p=$pid ours=0
                while [ -n "$p" ] && [ "$p" -gt 1 ]; do
                    [ "$p" = "$me" ] && { ours=1; break; }
                    p=$(awk '/^PPid:/ { print $2 }' "/proc/$p/status" 2>/dev/null)
                done
                [ "$ours" = 1 ] || echo "$pid $(cat "/proc/$pid/comm" 2>/dev/null)" >>"$out"
            done
            sleep 0.2
        done
    ) &
    STORE_WATCH_PID=$!
}

store_watch_stop() {
    [ -n "$STORE_WATCH_PID" ] || return 0
    kill "$STORE_WATCH_PID" 2>/dev/null || true
    wait "$STORE_WATCH_PID" 2>/dev/null || true
    STORE_WATCH_PID=
}

contention_outside() {
    local log=$1 watch=$2
    if [ -s "$watch" ]; then
        echo "processes outside the run held the store:" >&2
        sort -u "$watch" | head -5 >&2
        contention "$log" || true
        return 0
    fi
    grep -ciE "$CONTENTION_RE" "$log" 2>/dev/null || true
    return 1
}

keep_log() {
    mkdir -p "$OUT/logs"
    cp "$1" "$OUT/logs/$2"
}

# phase_table FILE: the lines after "phases: " of the runner's -v log (one a step), as
# "phase NAME median_ms M p90_ms P steps N" per phase and "phase overhead ..." (a
# step's time outside its build)
phase_table() {
    [ -s "$1" ] || return 0
    awk -F', ' '
    function q(a, n, f,   i, j, t) {   # quantile f of a[1..n] (sorted in place)
        for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
        i = int(f * n + 0.999999); if (i < 1) i = 1; return a[i]
    }
    {
        tot = 0; b = 0
        for (k = 1; k <= NF; k++) {
            split($k, w, " "); v[w[1], ++c[w[1]]] = w[2]; tot += w[2]
            if (w[1] == "build") b = w[2]
            if (!(w[1] in seen)) { seen[w[1]] = 1; order[++no] = w[1] }
        }
        ov[++nov] = tot - b
    }
    END {
        for (o = 1; o <= no; o++) {
            p = order[o]; n = c[p]
            for (i = 1; i <= n; i++) x[i] = v[p, i]
            printf "phase\t%s\tmedian_ms %d\tp90_ms %d\tsteps %d\n", p, q(x, n, 0.5), q(x, n, 0.9), n
        }
        if (nov) printf "phase\toverhead\tmedian_ms %d\tp90_ms %d\tsteps %d\n", q(ov, nov, 0.5), q(ov, nov, 0.9), nov
    }' "$1"
}
