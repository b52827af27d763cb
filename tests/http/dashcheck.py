#!/usr/bin/env python3
"""tests/http/dashcheck.py: checks of the dashboard's JSON endpoints and log streams
against the database (SQLite), for tests/http/dashboard.test.sh.  Standard library only.

    dashcheck.py api BASE DB BUILD STEP13 RSTEP DEPSTEP
        /api/builds (pages, keyset cursor, filters, LIKE escaping, bad arguments, a deep
        filtered page under 1 s), /api/queue and /api/build/ID/graph, during the build
    dashcheck.py stream BASE DB BUILD STEP13 RSTEP
        the log stream of the running step RSTEP: contiguous offsets, the log's text,
        growing; Last-Event-ID and ?offset resume; 404/400/405 cases
    dashcheck.py final BASE BUILD RSTEP LOGFILE
        the stream of the finished step: the whole log (equal to LOGFILE), an end event
        with status 0, then the server closes it
    dashcheck.py sse URL SECONDS [LAST_EVENT_ID]
        print what a stream sends in SECONDS as JSON (for debugging)

Prints one line per check; exits 1 with "FAIL: ..." on the first failed check.
"""
import http.client
import json
import socket
import sqlite3
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


class Fail(Exception):
    pass


def ok(msg):
    print("ok   " + msg, flush=True)


def eq(got, want, what):
    if got != want:
        raise Fail("%s: got %r, expected %r" % (what, got, want))


