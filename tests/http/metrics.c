/* tests/http/metrics.c: Prometheus rendering (src/http/metrics.c) and the Hydra-shaped
 * status documents (src/http/status.c) from synthetic runner snapshots. */
#include <jansson.h>

#include "http/http_int.h"
#include "test.h"

static json_t *machines_fixture(void)
{
    json_error_t je;
    return json_loads(
        "{\"machinesCount\":2,\"machines\":{"
        "\"local\":{\"isLocal\":true,\"systems\":[\"x86_64-linux\"],\"maxJobs\":2,\"speedFactor\":"
        "1.0,"
        "\"supportedFeatures\":[\"kvm\"],\"mandatoryFeatures\":[],\"enabled\":true,"
        "\"currentJobs\":1,\"nrStepsDone\":7,\"nrStepsFailed\":2,\"consecutiveFailures\":0,"
        "\"disabledUntil\":0,\"lastSeen\":100,\"currentSteps\":[{\"drvPath\":\"/nix/store/x.drv\","
        "\"busy\":30,\"phase\":\"building\"}]},"
        "\"ssh://a\\\"b\\\\c\\nd\":{\"systems\":[\"aarch64-linux\"],\"maxJobs\":1,"
        "\"speedFactor\":2.5,\"supportedFeatures\":[],\"mandatoryFeatures\":[\"big\"],"
        "\"enabled\":false,\"currentJobs\":0,\"nrStepsDone\":0,\"consecutiveFailures\":3,"
        "\"disabledUntil\":500,\"lastSeen\":0,\"currentSteps\":[]}}}",
        0, &je);
}

static json_t *status_fixture(void)
{
    json_error_t je;
    return json_loads("{\"status\":\"up\",\"uptime\":12,\"nrQueuedBuilds\":3,"
                      "\"nrUnfinishedSteps\":5,\"nrRunnableSteps\":2,\"nrActiveSteps\":1,"
                      "\"nrStepsWaiting\":1,\"nrStepsResolving\":1,\"nrStepsRetryWaiting\":0,"
                      "\"machinesInUse\":1,\"ingestActive\":true,"
                      "\"runnable\":{\"x86_64-linux\":{\"totalRunnable\":2}}}",
                      0, &je);
}

