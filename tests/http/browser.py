#!/usr/bin/env python3
"""tests/http/browser.py: drives headless Chromium through chromedriver's WebDriver HTTP
API (standard library only) and checks the dashboard of a running `sluice run --http`.

    browser.py check BASE OUTDIR BUILD STEP13 RSTEP [--bulk-first ID] [--release FILE]
                     [--disabled MACHINE] [--token TOKEN --failed ID [--queued ID]]
                     [--empty ID]
        during the content-addressed build BUILD, whose status-13 row is step STEP13 and
        whose resolved drv builds as step RSTEP (running):
          overview   the queue row of the build's system, the running step listed
          build      the Resolved step and the step of its resolved drv in the table and
                     the graph (a "resolved" edge between them), the CA chain
                     P -> Resolved -> P' -> step RSTEP, the log panel following RSTEP
                     live, its text growing while the step runs
          machines   a slot of the local machine showing build/step RSTEP and its phase;
                     MACHINE disabled, with the reason
          builds     filters (failed, job substring) and keyset pagination
          origin     every resource the pages loaded came from BASE; no console errors
          empty log  the log panel of build ID (one step, finished, no output) says
                     the log is empty
          admin      with TOKEN entered in the token form (kept in session storage): on
                     the failed build ID, "clear cached failure" of its step 1, then
                     "restart"; on the queued build ID, "bump" then "cancel"; each
                     button's result says "done" (the caller checks the database);
                     the build page and the overview at 420 px wide fit the window
        then, on the build page again, creates FILE (which ends the step: see
        tests/data/http/dashboard.nix), waits for the step to end and checks the log
        panel says so.
        Screenshots: OUTDIR/{overview,build,machines,builds,builds-filtered,
        build-finished,build-420px,overview-420px}.png.


Prints one line per check; exits 1 with "FAIL: ..." on the first failed check.
"""
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request


