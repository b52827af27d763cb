#!/usr/bin/env python3
"""check.py: compare what the HTTP server answered with the database (tests only).

    check.py build    DB BUILD_ID BUILD_JSON      /build/ID against Builds, BuildSteps,
                                                  BuildStepOutputs, BuildOutputs
    check.py running  DB STATUS_JSON MACHINES_JSON METRICS_TEXT
                                                  /status, /status/machines and /metrics
                                                  against the busy BuildSteps rows and
                                                  the unfinished Builds
    check.py final    DB METRICS_TEXT LAUNCHED    counters after the builds finished, the
                                                  step histograms (one queue wait and one
                                                  duration per started step, durations
                                                  summing to the rows' times) and the
                                                  process_* figures (LAUNCHED: the epoch
                                                  time just before the runner was started)

Exits 1 with the first difference.
"""
import json
import os
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import promparse  # noqa: E402


def fail(msg):
    print("check: " + msg, file=sys.stderr)
    sys.exit(1)


def eq(what, got, want):
    if got != want:
        fail("%s: got %r, database has %r" % (what, got, want))


def check_build(db, bid, path):
    j = json.load(open(path))
    b = db.execute("SELECT id, finished, buildStatus, drvPath, job, system, globalPriority, "
                   "priority, startTime, stopTime, isCachedBuild FROM Builds WHERE id = ?",
                   (bid,)).fetchone()
    if not b:
        fail("no build %d in the database" % bid)
    eq("id", j["id"], b[0])
    eq("finished", j["finished"], bool(b[1]))
    eq("buildstatus", j["buildstatus"], b[2])
    eq("drvpath", j["drvpath"], b[3])
    eq("job", j["job"], b[4])
    eq("system", j["system"], b[5])
    eq("globalpriority", j["globalpriority"], b[6])
    eq("priority", j["priority"], b[7])
    eq("starttime", j["starttime"], b[8])
    eq("stoptime", j["stoptime"], b[9])
    eq("iscachedbuild", j["iscachedbuild"], None if b[10] is None else bool(b[10]))
    outs = dict(db.execute("SELECT name, path FROM BuildOutputs WHERE build = ?", (bid,)))
    eq("buildoutputs", {k: v["path"] for k, v in j["buildoutputs"].items()}, outs)
    rows = db.execute("SELECT stepnr, type, drvPath, busy, status, resolvedDrvPath, machine, "
                      "system, errorMsg, startTime, stopTime, propagatedFrom FROM BuildSteps "
                      "WHERE build = ? ORDER BY stepnr", (bid,)).fetchall()
    got = [(s["stepnr"], s["type"], s["drvpath"], s["busy"], s["status"], s["resolveddrvpath"],
            s["machine"], s["system"], s["errormsg"], s["starttime"], s["stoptime"],
            s["propagatedfrom"]) for s in j["steps"]]
    eq("steps", got, [tuple(r) for r in rows])
    for s in j["steps"]:
        outs = dict(db.execute("SELECT name, path FROM BuildStepOutputs WHERE build = ? AND "
                               "stepnr = ?", (bid, s["stepnr"])))
        eq("outputs of step %d" % s["stepnr"], s["outputs"], outs)
        if s["status"] == 13:
            t = s.get("terminal")
            target = os.path.dirname(s["drvpath"]) + "/" + s["resolveddrvpath"]
            r = db.execute("SELECT build, stepnr, status, busy FROM BuildSteps WHERE drvPath = ? "
                           "AND (status IS NULL OR status <> 13) ORDER BY build <> ?, "
                           "status IS NULL, status, stopTime DESC", (target, bid)).fetchone()
            if r is None:
                eq("terminal of step %d" % s["stepnr"], t, None)
                continue
            if not t:
                fail("step %d: no terminal, the database has %r" % (s["stepnr"], r))
            eq("terminal of step %d" % s["stepnr"],
               (t["buildId"], t["stepnr"], t["status"], t["busy"], t["drvPath"]),
               (r[0], r[1], r[2], r[3], target))
            if "log" in s:
                fail("resolved step %d has a log link" % s["stepnr"])
        elif s["type"] == 0 and s.get("log") != "/build/%d/step/%d/log" % (bid, s["stepnr"]):
            fail("step %d: log link %r" % (s["stepnr"], s.get("log")))


