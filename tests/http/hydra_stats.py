#!/usr/bin/env python3
"""What Hydra's monitoring reads from the runner, checked the way it reads it.

  hydra_stats.py sendstats STATUS.json    hydra-send-stats' logic: every gauge it sends
                                          must be defined (it dies on an undefined one)
  hydra_stats.py machines MACHINES.json STEPS.tsv
                                          hydra-server's /machines page: getMachines'
                                          fields present, and every busy step (machine
                                          column, tab separated) listed under a machine
Prints one line per problem and exits 1 when there is any."""
import json
import re
import sys

problems = []


def gauge(name, value):
    if value is None:
        problems.append(f"gauge {name}: undefined")


def sendstats(path):
    qr = json.load(open(path)).get("queueRunner") or {}
    gauge("hydra.queue.up", 1 if qr.get("status") == "up" else None)
    if qr.get("status") != "up":
        return
    for name, key in [("steps.building", "nrStepsBuilding"), ("steps.runnable", "nrStepsRunnable"),
                      ("steps.unfinished", "nrStepsUnfinished"), ("steps.finished", "nrStepsDone"),
                      ("steps.retries", "nrRetries"), ("steps.unsupported", "nrUnsupportedSteps"),
                      ("steps.max_retries", "maxNrRetries"), ("builds.read", "nrBuildsRead"),
                      ("builds.unfinished", "nrBuildsUnfinished"), ("builds.finished", "nrBuildsDone"),
                      ("checks", "nrQueueWakeups"), ("machines.total", "machinesTotal"),
                      ("machines.in_use", "machinesInUse")]:
        gauge("hydra.queue." + name, qr.get(key))
    if qr.get("nrStepsDone"):
        gauge("hydra.queue.steps.avg_total_time", qr.get("avgStepTimeMs"))
        gauge("hydra.queue.steps.avg_build_time", qr.get("avgStepBuildTimeMs"))
    qs = qr.get("queueStats")
    if not isinstance(qs, dict):
        problems.append("queueStats missing")
        return
    for system, st in qs.items():
        key = re.sub(r"[:,]", "_", system)
        gauge(f"hydra.queue.{key}.runnable", st.get("totalRunnable"))
        gauge(f"hydra.queue.{key}.active_runnable", st.get("activeRunnable"))


def strip_ssh_user(name):
    m = re.match(r"^.*@(.*)$", name)
    return m.group(1) if m else name


def machines(path, steps_path):
    data = json.load(open(path)).get("machines") or {}
    names = set()
    for key, m in data.items():
        for field in ["systems", "maxJobs", "speedFactor", "supportedFeatures", "mandatoryFeatures",
                      "hasCapacity", "hasDynamicCapacity", "hasStaticCapacity", "stats"]:
            if field not in m:
                problems.append(f"machine {key!r}: no {field}")
        if not isinstance(m.get("supportedFeatures"), list) or not isinstance(m.get("mandatoryFeatures"), list):
            problems.append(f"machine {key!r}: features are not lists")
        names.add(strip_ssh_user(key) if key else "localhost")
    for line in open(steps_path).read().splitlines():
        machine = line.split("\t")[0]
        name = strip_ssh_user(machine) if machine else "localhost"
        if name not in names:
            problems.append(f"busy step on {machine!r} is listed under no machine ({sorted(names)})")


if sys.argv[1] == "sendstats":
    sendstats(sys.argv[2])
else:
    machines(sys.argv[2], sys.argv[3])
for p in problems:
    print(p)
sys.exit(1 if problems else 0)
