#!/usr/bin/env bash
# `sluice submit` on SQLite and PostgreSQL, checked against nix-instantiate: one build per
# derivation nix-build would build, jobs named by attribute path, Hydra's columns and
# meta fields, flags overriding meta, BuildOutputs (NULL path for floating CA and
# deferred outputs, the real paths otherwise), project/jobset creation, GC roots of the
# top-level .drv files recorded in sluice_gcroots and known to Nix, builds_added, DRV
# arguments; bad input leaves nothing behind.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/pglib.sh"
need_nix
JOBS=$ROOT/tests/data/db/jobs.nix
SALT="submit-$$-$(date +%s%N)"

run() {
    rc=0
    "$SLUICE" "$@" >"$T/out" 2>"$T/err" || rc=$?
    out=$(cat "$T/out")
    err=$(cat "$T/err")
}
expect_rc() { [ "$rc" -eq "$1" ] || fail "$2: exit $rc, expected $1; stdout: $out; stderr: $err"; }

# q SQL: query the current database (sqlite3 or psql), '|' between columns
q() {
    case $URL in
    sqlite:*) sqlite3 -batch "${URL#sqlite:}" "$1" ;;
    *) pg_sql "$URL" "$1" ;;
    esac
}

pg_server
for backend in sqlite postgresql; do
    export SLUICE_STATE_DIR=$T/state-$backend
    if [ $backend = sqlite ]; then
        URL=sqlite:$SLUICE_STATE_DIR/sluice.db
    else
        URL=$(pg_new_db sluice_submit)
        "$SLUICE" db init --db "$URL" >/dev/null
    fi
    export SLUICE_DB=$URL

    # --- a whole file: the same derivations as nix-instantiate, in the same order
    run submit "$JOBS" --argstr salt "$SALT"
    expect_rc 0 "$backend: submit FILE"
    mapfile -t ids <<<"$out"
    expected=$(nix-instantiate "$JOBS" --argstr salt "$SALT" 2>/dev/null)
    got=$(q "SELECT drvPath FROM Builds ORDER BY id")
    assert_eq "$got" "$expected" "$backend: derivations"
    assert_eq "${#ids[@]}" "$(wc -l <<<"$expected")" "$backend: printed ids"
    assert_eq "$(q "SELECT id FROM Builds ORDER BY id" | tr '\n' ' ')" "$(tr '\n' ' ' <<<"$out")" "$backend: ids"
    assert_eq "$(q "SELECT job FROM Builds ORDER BY id" | tr '\n' ' ')" \
        "ca deferred ia multi nested.deeper.x nested.inner " "$backend: job names"

    # Hydra's columns for the job with every meta field
    row=$(q "SELECT finished, nixName, description, homepage, license, maintainers, maxsilent,
                    timeout, priority, globalPriority, isChannel, isCurrent, keep, system
             FROM Builds WHERE job = 'ia'")
    assert_eq "$row" "0|ia|an input-addressed job|https://example.org/ia|mit, gpl3|a@example.org, b@example.org|56|1234|7|0|1|1|0|$(nix-instantiate --eval -E builtins.currentSystem | tr -d '"')" "$backend: ia row"
    # no meta: NULLs (the runner's defaults), priority 100
    row=$(q "SELECT coalesce(description, 'NULL'), coalesce(license, 'NULL'), coalesce(maxsilent, -1),
                    coalesce(timeout, -1), priority, isChannel FROM Builds WHERE job = 'multi'")
    assert_eq "$row" "NULL|NULL|-1|-1|100|0" "$backend: multi row"
    now=$(date +%s)
    ts=$(q "SELECT timestamp FROM Builds WHERE job = 'ia'")
    [ $((now - ts)) -lt 120 ] || fail "$backend: timestamp $ts is not now ($now)"

    # outputs: NULL for floating CA and deferred, the static paths otherwise
    for job in ca deferred; do
        assert_eq "$(q "SELECT o.name || '=' || coalesce(o.path, 'NULL') FROM BuildOutputs o JOIN Builds b ON b.id = o.build WHERE b.job = '$job'")" \
            "out=NULL" "$backend: $job outputs"
    done
    for job in ia multi; do
        drv=$(q "SELECT drvPath FROM Builds WHERE job = '$job'")
        want=$(nix-store -q --outputs "$drv" | sort | tr '\n' ' ')
        got=$(q "SELECT o.path FROM BuildOutputs o JOIN Builds b ON b.id = o.build WHERE b.job = '$job'" | sort | tr '\n' ' ')
        assert_eq "$got" "$want" "$backend: $job outputs"
    done
    assert_eq "$(q "SELECT count(*) FROM BuildOutputs o JOIN Builds b ON b.id = o.build WHERE b.job = 'multi'")" 2 "$backend: multi has 2 outputs"

    # project and jobset
    assert_eq "$(q "SELECT j.project || ':' || j.name || ':' || j.enabled FROM Jobsets j JOIN Builds b ON b.jobset_id = j.id GROUP BY j.project, j.name, j.enabled")" \
        "sluice:default:0" "$backend: jobset"
    assert_eq "$(q "SELECT owner FROM Projects WHERE name = 'sluice'")" "sluice" "$backend: project owner"

    # GC roots: one per build, pointing at its drv, registered with Nix
    assert_eq "$(q "SELECT count(*) FROM sluice_gcroots g JOIN Builds b ON b.id = g.build AND b.drvPath = g.path WHERE g.kind = 'drv'")" \
        "${#ids[@]}" "$backend: gcroots rows"
    nix-store --gc --print-roots 2>/dev/null >"$T/roots"
    while IFS='|' read -r root path; do
        [ "$(readlink "$root")" = "$path" ] || fail "$backend: root $root does not point to $path"
        grep -qF "$root -> $path" "$T/roots" || fail "$backend: Nix does not know the root $root"
    done < <(q "SELECT root, path FROM sluice_gcroots")

    # builds_added with the lowest new id
    if [ $backend = sqlite ]; then
        assert_eq "$(q "SELECT payload FROM sluice_events WHERE channel = 'builds_added' ORDER BY id DESC LIMIT 1")" \
            "${ids[0]}" "$backend: builds_added"
    fi

    # --- flags override meta; -A paths; list elements; --arg; project/jobset created
    if [ $backend = postgresql ]; then
        # listen for builds_added while submitting
        mkfifo "$T/psql-in"
        psql -X -d "$URL" <"$T/psql-in" >"$T/psql-out" 2>&1 &
        psql_pid=$!
        exec 3>"$T/psql-in"
        echo "LISTEN builds_added;" >&3
        sleep 0.5
    fi
    run submit --project p2 --jobset j2 --priority 9 --global-priority 3 --timeout 11 --max-silent 22 \
        "$JOBS" -A ia -A list -A nested.inner --arg extra '[ (derivation { name = "e"; system = "x"; builder = "/bin/sh"; }) ]' --argstr salt "$SALT"
    expect_rc 0 "$backend: submit with flags"
    mapfile -t ids2 <<<"$out"
    if [ $backend = postgresql ]; then
        sleep 0.5
        echo "SELECT 1;" >&3
        exec 3>&-
        wait $psql_pid || true
        grep -q "notification \"builds_added\" with payload \"${ids2[0]}\"" "$T/psql-out" ||
            fail "$backend: no builds_added with payload ${ids2[0]}: $(cat "$T/psql-out")"
    fi
    in_list="$(IFS=,; echo "${ids2[*]}")"
    assert_eq "$(q "SELECT job || ':' || priority || ':' || globalPriority || ':' || timeout || ':' || maxsilent FROM Builds WHERE id IN ($in_list) ORDER BY id" | tr '\n' ' ')" \
        "ia:9:3:11:22 list.0:9:3:11:22 list.1:9:3:11:22 list.2:9:3:11:22 nested.inner:9:3:11:22 " "$backend: flags and -A"
    assert_eq "$(q "SELECT DISTINCT j.project || ':' || j.name FROM Jobsets j JOIN Builds b ON b.jobset_id = j.id WHERE b.id IN ($in_list)")" \
        "p2:j2" "$backend: new project and jobset"
    # the same drv submitted twice is two builds (as Hydra does for two evaluations)
    assert_eq "$(q "SELECT count(*) FROM Builds WHERE job = 'ia'")" 2 "$backend: ia twice"

    # --- DRV arguments: job = derivation name
    drv=$(nix-instantiate "$JOBS" -A hidden.y --argstr salt "$SALT" 2>/dev/null)
    run submit --jobset drvs "$drv"
    expect_rc 0 "$backend: submit DRV"
    assert_eq "$(q "SELECT job || '|' || nixName || '|' || drvPath || '|' || priority FROM Builds WHERE id = $out")" \
        "y|y|$drv|100" "$backend: DRV row"

    # --- bad input: nothing inserted, no roots left
    before=$(q "SELECT count(*) FROM Builds")
    roots_before=$(ls "$SLUICE_STATE_DIR/roots" | wc -l)
    run submit "$JOBS" -A notADerivation
    expect_rc 1 "$backend: not a derivation"
    grep -q "does not evaluate to a derivation" <<<"$err" || fail "$backend: message: $err"
    run submit "$JOBS" -A noSuchAttr
    expect_rc 1 "$backend: missing attribute"
    run submit "$T/no-such-file.nix"
    expect_rc 1 "$backend: missing file"
    run submit /nix/store/00000000000000000000000000000000-missing.drv
    expect_rc 1 "$backend: missing drv"
    run submit /etc/passwd.drv
    expect_rc 2 "$backend: not a store path"
    run submit --bogus "$JOBS"
    expect_rc 2 "$backend: unknown option"
    run submit --priority high "$JOBS"
    expect_rc 2 "$backend: bad number"
    run submit
    expect_rc 2 "$backend: nothing to submit"
    assert_eq "$(q "SELECT count(*) FROM Builds")" "$before" "$backend: builds after bad input"
    assert_eq "$(ls "$SLUICE_STATE_DIR/roots" | wc -l)" "$roots_before" "$backend: roots after bad input"
done
echo "submit: ok"
