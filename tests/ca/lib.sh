# shellcheck shell=bash
# tests/ca/lib.sh: shared by the content-addressed integration tests (sourced after
# harness/env.sh).  A test runs its body once per database backend, and compares what
# sluice built with what real Nix builds from the same expression in a separate store.
#
#   for_backends body        calls `body` with BACKEND=sqlite, then postgresql (or the
#                            list in $SLUICE_TEST_BACKENDS), each with a fresh state
#                            directory, database, $SALT and oracle store ($ORACLE)
#                            without PostgreSQL (no psql) the sqlite half runs and
#                            the test then exits 77 (skipped) naming what did not run
#   q SQL                    query the current database, '|' between columns
#   sl ARGS...               run sluice; sets $rc, $out, $err (never fails itself)
#   submit_jobs FILE [KEY=]ATTR...
#                            sluice submit FILE -A ATTR... with $SALT, in that order;
#                            sets ID[KEY] and DRV[KEY] (KEY defaults to ATTR) and labels
#                            each drv ATTR; the oracle store instantiates the same drvs
#                            (asserted equal)
#   run_once                 `sluice run --once` (at most 60 s); fails when it does
#   run_bg [ARGS] / run_stop `sluice run` in the background ($RUN_PID, log $RUN_LOG)
#   wait_until SECS CMD...   poll CMD every 0.1 s until it succeeds
#   listen_start, listen_stop, steps_started
#                            the step_started notifications ("build stepnr", sorted)
#   hydra_restart ID...      Hydra's "restart build" (web app), done in SQL
#   build_row ID             finished|buildStatus|isCachedBuild
#   step_rows ID             stepnr|type|drv|status|propagatedFrom job|resolved drv|busy|
#                            machine, drv paths replaced by their labels
#   step_outputs ID NR       name=path lines of a step (path empty when NULL)
#   build_outputs ID         name=path lines of a build
#
# The oracle is real Nix with a private /nix: `oracle CMD...` runs CMD in a mount
# namespace where the empty directory $ORACLE is bound over /nix, so nothing sluice
# built is reused ($SLUICE_ORACLE_WRAP CMD... instead, when set: the same with the Nix
# release of the local store under test).  The same expression instantiated there gives the same drv paths.
#   oracle_instantiate FILE ATTR...  drv paths
#   label_attrs FILE ATTR...         label the drvs of ATTRs (no build's top level)
#   oracle_build DRV...              nix-store -r --keep-going; records Nix's own
#                                    resolutions (ORACLE_RESOLVED[P] = P', labelled
#                                    "LABEL'" unless labelled already) and, for every drv
#                                    that built, its outputs (ORACLE_OUT[drv!name]) and
#                                    realisations (ORACLE_REAL[id] = outPath basename,
#                                    ORACLE_DEPS[id] = dependent realisation ids)
#   oracle_realisations              the oracle's realisations, "id outPath dep,dep" lines
#   store_realisations ID...         the same for the real store (read from Nix's database)
source "$ROOT/tests/db/pglib.sh"
need_nix
for c in unshare jq sqlite3; do command -v $c >/dev/null || skip "$c not installed"; done
[ "$(id -u)" = 0 ] || skip "needs root (mount namespaces, the local store)"

CA_NAME=$(basename "$0" .test.sh)
CA_NIX=$ROOT/tests/ca/nix
NIX_DB=/nix/var/nix/db/db.sqlite
RUN_PID=
BG_PIDS=()
declare -A ID DRV ORACLE_OUT ORACLE_REAL ORACLE_DEPS ORACLE_RESOLVED

ca_cleanup() {
    local p
    for p in "${BG_PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    return 0
}
# run ca_cleanup before the traps of env.sh and pglib.sh
ca_prev_trap=$(trap -p EXIT | sed "s/^trap -- '//; s/' EXIT\$//; s/'\\\\''/'/g")
# shellcheck disable=SC2064
trap "ca_rc=\$?; ca_cleanup; (exit \$ca_rc); $ca_prev_trap" EXIT