def metrics(path):
    try:
        return promparse.parse(open(path).read(), "sluice_", True, "hydraqueuerunner_")
    except promparse.FormatError as e:
        fail("metrics: %s" % e)


def check_running(db, status_path, machines_path, metrics_path):
    st = json.load(open(status_path))
    q = st["queueRunner"]
    ms = json.load(open(machines_path))
    m = metrics(metrics_path)
    busy = db.execute("SELECT build, stepnr, drvPath, busy FROM BuildSteps WHERE busy <> 0 "
                      "ORDER BY build, stepnr").fetchall()
    unfinished = db.execute("SELECT count(*) FROM Builds WHERE finished = 0").fetchone()[0]
    eq("/status nrActiveSteps", q["nrActiveSteps"], len(busy))
    eq("/status nrStepsBuilding", q["nrStepsBuilding"], len(busy))
    eq("/status nrQueuedBuilds", q["nrQueuedBuilds"], unfinished)
    eq("/status buildCount", q["buildCount"], unfinished)
    eq("/status machinesInUse", q["machinesInUse"], 1 if busy else 0)
    cur = []
    for name, mach in ms["machines"].items():
        for s in mach["currentSteps"]:
            cur.append((s["build"], s["stepnr"], s["drvPath"], s["busy"]))
        eq("/status/machines %s currentJobs" % name, mach["currentJobs"],
           len(mach["currentSteps"]))
        for k in ("systems", "maxJobs", "speedFactor", "supportedFeatures", "mandatoryFeatures"):
            if k not in mach:
                fail("/status/machines %s: no %s" % (name, k))
    eq("/status/machines current steps", sorted(cur), [tuple(r) for r in busy])
    eq("/status machines", sorted(st["machines"]), sorted(ms["machines"]))
    eq("metrics sluice_steps running", m['sluice_steps{state="running"}'], len(busy))
    eq("metrics sluice_builds_queued", m["sluice_builds_queued"], unfinished)
    eq("metrics sluice_steps_busy building", m['sluice_steps_busy{phase="building"}'],
       sum(1 for r in busy if r[3] == 30))
    eq("metrics current jobs", sum(v for k, v in m.items()
                                   if k.startswith("sluice_machine_current_jobs{")), len(busy))
    eq("metrics sluice_machines_in_use", m["sluice_machines_in_use"], 1 if busy else 0)


def histogram(m, name):
    """(bounds and cumulative counts in order of le, sum, count) of a histogram family;
    fails unless the buckets rise, end in +Inf and +Inf equals _count."""
    buckets = []
    prefix = name + '_bucket{le="'
    for k, v in m.items():
        if k.startswith(prefix):
            buckets.append((float(k[len(prefix):-2]), v))
    buckets.sort()
    if len(buckets) < 2 or buckets[-1][0] != float("inf"):
        fail("%s: no +Inf bucket: %r" % (name, buckets))
    for (_, a), (_, b) in zip(buckets, buckets[1:]):
        if b < a:
            fail("%s: buckets not cumulative: %r" % (name, buckets))
    if buckets[-1][1] != m.get(name + "_count"):
        fail("%s: +Inf bucket %r, _count %r" % (name, buckets[-1][1], m.get(name + "_count")))
    return buckets, m[name + "_sum"], m[name + "_count"]