TEST(http, metrics, render)
{
    RunnerStats st;
    json_t *s = status_fixture(), *m = machines_fixture();
    Buf b;
    const char *out;
    memset(&st, 0, sizeof st);
    atomic_store(&st.builds_succeeded, 4);
    atomic_store(&st.dispatch_rounds, 10);
    atomic_store(&st.dispatch_time_us_total, 2500);
    atomic_store(&st.bytes_copied_to, 1234567890123ULL);
    buf_init(&b, 1 << 20);
    http__metrics_render(&st, s, m, &b);
    out = buf_cstr(&b);
    CHECK(buf_status(&b) == 0);
    CHECK(strstr(out, "# TYPE sluice_builds_finished_total counter\n"
                      "sluice_builds_finished_total{result=\"succeeded\"} 4\n") != NULL);
    CHECK(strstr(out, "\nsluice_builds_queued 3\n") != NULL);
    CHECK(strstr(out, "\nsluice_steps{state=\"running\"} 1\n") != NULL);
    CHECK(strstr(out, "\nsluice_steps_busy{phase=\"building\"} 1\n") != NULL);
    CHECK(strstr(out, "\nsluice_runnable_steps{system=\"x86_64-linux\"} 2\n") != NULL);
    CHECK(strstr(out, "\nsluice_dispatch_round_seconds_sum 0.0025\n") != NULL);
    CHECK(strstr(out, "\nsluice_dispatch_round_seconds_count 10\n") != NULL);
    CHECK(strstr(out, "\nsluice_copied_bytes_total{direction=\"to_machines\"} 1234567890123\n") !=
          NULL);
    CHECK(strstr(out, "\nsluice_ingest_active 1\n") != NULL);
    CHECK(strstr(out, "\nsluice_build_info{version=\"" SLUICE_VERSION "\"} 1\n") != NULL);
    CHECK(strstr(out, "\nprocess_resident_memory_bytes ") != NULL);
    CHECK(strstr(out, "\nprocess_open_fds ") != NULL);
    CHECK(strstr(out, "# TYPE process_cpu_seconds_total counter\n") != NULL);
    CHECK(strstr(out, "\nsluice_machine_speed_factor{machine=\"local\"} 1\n") != NULL);
    /* label values escaped: backslash, double quote, newline */
    CHECK(strstr(out, "\nsluice_machine_speed_factor{machine=\"ssh://a\\\"b\\\\c\\nd\"} 2.5\n") !=
          NULL);
    CHECK(strstr(out, "\nsluice_machine_enabled{machine=\"local\"} 1\n") != NULL);
    CHECK(strstr(out, "sluice_machine_steps_total{machine=\"local\",result=\"failed\"} 2\n") !=
          NULL);
    /* Hydra's runner's names for the same figures */
    CHECK(strstr(out, "\n# TYPE hydraqueuerunner_builds_read counter\n") != NULL);
    CHECK(strstr(out, "\n# TYPE hydraqueuerunner_steps_runnable gauge\n") != NULL);
    CHECK(strstr(out, "\nhydraqueuerunner_machine_current_jobs{hostname=\"local\"} ") != NULL);
    CHECK(strstr(out, "\nhydraqueuerunner_machine_type_runnable{machine_type=\"x86_64-linux\"} ") !=
          NULL);
    /* every family once, every line a comment or a sluice_ or hydraqueuerunner_ sample */
    {
        const char *p = out;
        Map *seen = map_new(NULL);
        while (*p) {
            const char *nl = strchr(p, '\n');
            CHECK(nl != NULL);
            if (strncmp(p, "# TYPE ", 7) == 0) {
                char name[128];
                size_t n = strcspn(p + 7, " ");
                CHECK(n < sizeof name);
                memcpy(name, p + 7, n);
                name[n] = '\0';
                CHECK_MSG(!map_get(seen, name), "family %s twice", name);
                map_put(seen, name, (void *)1);
            } else if (p[0] != '#') {
                /* sluice's own, Hydra's names, and the standard process metrics */
                CHECK(strncmp(p, "sluice_", 7) == 0 || strncmp(p, "hydraqueuerunner_", 17) == 0 ||
                      strncmp(p, "process_", 8) == 0);
            }
            p = nl + 1;
        }
        CHECK(map_size(seen) > 30);
        map_free(seen);
    }
    buf_dispose(&b);
    json_decref(s);
    json_decref(m);
}

/* The duration histograms: a value on a bound counts in that bucket (le is "less than or
 * equal"), buckets are cumulative, +Inf equals _count, _sum is in seconds. */