q() {
    case $URL in
    sqlite:*) sqlite3 -batch "${URL#sqlite:}" "$1" ;;
    *) pg_sql "$URL" "$1" ;;
    esac
}

sl() {
    rc=0
    # from $T: `sluice build` links ./result like nix-build
    (cd "$T" && exec "$SLUICE" "$@") >"$T/sl.out" 2>"$T/sl.err" || rc=$?
    out=$(cat "$T/sl.out")
    err=$(cat "$T/sl.err")
}

# ---------------------------------------------------------------- labels

# label PATH NAME: drv PATH (or its basename) reads as NAME in step_rows
label() {
    local base=${1##*/}
    printf 's#(/nix/store/)?%s#%s#g\n' "${base//./\\.}" "$2" >>"$LABELS"
}

relabel() { sed -E -f "$LABELS"; }

# ---------------------------------------------------------------- sluice

submit_jobs() {
    local file=$1 a i=0 ids args=() attrs=() keys=() id job drv
    shift
    for a in "$@"; do
        keys+=("${a%%=*}")
        attrs+=("${a#*=}")
        args+=(-A "${a#*=}")
    done
    ids=$("$SLUICE" submit "$file" --argstr salt "$SALT" "${args[@]}") || fail "$BACKEND: submit"
    mapfile -t ids_v <<<"$ids"
    [ ${#ids_v[@]} -eq $# ] || fail "$BACKEND: submit printed ${#ids_v[@]} ids for $# jobs"
    for i in "${!keys[@]}"; do
        id=${ids_v[$i]}
        IFS='|' read -r job drv < <(q "SELECT job, drvPath FROM Builds WHERE id = $id")
        assert_eq "$job" "${attrs[$i]}" "$BACKEND: job of build $id"
        ID[${keys[$i]}]=$id
        DRV[${keys[$i]}]=$drv
        grep -qF "${drv##*/}" "$LABELS" || label "$drv" "${attrs[$i]}"
    done
    # the oracle store gets the same drvs
    mapfile -t od < <(oracle_instantiate "$file" "${attrs[@]}")
    for i in "${!keys[@]}"; do
        assert_eq "${od[$i]:-}" "${DRV[${keys[$i]}]}" "$BACKEND: drv of ${attrs[$i]} instantiated in the oracle store"
    done
}

run_once() {
    local log=$T/run-$BACKEND-$(date +%s%N).log r=0
    timeout 60 "$SLUICE" run --once "$@" >"$log" 2>&1 || r=$?
    [ $r -eq 0 ] || { tail -30 "$log" >&2; fail "$BACKEND: sluice run --once exited with $r"; }
    RUN_LOG=$log
}

run_bg() {
    RUN_LOG=$T/run-$BACKEND-$(date +%s%N).log
    "$SLUICE" run "$@" >"$RUN_LOG" 2>&1 &
    RUN_PID=$!
    BG_PIDS+=("$RUN_PID")
}

run_stop() {
    local r=0
    [ -n "$RUN_PID" ] || return 0
    kill -TERM "$RUN_PID" 2>/dev/null || true
    wait "$RUN_PID" || r=$?
    RUN_PID=
    [ $r -eq 0 ] || { tail -30 "$RUN_LOG" >&2; fail "$BACKEND: sluice run exited with $r after SIGTERM"; }
}

# hydra_restart ID...: what Hydra's web app does to restart finished builds (clear the
# FailedPaths entries of their outputs, then finished = 0, iscachedbuild = 0)
hydra_restart() {
    local ids
    ids=$(printf '%s,' "$@")
    ids=${ids%,}
    q "DELETE FROM FailedPaths WHERE path IN (SELECT DISTINCT path FROM BuildOutputs
       WHERE build IN ($ids) AND path IS NOT NULL)" >/dev/null
    q "UPDATE Builds SET finished = 0, iscachedbuild = 0 WHERE id IN ($ids) AND finished = 1" >/dev/null
}

build_row() { q "SELECT finished, buildStatus, isCachedBuild FROM Builds WHERE id = $1"; }

step_rows() {
    q "SELECT s.stepnr, s.type, s.drvPath, coalesce(s.status, -1),
              coalesce((SELECT p.job FROM Builds p WHERE p.id = s.propagatedFrom), ''),
              coalesce(s.resolvedDrvPath, ''), s.busy, s.machine
       FROM BuildSteps s WHERE s.build = $1 ORDER BY s.stepnr" | relabel
}

step_outputs() {
    q "SELECT name || '=' || coalesce(path, '') FROM BuildStepOutputs
       WHERE build = $1 AND stepnr = $2 ORDER BY name"
}

build_outputs() {
    q "SELECT name || '=' || coalesce(path, '') FROM BuildOutputs WHERE build = $1 ORDER BY name"
}

# step_started notifications, "build stepnr" lines: SQLite keeps them in sluice_events;
# on PostgreSQL a psql listener started by listen_start collects what arrives after it
listen_start() {
    LISTEN_OUT=$T/listen-$BACKEND.out
    case $URL in
    sqlite:*) ;;
    *)
        {
            printf 'LISTEN step_started;\n'
            while :; do printf 'SELECT 1;\n'; sleep 0.1; done
        } | psql -X -q -A -t -d "$URL" >"$LISTEN_OUT" 2>&1 &
        LISTEN_PID=$!
        BG_PIDS+=("$LISTEN_PID")
        sleep 0.5
        ;;
    esac
}