def get(base, path, headers=None, method="GET"):
    """(status, headers, body bytes)"""
    r = urllib.request.Request(base + path, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(r, timeout=20) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def get_json(base, path):
    st, _, body = get(base, path)
    return st, json.loads(body) if body else None


def sse_read(url, seconds, last_id=None):
    """Read a server-sent event stream for up to `seconds` or until it closes."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=seconds + 5)
    headers = {"Accept": "text/event-stream"}
    if last_id is not None:
        headers["Last-Event-ID"] = str(last_id)
    conn.request("GET", u.path + ("?" + u.query if u.query else ""), headers=headers)
    resp = conn.getresponse()
    out = {"status": resp.status, "type": resp.getheader("Content-Type") or "", "events": [],
           "closed": False}
    if resp.status != 200:
        out["body"] = resp.read().decode("utf-8", "replace")
        conn.close()
        return out
    sock = resp.fp.raw._sock
    deadline = time.time() + seconds
    ev = {"event": "message", "id": None, "data": []}
    while True:
        left = deadline - time.time()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            line = resp.readline()
        except (socket.timeout, TimeoutError):
            break
        if not line:
            out["closed"] = True
            break
        line = line.decode("utf-8").rstrip("\r\n")
        if line == "":
            if ev["data"] or ev["event"] != "message":
                out["events"].append({"event": ev["event"], "id": ev["id"], "data": "\n".join(ev["data"])})
            ev = {"event": "message", "id": None, "data": []}
        elif not line.startswith(":"):
            k, _, v = line.partition(":")
            v = v[1:] if v.startswith(" ") else v
            if k == "event":
                ev["event"] = v
            elif k == "id":
                ev["id"] = v
            elif k == "data":
                ev["data"].append(v)
    conn.close()
    return out


def log_events(out):
    """Check a stream's log events: contiguous offsets, ids after each event's bytes.
    Returns (first offset, end offset, number of events, text bytes)."""
    if out["status"] != 200:
        raise Fail("stream status %r: %s" % (out["status"], out.get("body", "")[:200]))
    if not out["type"].startswith("text/event-stream"):
        raise Fail("stream content type %r" % out["type"])
    logs = [e for e in out["events"] if e["event"] == "log"]
    if not logs:
        raise Fail("no log events: %r" % out["events"][:3])
    first = off = json.loads(logs[0]["data"])["offset"]
    text = b""
    for e in logs:
        d = json.loads(e["data"])
        eq(d["offset"], off, "offset of a log event")
        t = d["text"].encode()
        off += len(t)
        text += t
        eq(int(e["id"]), off, "id of a log event")
    return first, off, len(logs), text


# ---------------------------------------------------------------- api


def api(base, dbfile, build, s13, rstep, depstep):
    db = sqlite3.connect(dbfile, timeout=10)
    ids_sql = lambda sql, *a: [r[0] for r in db.execute(sql, a)]
    ids = lambda j: [b["id"] for b in j["builds"]]

    st, j = get_json(base, "/api/builds")
    eq(st, 200, "/api/builds")
    eq(ids(j), ids_sql("SELECT id FROM Builds ORDER BY id DESC LIMIT 50"), "first page")
    eq(j["next"], ids_sql("SELECT id FROM Builds ORDER BY id DESC LIMIT 1 OFFSET 49")[0], "next cursor")
    top = [b for b in j["builds"] if b["id"] == build]
    eq(len(top), 1, "the build on the first page")
    eq((top[0]["finished"], top[0]["busysteps"]), (False, 1), "queued with one busy step")
    nxt = j["next"]
    st, j = get_json(base, "/api/builds?before=%d&limit=200" % nxt)
    eq(ids(j), ids_sql("SELECT id FROM Builds WHERE id < ? ORDER BY id DESC LIMIT 200", nxt), "second page")
    ok("/api/builds: newest first, 50 per page, keyset cursor 'next' and ?before")

    cases = [
        ("status=1&limit=5", "SELECT id FROM Builds WHERE finished = 1 AND buildStatus = 1 ORDER BY id DESC LIMIT 5", ()),
        ("status=0&system=aarch64-linux&limit=9",
         "SELECT id FROM Builds WHERE finished = 1 AND buildStatus = 0 AND system = 'aarch64-linux' ORDER BY id DESC LIMIT 9", ()),
        ("finished=0", "SELECT id FROM Builds WHERE finished = 0 ORDER BY id DESC LIMIT 50", ()),
        ("finished=1&limit=3", "SELECT id FROM Builds WHERE finished = 1 ORDER BY id DESC LIMIT 3", ()),
        ("running=1", "SELECT id FROM Builds WHERE finished = 0 AND id IN (SELECT build FROM BuildSteps WHERE busy <> 0) ORDER BY id DESC", ()),
        ("job=ulk-7&system=aarch64-linux&limit=7&before=90000",
         "SELECT id FROM Builds WHERE job LIKE '%ulk-7%' AND system = 'aarch64-linux' AND id < 90000 ORDER BY id DESC LIMIT 7", ()),
        ("job=%25", "SELECT id FROM Builds WHERE instr(job, '%') > 0 ORDER BY id DESC LIMIT 50", ()),
        ("job=bulk_", "SELECT id FROM Builds WHERE instr(job, 'bulk_') > 0 ORDER BY id DESC LIMIT 50", ()),
        ("project=sluice&jobset=default&job=top", "SELECT b.id FROM Builds b JOIN Jobsets j ON j.id = b.jobset_id "
         "WHERE j.project = 'sluice' AND j.name = 'default' AND b.job LIKE '%top%' ORDER BY b.id DESC LIMIT 50", ()),
        ("project=sluice&jobset=nope", "SELECT id FROM Builds WHERE 0", ()),
    ]
    for q, sql, args in cases:
        st, j = get_json(base, "/api/builds?" + q)
        eq(st, 200, "/api/builds?" + q)
        eq(ids(j), ids_sql(sql, *args), "/api/builds?" + q)
    eq(ids(get_json(base, "/api/builds?running=1")[1]), [build], "running builds")
    eq(ids(get_json(base, "/api/builds?job=%25")[1]), [], "a % in job is literal")
    eq(ids(get_json(base, "/api/builds?job=bulk_")[1]), [], "an _ in job is literal")
    ok("/api/builds: filters status, finished, running, job substring (LIKE escaped), system, project, jobset")

    for bad in ["limit=0", "limit=201", "limit=x", "finished=2", "status=-1", "status=x", "running=2",
                "before=0", "before=abc", "before=-5", "job=" + "x" * 300]:
        st, j = get_json(base, "/api/builds?" + bad)
        eq(st, 400, "/api/builds?" + bad[:30])
        if "error" not in j:
            raise Fail("400 without an error message")
    ok("/api/builds: bad arguments are 400")

    mid = ids_sql("SELECT id FROM Builds WHERE job LIKE 'bulk-%' ORDER BY id LIMIT 1 OFFSET 50000")[0]
    t0 = time.time()
    st, j = get_json(base, "/api/builds?before=%d&status=0&system=aarch64-linux&limit=200" % mid)
    dt = time.time() - t0
    eq(len(j["builds"]), 200, "rows of a deep page")
    if dt > 1.0:
        raise Fail("a deep filtered page took %.2f s" % dt)
    t0 = time.time()
    st, j = get_json(base, "/api/builds?job=never-such-a-job")
    dt2 = time.time() - t0
    eq(j["builds"], [], "no match")
    if dt2 > 2.0:
        raise Fail("a filter matching nothing (a scan of every build) took %.2f s" % dt2)
    ok("/api/builds: a deep filtered page in %.0f ms, a scan matching nothing in %.0f ms" % (dt * 1000, dt2 * 1000))

    st, j = get_json(base, "/api/queue")
    eq(st, 200, "/api/queue")
    for sysname, n in db.execute("SELECT system, count(*) FROM Builds WHERE finished = 0 GROUP BY system"):
        eq(j["systems"][sysname]["queuedBuilds"], n, "queued builds on " + sysname)
    eq(j["queuedBuilds"], ids_sql("SELECT count(*) FROM Builds WHERE finished = 0")[0], "queued builds")
    sysname = ids_sql("SELECT system FROM BuildSteps WHERE build = ? AND stepnr = ?", build, rstep)[0]
    if j["systems"][sysname]["runningSteps"] < 1:
        raise Fail("no running step on %s in %r" % (sysname, j))
    eq(j["runner"]["status"], "up", "runner status in /api/queue")
    ok("/api/queue: queued builds per system as in the database, the running step counted")

    st, g = get_json(base, "/api/build/%d/graph" % build)
    eq(st, 200, "graph")
    eq(sorted(n["stepnr"] for n in g["nodes"]),
       ids_sql("SELECT stepnr FROM BuildSteps WHERE build = ? ORDER BY stepnr", build), "graph nodes")
    edges = {(e["from"], e["to"], e["kind"]) for e in g["edges"]}
    for e in [(s13, rstep, "resolved"), (depstep, s13, "input"), (depstep, rstep, "output")]:
        if e not in edges:
            raise Fail("graph edge %r missing from %r" % (e, sorted(edges)))
    eq(g["truncated"], False, "graph truncated")
    eq(get_json(base, "/api/build/999999/graph")[0], 404, "graph of an unknown build")
    eq(get_json(base, "/api/build/x/graph")[0], 400, "graph of a bad id")
    ok("/api/build/%d/graph: every step; edges dep -> P (input), P -> P' (resolved), dep -> P' (output)" % build)


# ---------------------------------------------------------------- streams


def stream(base, dbfile, build, s13, rstep):
    path = "/build/%d/step/%d/log/stream" % (build, rstep)
    out = sse_read(base + path, 2.5)
    first, end, n, text = log_events(out)
    eq(first, 0, "a new stream of a short log starts at its beginning")
    if n < 2:
        raise Fail("%d log events in 2.5 s: the stream does not follow the log" % n)
    if not text.startswith("start grüße ✓\n".encode()) or b"tick-1\t<b>&\n" not in text:
        raise Fail("stream text: %r" % text[:100])
    st, _, log = get(base, "/build/%d/step/%d/log" % (build, rstep))
    eq(st, 200, "log")
    if log[:end] != text:
        raise Fail("the streamed text is not the log")
    ok("stream: %d events in 2.5 s, contiguous offsets 0..%d, the text is the log's" % (n, end))
    f2, _, _, t2 = log_events(sse_read(base + path, 1.5, last_id=17))
    eq(f2, 17, "Last-Event-ID resumes there")
    if t2[:20] != log[17:37]:
        raise Fail("resumed text %r" % t2[:20])
    f3, _, _, _ = log_events(sse_read(base + path + "?offset=30", 1.5))
    eq(f3, 30, "?offset resumes there")
    ok("stream: Last-Event-ID and ?offset resume at that byte")
    st, _, body = get(base, "/build/%d/step/%d/log/stream" % (build, s13))
    eq(st, 404, "stream of a resolution")
    if b"resolution" not in body:
        raise Fail("404 of a resolution does not say why: %r" % body)
    eq(get(base, "/build/%d/step/99/log/stream" % build)[0], 404, "stream of an unknown step")
    eq(get(base, "/build/%d/step/x/log/stream" % build)[0], 400, "stream of a bad step")
    eq(get(base, path + "?offset=-1")[0], 400, "bad offset")
    eq(get(base, path, {"Last-Event-ID": "x"})[0], 400, "bad Last-Event-ID")
    st, hdr, _ = get(base, path, method="POST")
    eq(st, 405, "POST a stream")
    eq(hdr.get("Allow"), "GET, HEAD", "Allow")
    ok("stream: a resolution step 404 (naming why), unknown step 404, bad arguments 400, POST 405")


def final(base, build, rstep, logfile):
    out = sse_read(base + "/build/%d/step/%d/log/stream?offset=0" % (build, rstep), 15)
    if not out["closed"]:
        raise Fail("the stream of a finished step did not close")
    first, end, _, text = log_events(out)
    eq(first, 0, "first offset")
    want = open(logfile, "rb").read()
    if text != want:
        raise Fail("the streamed log (%d bytes) differs from sluice log (%d bytes)" % (len(text), len(want)))
    last = out["events"][-1]
    eq(last["event"], "end", "last event")
    eq(json.loads(last["data"]), {"status": 0, "statusName": "succeeded", "offset": len(want)},
       "end event")
    out = sse_read(base + "/build/%d/step/%d/log/stream" % (build, rstep), 15)
    if not out["closed"] or out["events"][-1]["event"] != "end":
        raise Fail("a new stream of a finished step does not end")
    ok("stream of the finished step: the whole log (as sluice log prints it), end with status 0, closed")


def main():
    a = sys.argv[1:]
    try:
        if a and a[0] == "api":
            api(a[1], a[2], int(a[3]), int(a[4]), int(a[5]), int(a[6]))
        elif a and a[0] == "stream":
            stream(a[1], a[2], int(a[3]), int(a[4]), int(a[5]))
        elif a and a[0] == "final":
            final(a[1], int(a[2]), int(a[3]), a[4])
        elif a and a[0] == "sse":
            print(json.dumps(sse_read(a[1], float(a[2]), a[3] if len(a) > 3 else None)))
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except Fail as e:
        print("FAIL: %s" % e, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