class Fail(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebDriver:
    """The few WebDriver commands the test needs."""

    def __init__(self, chrome, driver, workdir):
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        self.log = os.path.join(workdir, "chromedriver.log")
        self.proc = subprocess.Popen(
            [driver, "--port=%d" % self.port, "--log-path=" + self.log],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.sid = None
        deadline = time.time() + 30
        while True:
            try:
                st = self.req("GET", "/status", timeout=2)
                if st.get("ready"):
                    break
            except (OSError, Fail):
                pass
            if time.time() > deadline or self.proc.poll() is not None:
                raise Fail("chromedriver did not start (log: %s)" % self.log)
            time.sleep(0.1)
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                "--disable-extensions", "--disable-default-apps", "--mute-audio",
                "--window-size=1400,1000", "--user-data-dir=" + os.path.join(workdir, "profile")]
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chrome, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}}
        v = self.req("POST", "/session", caps, timeout=60)
        self.sid = v["sessionId"]

    def req(self, method, path, body=None, timeout=30):
        data = json.dumps(body).encode() if body is not None else None
        r = urllib.request.Request(self.base + path, data=data, method=method,
                                   headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(r, timeout=timeout) as resp:
                out = json.load(resp)
        except urllib.error.HTTPError as e:
            try:
                out = json.load(e)
            except ValueError:
                raise Fail("webdriver %s %s: HTTP %d" % (method, path, e.code))
            v = out.get("value") or {}
            raise Fail("webdriver %s %s: %s: %s" % (method, path, v.get("error"),
                                                   (v.get("message") or "")[:300]))
        return out.get("value")

    def s(self, method, path, body=None, timeout=30):
        return self.req(method, "/session/%s%s" % (self.sid, path), body, timeout)

    def get(self, url):
        self.s("POST", "/url", {"url": url}, timeout=60)

    def js(self, script, *args):
        return self.s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def wait(self, script, what, timeout=20, *args):
        """Run script until it returns something truthy; return that."""
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            last = self.js(script, *args)
            if last:
                return last
            time.sleep(0.2)
        raise Fail("timed out waiting for %s (last: %r)" % (what, last))

    def find(self, css):
        v = self.s("POST", "/element", {"using": "css selector", "value": css})
        return next(iter(v.values()))

    def click(self, el):
        self.s("POST", "/element/%s/click" % el, {})

    def type(self, el, text):
        self.s("POST", "/element/%s/clear" % el, {})
        self.s("POST", "/element/%s/value" % el, {"text": text})

    def screenshot(self, path):
        # the whole page: grow the window to the document's height (capped)
        h = self.js("return Math.min(4000, Math.max(document.documentElement.scrollHeight, 700));")
        self.s("POST", "/window/rect", {"width": 1400, "height": int(h) + 90})
        time.sleep(0.3)
        png = base64.b64decode(self.s("GET", "/screenshot"))
        with open(path, "wb") as f:
            f.write(png)
        self.s("POST", "/window/rect", {"width": 1400, "height": 1000})

    def screenshot_narrow(self, path, width=420):
        # a phone: the page must not be wider than the window
        self.s("POST", "/window/rect", {"width": width, "height": 900})
        time.sleep(0.5)
        over = self.js("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        png = base64.b64decode(self.s("GET", "/screenshot"))
        with open(path, "wb") as f:
            f.write(png)
        self.s("POST", "/window/rect", {"width": 1400, "height": 1000})
        return over

    def browser_log(self):
        try:
            return self.s("POST", "/se/log", {"type": "browser"}) or []
        except Fail:
            return None  # not offered by this chromedriver

    def quit(self):
        try:
            if self.sid:
                self.s("DELETE", "", timeout=20)
        except (Fail, OSError):
            pass
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def ok(msg):
    print("ok   " + msg, flush=True)


def check(argv):
    base, outdir, build, step13, rstep = argv[0], argv[1], int(argv[2]), int(argv[3]), int(argv[4])
    bulk_first = release = None
    if "--bulk-first" in argv:
        bulk_first = int(argv[argv.index("--bulk-first") + 1])
    if "--release" in argv:
        release = argv[argv.index("--release") + 1]
    disabled = argv[argv.index("--disabled") + 1] if "--disabled" in argv else None
    token = argv[argv.index("--token") + 1] if "--token" in argv else None
    failed = int(argv[argv.index("--failed") + 1]) if "--failed" in argv else None
    queued = int(argv[argv.index("--queued") + 1]) if "--queued" in argv else None
    empty = int(argv[argv.index("--empty") + 1]) if "--empty" in argv else None
    os.makedirs(outdir, exist_ok=True)
    chrome = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    driver = os.environ.get("CHROMEDRIVER", shutil.which("chromedriver") or "/usr/bin/chromedriver")
    work = tempfile.mkdtemp(prefix="sluice-browser.")
    wd = None
    try:
        wd = WebDriver(chrome, driver, work)
        shot = lambda name: wd.screenshot(os.path.join(outdir, name + ".png"))

        # ---- overview
        wd.get(base + "/")
        title = wd.wait("return document.title", "the page title")
        if title != "sluice":
            raise Fail("title %r" % title)
        systems = wd.wait("const r = [...document.querySelectorAll('[data-testid=queue-row]')];"
                          "return r.length ? r.map(x => [x.dataset.system, x.textContent]) : null", "queue rows")
        if disabled and not any(sysname == "aarch64-linux" for sysname, _ in systems):
            raise Fail("no queue row for aarch64-linux: %r" % systems)
        wd.wait("return [...document.querySelectorAll('[data-testid=running] a')]"
                ".some(a => a.getAttribute('href') === '#/build/' + arguments[0])",
                "the running build in the overview", 20, build)
        ok("overview: queue per system and the running step of build %d" % build)
        shot("overview")

        # ---- the build page during the build
        wd.get(base + "/#/build/%d" % build)
        wd.wait("return document.querySelector('[data-testid=step-row][data-stepnr=\"%d\"][data-status=\"13\"]')"
                % step13, "the Resolved (status 13) step row")
        wd.wait("const r = document.querySelector('[data-testid=step-row][data-stepnr=\"%d\"]');"
                "return r && r.dataset.status === '' && r.dataset.busy !== '0'" % rstep,
                "the running step of the resolved drv in the table")
        chain = wd.wait(
            "const c = document.querySelector('[data-testid=ca-chain][data-stepnr=\"%d\"]');"
            "return c && c.dataset.terminalStep ? {t: c.dataset.terminalStep, b: c.dataset.terminalBuild,"
            " text: c.textContent} : null" % step13, "the CA resolution chain")
        if int(chain["t"]) != rstep or int(chain["b"]) != build or "Resolved" not in chain["text"]:
            raise Fail("CA chain: %r" % chain)
        ok("build page: step %d Resolved, linked to step %d of its resolved drv" % (step13, rstep))
        edges = wd.wait(
            "const n13 = document.querySelector('[data-testid=graph-node][data-stepnr=\"%d\"]');"
            "const nr = document.querySelector('[data-testid=graph-node][data-stepnr=\"%d\"]');"
            "const e = document.querySelectorAll('svg.graph path.edge.resolved');"
            "return n13 && nr && e.length ? {n: document.querySelectorAll('[data-testid=graph-node]').length,"
            " resolved: e.length, run: nr.getAttribute('class')} : null" % (step13, rstep), "the step graph")
        if "st-run" not in edges["run"]:
            raise Fail("graph node of step %d not drawn as running: %r" % (rstep, edges))
        ok("build page: graph with %d nodes, a 'resolved' edge, step %d running" % (edges["n"], rstep))
        wd.wait("const t = document.querySelector('[data-testid=log-title]');"
                "return t && t.dataset.stepnr === '%d'" % rstep, "the log panel on step %d" % rstep)
        wd.wait("const s = document.querySelector('[data-testid=log-state]'); return s && s.textContent === 'live'",
                "the live log state")
        first = int(wd.wait("const p = document.getElementById('log');"
                            "return p.dataset.bytes && p.textContent.includes('tick-') ? p.dataset.bytes : null",
                            "log text in the panel"))
        first_text = wd.js("return document.getElementById('log').textContent.length")
        time.sleep(2.5)
        second = int(wd.js("return document.getElementById('log').dataset.bytes"))
        second_text = wd.js("return document.getElementById('log').textContent.length")
        if not (second > first and second_text > first_text):
            raise Fail("the log tail did not grow: %d -> %d bytes, %d -> %d chars"
                       % (first, second, first_text, second_text))
        txt = wd.js("return document.getElementById('log').textContent")
        if "start grüße ✓" not in txt or "tick-1\t<b>&" not in txt:
            raise Fail("log text is not the step's log: %r" % txt[:200])
        ok("build page: live log tail grew from %d to %d bytes while the step runs" % (first, second))
        shot("build")

        # ---- machines
        wd.get(base + "/#/machines")
        slot = wd.wait(
            "const s = document.querySelector('[data-testid=slot][data-build=\"%d\"][data-stepnr=\"%d\"]');"
            "return s ? {phase: s.dataset.phase, text: s.textContent,"
            " machine: s.closest('[data-testid=machine]').dataset.name} : null" % (build, rstep),
            "the running step in a machine slot")
        if slot["phase"] not in ("building", "preparing", "connecting", "sending inputs",
                                 "receiving outputs", "post-processing"):
            raise Fail("slot phase %r" % slot)
        if "step %d" % rstep not in slot["text"]:
            raise Fail("slot text %r" % slot["text"])
        ok("machines: %s runs build %d step %d (%s)" % (slot["machine"], build, rstep, slot["phase"]))
        if disabled:
            why = wd.wait("const m = [...document.querySelectorAll('[data-testid=machine]')]"
                          ".find(m => m.dataset.name === arguments[0]);"
                          "const r = m && m.querySelector('[data-testid=disabled-reason]');"
                          "const b = m && m.querySelector('[data-testid=disabled]');"
                          "return r && b ? [b.textContent, r.textContent] : null",
                          "the disabled machine with its reason", 20, disabled)
            if not why[0].startswith("disabled until") or "ssh" not in why[1]:
                raise Fail("disabled machine shown as %r" % why)
            ok("machines: %s disabled (%s: %s)" % (disabled, why[0], why[1][:60]))
        shot("machines")

        # ---- builds: list, filters, pagination
        wd.get(base + "/#/builds")
        n = wd.wait("return document.querySelectorAll('[data-testid=build-row]').length", "build rows")
        if n != 50:
            raise Fail("first page has %d rows, expected 50" % n)
        ids = wd.js("return [...document.querySelectorAll('[data-testid=build-row]')].map(r => +r.dataset.id)")
        if ids != sorted(ids, reverse=True):
            raise Fail("builds not newest first: %r" % ids[:5])
        wd.js("document.querySelector('[data-testid=next-page]').click()")
        ids2 = wd.wait("const r = [...document.querySelectorAll('[data-testid=build-row]')].map(r => +r.dataset.id);"
                       "return r.length && r[0] < arguments[0] ? r : null", "the next page", 20, ids[-1])
        if len(ids2) != 50 or ids2[0] >= ids[-1]:
            raise Fail("second page %r after %r" % (ids2[:3], ids[-1]))
        ok("builds: 50 per page, newest first, next page starts below #%d" % ids[-1])
        wd.get(base + "/#/builds")
        wd.wait("return document.querySelectorAll('[data-testid=build-row]').length", "build rows")
        shot("builds")
        # filter with the form: state "failed", job containing "broken"
        wd.click(wd.find("[data-testid=filter-state] option[value=s1]"))
        wd.type(wd.find("[data-testid=filter-job]"), "broken")
        wd.click(wd.find("[data-testid=filters] button[type=submit]"))
        rows = wd.wait("const r = [...document.querySelectorAll('[data-testid=build-row]')];"
                       "return location.hash.includes('job=broken') && r.length ?"
                       " r.map(x => [x.dataset.state, x.textContent]) : null", "filtered rows")
        if len(rows) != 1 or rows[0][0] != "failed" or "broken" not in rows[0][1]:
            raise Fail("filter state=failed job=broken: %r" % rows)
        ok("builds: filter failed + job 'broken' gives the one failed build")
        shot("builds-filtered")
        if bulk_first:
            wd.get(base + "/#/builds?before=%d&limit=25" % (bulk_first + 25))
            r = wd.wait("const r = [...document.querySelectorAll('[data-testid=build-row]')].map(r => +r.dataset.id);"
                        "return r.length ? r : null", "a deep page")
            if r[0] != bulk_first + 24 or len(r) != 25:
                raise Fail("deep page: %r" % r[:3])
            ok("builds: a page deep in the bulk builds (#%d..#%d)" % (r[0], r[-1]))

        # ---- a finished step that printed nothing
        if empty:
            wd.get(base + "/#/build/%d" % empty)
            txt = wd.wait("const p = document.getElementById('log');"
                          "const s = document.querySelector('[data-testid=log-state]');"
                          "return p && s && s.textContent === 'succeeded' ? p.textContent : null",
                          "the log panel of build %d" % empty)
            if txt != "The log of this step is empty.":
                raise Fail("the empty log shown as %r" % txt)
            ok("build page: the empty log of build %d says so" % empty)

        # ---- admin actions on the failed build, with the token kept in the tab
        if token and failed:
            wd.get(base + "/#/build/%d" % failed)
            wd.wait("return document.querySelector('[data-testid=admin-token]')", "the admin token form")
            wd.type(wd.find("[data-testid=admin-token]"), token)
            wd.click(wd.find("[data-testid=admin-token-save]"))
            wd.wait("return document.querySelector('[data-testid=action-clear-1]')",
                    "the clear-cached-failure button of the failed step")
            if wd.js("return sessionStorage.getItem('sluice-admin-token')") != token:
                raise Fail("the token is not in session storage")
            wd.click(wd.find("[data-testid=action-clear-1]"))
            r = wd.wait("const m = document.querySelector('[data-testid=action-result]');"
                        "return m && m.textContent.includes(': ') && !m.textContent.endsWith('…') ? m.textContent : null",
                        "the clear result")
            if r != "Clear cached failure of step 1: done":
                raise Fail("clear cached failure: %r" % r)
            wd.click(wd.find("[data-testid=action-restart]"))
            r = wd.wait("const m = document.querySelector('[data-testid=action-result]');"
                        "return m && m.textContent.startsWith('Restart: ') ? m.textContent : null",
                        "the restart result")
            if r != "Restart: done":
                raise Fail("restart: %r" % r)
            ok("build page: admin token, clear cached failure and restart of build %d" % failed)
            if queued:
                # the token stays in this tab: a queued build offers cancel and bump
                wd.get(base + "/#/build/%d" % queued)
                wd.wait("return document.querySelector('[data-testid=action-bump]')"
                        " && document.querySelector('[data-testid=action-cancel]')",
                        "the bump and cancel buttons of queued build %d" % queued)
                for label, testid in (("Bump", "action-bump"), ("Cancel", "action-cancel")):
                    wd.click(wd.find("[data-testid=%s]" % testid))
                    r = wd.wait("const m = document.querySelector('[data-testid=action-result]');"
                                "return m && m.textContent.startsWith(arguments[0] + ': ') ? m.textContent : null",
                                "the %s result" % label, 20, label)
                    if r != label + ": done":
                        raise Fail("%s: %r" % (label, r))
                wd.wait("const b = document.querySelector('[data-testid=build-state]');"
                        "return b && b.textContent === 'cancelled'", "the cancelled state on the page", 20)
                wd.wait("return document.querySelector('[data-testid=action-restart]')"
                        " && !document.querySelector('[data-testid=action-cancel]')",
                        "restart offered instead of cancel once cancelled")
                ok("build page: bump, then cancel of queued build %d" % queued)
            over = wd.screenshot_narrow(os.path.join(outdir, "build-420px.png"))
            if over > 0:
                raise Fail("at 420 px the build page is %d px wider than the window" % over)
            wd.get(base + "/")
            time.sleep(1)
            over = wd.screenshot_narrow(os.path.join(outdir, "overview-420px.png"))
            if over > 0:
                raise Fail("at 420 px the overview is %d px wider than the window" % over)
            ok("420 px: the build page and the overview fit the window")

        # ---- nothing from elsewhere, no errors
        for page in ("/", "/#/build/%d" % build, "/#/machines"):
            wd.get(base + page)
            time.sleep(1)
            names = wd.js("return performance.getEntriesByType('resource').map(e => e.name)"
                          ".concat([...document.querySelectorAll('[src],[href]')]"
                          ".map(e => e.src || e.href).filter(u => u && !u.startsWith('javascript:')))")
            bad = [u for u in names if not (u.startswith(base + "/") or u.startswith(base + "#"))]
            if bad:
                raise Fail("resources from elsewhere on %s: %r" % (page, bad[:5]))
        logs = wd.browser_log()
        if logs is not None:
            errs = [l for l in logs if l.get("level") == "SEVERE"]
            if errs:
                raise Fail("browser console errors: %r" % errs[:5])
            ok("no console errors (%d log entries)" % len(logs))
        ok("every resource came from %s" % base)

        # ---- the build page when the step ends
        wd.get(base + "/#/build/%d" % build)
        wd.wait("const s = document.querySelector('[data-testid=log-state]'); return s && s.textContent === 'live'",
                "the live log state again")
        if release:
            open(release, "w").close()
        st = wd.wait("const s = document.querySelector('[data-testid=log-state]');"
                     "return s && s.textContent.startsWith('ended') ? s.textContent : null",
                     "the end of the step in the log panel", 120)
        if st != "ended: succeeded":
            raise Fail("log state at the end: %r" % st)
        txt = wd.js("return document.getElementById('log').textContent")
        if not txt.rstrip().endswith("end"):
            raise Fail("log does not end with the step's last line: %r" % txt[-100:])
        wd.wait("const b = document.querySelector('[data-testid=build-state]'); return b && b.textContent === 'succeeded'",
                "the build succeeded on its page", 30)
        wd.wait("const o = document.querySelector('[data-testid=ca-outputs]'); return o && o.textContent.includes('out: ')",
                "the outputs of the resolved drv's step in the CA chain", 30)
        ok("build page: the log panel saw the step end (succeeded), the chain shows its outputs")
        shot("build-finished")
    finally:
        if wd:
            wd.quit()
        shutil.rmtree(work, ignore_errors=True)


def main():
    if len(sys.argv) < 2 or sys.argv[1] != "check":
        print(__doc__, file=sys.stderr)
        return 2
    try:
        check(sys.argv[2:])
    except Fail as e:
        print("FAIL: %s" % e, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