listen_stop() {
    if [ -n "${LISTEN_PID:-}" ]; then
        sleep 0.5
        kill "$LISTEN_PID" 2>/dev/null || true
        wait "$LISTEN_PID" 2>/dev/null || true
        LISTEN_PID=
    fi
}

steps_started() {
    case $URL in
    sqlite:*) q "SELECT payload FROM sluice_events WHERE channel = 'step_started' ORDER BY id" ;;
    *) sed -nE 's/^Asynchronous notification "step_started" with payload "([^"]*)" received.*/\1/p' "$LISTEN_OUT" ;;
    esac | tr '\t' ' ' | sort
}

# ---------------------------------------------------------------- oracle

oracle() {
    if [ -n "${SLUICE_ORACLE_WRAP:-}" ]; then # another Nix release (tests/ca/matrix)
        ORACLE_DIR=$ORACLE "$SLUICE_ORACLE_WRAP" "$@"
        return
    fi
    ORACLE_DIR=$ORACLE unshare --mount --propagation private \
        sh -c 'mount --bind "$ORACLE_DIR" /nix && exec env -u NIX_REMOTE "$@"' sh "$@"
}

oracle_instantiate() {
    local file=$1 a args=()
    shift
    for a in "$@"; do args+=(-A "$a"); done
    oracle nix-instantiate "$file" --argstr salt "$SALT" "${args[@]}" 2>>"$T/oracle-$BACKEND.log"
}

# label_attrs FILE ATTR...: label the drvs of attributes that are no build's top level
label_attrs() {
    local file=$1 d i=1
    shift
    for d in $(oracle_instantiate "$file" "$@"); do
        grep -qF "${d##*/}" "$LABELS" || label "$d" "${!i}"
        i=$((i + 1))
    done
}