TEST(http, metrics, histograms)
{
    RunnerStats st;
    Buf b;
    const char *out;
    memset(&st, 0, sizeof st);
    runner_histo_observe(&st.queue_wait, 0);
    runner_histo_observe(&st.queue_wait, 100); /* on the first bound, 0.1 s */
    runner_histo_observe(&st.queue_wait, 101); /* in the second, 0.5 s */
    runner_histo_observe(&st.queue_wait, 3600000);
    runner_histo_observe(&st.queue_wait, 90000000); /* above a day */
    runner_histo_observe(&st.step_duration, 42000);
    runner_histo_observe(&st.phase[0], 1796426910370ULL); /* epoch-sized: no digit lost */
    buf_init(&b, 1 << 20);
    http__metrics_render(&st, NULL, NULL, &b);
    out = buf_cstr(&b);
    CHECK(buf_status(&b) == 0);
    CHECK(strstr(out, "# TYPE sluice_step_queue_wait_seconds histogram\n"
                      "sluice_step_queue_wait_seconds_bucket{le=\"0.005\"} 1\n"
                      "sluice_step_queue_wait_seconds_bucket{le=\"0.01\"} 1\n"
                      "sluice_step_queue_wait_seconds_bucket{le=\"0.025\"} 1\n"
                      "sluice_step_queue_wait_seconds_bucket{le=\"0.05\"} 1\n"
                      "sluice_step_queue_wait_seconds_bucket{le=\"0.1\"} 2\n"
                      "sluice_step_queue_wait_seconds_bucket{le=\"0.5\"} 3\n"
                      "sluice_step_queue_wait_seconds_bucket{le=\"1\"} 3\n") != NULL);
    CHECK(strstr(out, "\nsluice_step_queue_wait_seconds_bucket{le=\"1800\"} 3\n"
                      "sluice_step_queue_wait_seconds_bucket{le=\"3600\"} 4\n") != NULL);
    CHECK(strstr(out, "\nsluice_step_queue_wait_seconds_bucket{le=\"86400\"} 4\n"
                      "sluice_step_queue_wait_seconds_bucket{le=\"+Inf\"} 5\n"
                      "sluice_step_queue_wait_seconds_sum 93600.201\n"
                      "sluice_step_queue_wait_seconds_count 5\n") != NULL);
    CHECK(strstr(out, "\nsluice_step_duration_seconds_bucket{le=\"30\"} 0\n"
                      "sluice_step_duration_seconds_bucket{le=\"60\"} 1\n") != NULL);
    CHECK(strstr(out, "\nsluice_step_duration_seconds_sum 42\n"
                      "sluice_step_duration_seconds_count 1\n") != NULL);
    CHECK_MSG(strstr(out, "\nsluice_step_phase_seconds_sum{phase=\"prepare\"} 1796426910.37\n"),
              "%s", strstr(out, "\nsluice_step_phase_seconds_sum"));
    buf_dispose(&b);
}

TEST(http, metrics, render_without_runner)
{
    Buf b;
    buf_init(&b, 1 << 20);
    http__metrics_render(NULL, NULL, NULL, &b);
    CHECK(buf_status(&b) == 0);
    CHECK(strstr(buf_cstr(&b), "\nsluice_machines 0\n") != NULL);
    buf_dispose(&b);
}

TEST(http, metrics, hydra_shapes)
{
    json_t *s = status_fixture(), *m = machines_fixture();
    json_t *doc = http__status_doc(s, m), *qr = json_object_get(doc, "queueRunner");
    json_t *md = http__machines_doc(m), *local, *remote;
    CHECK(qr != NULL);
    CHECK_INT(json_integer_value(json_object_get(qr, "buildCount")), 3);
    CHECK_INT(json_integer_value(json_object_get(qr, "nrBuildsUnfinished")), 3);
    CHECK_INT(json_integer_value(json_object_get(qr, "stepCount")), 5);
    CHECK_INT(json_integer_value(json_object_get(qr, "runnableCount")), 2);
    CHECK(json_object_get(json_object_get(qr, "queueStats"), "x86_64-linux") != NULL);
    CHECK_INT(json_array_size(json_object_get(qr, "supportedFeatures")), 2); /* kvm, big */
    CHECK_INT(json_object_size(json_object_get(doc, "machines")), 2);
    /* the local store as hydra-server's machine page names it */
    CHECK(json_object_get(json_object_get(md, "machines"), "local") == NULL);
    local = json_object_get(json_object_get(md, "machines"), "localhost");
    CHECK_STR(json_string_value(json_object_get(local, "storeUri")), "local");
    remote = json_object_get(json_object_get(md, "machines"), "ssh://a\"b\\c\nd");
    CHECK(local && remote);
    CHECK(json_is_true(json_object_get(local, "hasCapacity")));
    CHECK(json_is_false(json_object_get(remote, "hasCapacity")));
    CHECK(json_is_true(json_object_get(remote, "hasStaticCapacity")));
    CHECK_INT(json_integer_value(json_object_get(json_object_get(local, "stats"), "nrStepsDone")),
              7);
    CHECK_STR(json_string_value(json_array_get(json_object_get(local, "jobs"), 0)),
              "/nix/store/x.drv");
    /* the runner's snapshots are not changed */
    CHECK(json_object_get(json_object_get(json_object_get(m, "machines"), "local"), "stats") ==
          NULL);
    CHECK(json_object_get(s, "buildCount") == NULL);
    json_decref(doc);
    json_decref(md);
    json_decref(s);
    json_decref(m);
}