def check_final(db, metrics_path, launched):
    m = metrics(metrics_path)
    one = lambda sql: db.execute(sql).fetchone()[0]  # noqa: E731
    eq("sluice_builds_finished_total succeeded", m['sluice_builds_finished_total{result="succeeded"}'],
       one("SELECT count(*) FROM Builds WHERE finished = 1 AND buildStatus = 0"))
    eq("sluice_ca_resolutions_total", m["sluice_ca_resolutions_total"],
       one("SELECT count(*) FROM BuildSteps WHERE status = 13"))
    eq("sluice_steps_started_total", m["sluice_steps_started_total"],
       one("SELECT count(*) FROM BuildSteps WHERE type = 0 AND status IS NOT 13"))
    eq("sluice_steps_finished_total succeeded", m['sluice_steps_finished_total{result="succeeded"}'],
       one("SELECT count(*) FROM BuildSteps WHERE type = 0 AND status = 0"))
    eq("sluice_builds_read_total", m["sluice_builds_read_total"], one("SELECT count(*) FROM Builds"))
    eq("sluice_steps running", m['sluice_steps{state="running"}'],
       one("SELECT count(*) FROM BuildSteps WHERE busy <> 0"))
    started = one("SELECT count(*) FROM BuildSteps WHERE type = 0 AND status IS NOT 13")
    _, wait_sum, wait_n = histogram(m, "sluice_step_queue_wait_seconds")
    eq("sluice_step_queue_wait_seconds_count", wait_n, started)
    if not 0 <= wait_sum:
        fail("sluice_step_queue_wait_seconds_sum %r" % wait_sum)
    _, run_sum, run_n = histogram(m, "sluice_step_duration_seconds")
    eq("sluice_step_duration_seconds_count", run_n, started)
    rows = one("SELECT sum(stopTime - startTime) FROM BuildSteps WHERE type = 0 AND status IS NOT 13")
    if abs(run_sum - rows) > 2 * started:  # whole seconds in the rows, milliseconds here
        fail("sluice_step_duration_seconds_sum %r, the rows' stopTime - startTime sum to %r"
             % (run_sum, rows))
    # the phase table: every started step opened a session and built, and its build
    # phase lies within its run
    for ph in ("open", "build", "record"):
        n = m.get('sluice_step_phase_seconds_count{phase="%s"}' % ph)
        eq("sluice_step_phase_seconds_count %s" % ph, n, started)
    bsum = m.get('sluice_step_phase_seconds_sum{phase="build"}', -1)
    if not 0 <= bsum <= run_sum + 0.01 * started:
        fail("sluice_step_phase_seconds_sum build %r, the steps ran %r s" % (bsum, run_sum))
    # the standard process metrics describe this process
    # the process started after the test launched it and before the runner inside it
    # started (sluice_start_time_seconds is whole seconds, the start time 1/CLK_TCK)
    start = m.get("process_start_time_seconds", 0)
    runner = m["sluice_start_time_seconds"]
    if not launched - 0.05 <= start <= runner + 1:
        fail("process_start_time_seconds %r: launched at %r, the runner started at %r"
             % (start, launched, runner))
    if not runner + m["sluice_uptime_seconds"] <= time.time() + 1:
        fail("sluice_start_time_seconds %r + uptime %r lies in the future"
             % (runner, m["sluice_uptime_seconds"]))
    if not (m.get("process_open_fds", 0) >= 3 and m.get("process_resident_memory_bytes", 0) > 1e6
            and m.get("process_virtual_memory_bytes", 0) > m["process_resident_memory_bytes"]
            and m.get("process_cpu_seconds_total", 0) > 0):
        fail("process_* figures: %r" % {k: v for k, v in m.items() if k.startswith("process_")})


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    db = sqlite3.connect("file:%s?mode=ro" % argv[2], uri=True, timeout=5)
    if argv[1] == "build":
        check_build(db, int(argv[3]), argv[4])
    elif argv[1] == "running":
        check_running(db, argv[3], argv[4], argv[5])
    elif argv[1] == "final":
        check_final(db, argv[3], float(argv[4]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