oracle_build() {
    local log=$T/oracle-build-$BACKEND.log d built=() failed p pp k v deps
    oracle nix-store -r --keep-going "$@" >/dev/null 2>"$log" || true
    # Nix's own resolutions: P' is labelled after P
    while read -r p pp; do
        grep -qF "${pp##*/}" "$LABELS" || label "$pp" "$(relabel <<<"$p")'"
        ORACLE_RESOLVED[$p]=$pp
    done < <(sed -nE "s/^resolved derivation: '([^']+)' -> '([^']+)'.*/\1 \2/p" "$log")
    failed=$(sed -nE "s/^error: (builder for|[0-9]+ dependencies of derivation) '([^']+)'.*/\2/p" "$log")
    for d in "$@"; do
        grep -qxF "$d" <<<"$failed" || grep -qxF "${ORACLE_RESOLVED[$d]:-/}" <<<"$failed" ||
            built+=("$d")
    done
    [ ${#built[@]} -gt 0 ] || return 0
    # Nix >= 2.13 names a drv's outputs DRV^*
    [ -z "${SLUICE_ORACLE_WRAP:-}" ] || built=("${built[@]/%/^*}")
    oracle nix build --json --no-link "${built[@]}" >"$T/ob.json" 2>>"$log" ||
        { tail "$log" >&2; fail "$BACKEND: oracle: nix build --json"; }
    while read -r d k v; do
        ORACLE_OUT[$d!$k]=$v
    done < <(jq -r '.[] | .drvPath as $d | .outputs | to_entries[] | "\($d) \(.key) \(.value)"' "$T/ob.json")
    local resolved=("${ORACLE_RESOLVED[@]}")
    [ -z "${SLUICE_ORACLE_WRAP:-}" ] || [ ${#resolved[@]} -eq 0 ] || resolved=("${resolved[@]/%/^*}")
    oracle nix realisation info --json "${built[@]}" "${resolved[@]}" 2>>"$log" |
        jq -r '.[] | "\(.id) \(.outPath) \(.dependentRealisations | keys | join(","))"' >"$T/or.txt"
    while read -r k v deps; do
        ORACLE_REAL[$k]=$v
        ORACLE_DEPS[$k]=$deps
    done <"$T/or.txt"
}

# store_realisations ID...: "id outPath dep,dep..." lines (sorted) for those of the ids
# that the real store has, read from Nix's database (one query)
store_realisations() {
    local vals
    [ $# -gt 0 ] || return 0
    vals=$(for k in "$@"; do printf "('%s','%s')\n" "${k%!*}" "${k##*!}"; done | paste -sd, -)
    sqlite3 -batch -separator ' ' "file:$NIX_DB?mode=ro" \
        "SELECT r.drvPath || '!' || r.outputName, substr(v.path, 12),
                coalesce(d.drvPath || '!' || d.outputName, '')
         FROM Realisations r JOIN ValidPaths v ON v.id = r.outputPath
         LEFT JOIN RealisationsRefs rr ON rr.referrer = r.id
         LEFT JOIN Realisations d ON d.id = rr.realisationReference
         WHERE (r.drvPath, r.outputName) IN (VALUES $vals)" |
        sort -u | awk '{ k = $1 " " $2; if (!(k in deps)) { order[n++] = k; deps[k] = "" }
                         if ($3 != "") deps[k] = deps[k] (deps[k] == "" ? "" : ",") $3 }
                       END { for (i = 0; i < n; i++) print order[i] " " deps[order[i]] }' | sort
}

# oracle_realisations: the oracle's realisations in the same format
oracle_realisations() { sort "$T/or.txt"; }

# ---------------------------------------------------------------- backends

for_backends() {
    local body=$1
    for BACKEND in ${SLUICE_TEST_BACKENDS:-sqlite postgresql}; do
        if [ "$BACKEND" != sqlite ] && ! pg_usable; then
            pg_skip_note "$BACKEND"
            continue
        fi
        export SLUICE_STATE_DIR=$T/state-$BACKEND
        ORACLE=$T/oracle-$BACKEND
        LABELS=$T/labels-$BACKEND.sed
        mkdir -p "$SLUICE_STATE_DIR" "$ORACLE"
        : >"$LABELS"
        ID=() DRV=() ORACLE_OUT=() ORACLE_REAL=() ORACLE_DEPS=() ORACLE_RESOLVED=()
        SALT="ca-$CA_NAME-$BACKEND-$$-$(date +%s%N)"
        if [ "$BACKEND" = sqlite ]; then
            URL=sqlite:$SLUICE_STATE_DIR/sluice.db
        else
            URL=$(pg_new_db "ca_$(tr -c 'a-z0-9\n' _ <<<"$CA_NAME")_$$")
        fi
        "$SLUICE" db init --db "$URL" >/dev/null || fail "$BACKEND: db init"
        export SLUICE_DB=$URL
        echo "=== $CA_NAME on $BACKEND (salt $SALT)"
        "$body"
        run_stop
        PG_RAN+="${PG_RAN:+ }$BACKEND"
    done
    pg_skip_end
}
