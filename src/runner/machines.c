/*
 * machines.c: the Nix machines file (`builders` format) and machine matching.
 *
 *   URI [SYSTEMS [SSH-KEY [MAX-JOBS [SPEED-FACTOR [SUPPORTED [MANDATORY [HOST-KEY]]]]]]]
 *
 * Fields are separated by blanks, entries by newlines or ';', '#' starts a comment,
 * '-' or a missing field means the default.  SYSTEMS, SUPPORTED and MANDATORY are
 * comma-separated.  A URI without a scheme is ssh://.  Defaults: the local system,
 * no key, 1 job, speed factor 1.  Nix treats mandatory features as supported too.
 *
 * Matching (as Nix and Hydra do it): a machine fits a step when it lists the step's
 * system (or the system is "builtin"), supports every required feature, and every one
 * of its mandatory features is required.  "local" (preferLocalBuild, see
 * runner__features_string) needs no support: as in Hydra's runner any machine may
 * build such a step, and one with the mandatory feature "local" builds only those.
 *
 *
 * Also the runner's set of machines: (re)loading the file when it changed (machines
 * whose line did not change keep their counters and connections), the local store as
 * the only machine without a file, the backoff of a machine that failed, and the slots
 * steps take and give back.
 */
#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runner/lock.h"
#include "runner/machines.h"

static void split_commas(const char *s, StrVec *out)
{
    const char *p = s;
    while (*p) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        if (n)
            strvec_push_take(out, xstrndup(p, n));
        if (!c)
            break;
        p = c + 1;
    }
}

static const char *local_system(void)
{
    static const char *sys = NULL;
    if (!sys) {
        struct utsname u;
        static char buf[96];
        if (uname(&u) == 0) {
            const char *arch = u.machine;
            if (strcmp(arch, "arm64") == 0)
                arch = "aarch64";
            snprintf(buf, sizeof buf, "%s-linux", arch);
            sys = buf;
        } else {
            sys = "x86_64-linux";
        }
    }
    return sys;
}

void runner__machine_free(Machine *m)
{
    if (!m)
        return;
    free(m->uri);
    free(m->row_name);
    strvec_dispose(&m->systems);
    strvec_dispose(&m->supported);
    strvec_dispose(&m->mandatory);
    free(m->ssh_key);
    free(m->host_key);
    free(m->disabled_reason);
    if (m->store)
        store_machine_free(m->store);
    free(m);
}

static int parse_line(char *line, const char *file, int lineno, Machine **out, Err *e)
{
    char *fields[8] = {0};
    int nf = 0, rc = 0;
    Machine *m = NULL;
    char *save = NULL;
    for (char *tok = strtok_r(line, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        if (nf == 8)
            return err_set(e, ERR_MALFORMED, "%s:%d: too many fields (at most 8)", file, lineno);
        fields[nf++] = tok;
    }
    if (nf == 0)
        return 0;
    m = xcalloc(1, sizeof *m);
    /* as Nix: the store words `local` and `daemon` are kept, other bare hosts are ssh:// */
    if (strstr(fields[0], "://") || strcmp(fields[0], "local") == 0 ||
        strcmp(fields[0], "daemon") == 0)
        m->uri = xstrdup(fields[0]);
    else
        m->uri = xasprintf("ssh://%s", fields[0]);
    if (!util_starts_with(m->uri, "ssh://") && !util_starts_with(m->uri, "ssh-ng://") &&
        strcmp(m->uri, "local") != 0 && strcmp(m->uri, "daemon") != 0 &&
        !util_starts_with(m->uri, "unix://")) {
        rc = err_set(
            e, ERR_MALFORMED,
            "%s:%d: unsupported store URI '%s' (ssh://, ssh-ng://, local, daemon or unix://)", file,
            lineno, m->uri);
        goto out;
    }
    m->is_local = strcmp(m->uri, "local") == 0 || strcmp(m->uri, "daemon") == 0 ||
                  util_starts_with(m->uri, "unix://");
    m->row_name = xstrdup(m->is_local ? "" : fields[0]);
    if (nf > 1 && strcmp(fields[1], "-") != 0)
        split_commas(fields[1], &m->systems);
    else
        strvec_push(&m->systems, local_system());
    if (nf > 2 && strcmp(fields[2], "-") != 0)
        m->ssh_key = xstrdup(fields[2]);
    m->max_jobs = 1;
    if (nf > 3 && strcmp(fields[3], "-") != 0) {
        int64_t v;
        if (util_parse_i64(fields[3], &v) < 0 || v < 0 || v > 100000) {
            rc = err_set(e, ERR_MALFORMED, "%s:%d: bad max-jobs '%s'", file, lineno, fields[3]);
            goto out;
        }
        m->max_jobs = (uint32_t)v;
    }
    m->speed_factor = 1.0;
    if (nf > 4 && strcmp(fields[4], "-") != 0) {
        char *end = NULL;
        double v = strtod(fields[4], &end);
        if (!end || *end || !(v > 0) || v > 1e6) {
            rc = err_set(e, ERR_MALFORMED, "%s:%d: bad speed factor '%s'", file, lineno, fields[4]);
            goto out;
        }
        m->speed_factor = v;
    }
    if (nf > 5 && strcmp(fields[5], "-") != 0)
        split_commas(fields[5], &m->supported);
    if (nf > 6 && strcmp(fields[6], "-") != 0) {
        split_commas(fields[6], &m->mandatory);
        for (size_t i = 0; i < m->mandatory.n; i++)
            if (!strvec_contains(&m->supported, m->mandatory.v[i]))
                strvec_push(&m->supported, m->mandatory.v[i]);
    }
    if (nf > 7 && strcmp(fields[7], "-") != 0)
        m->host_key = xstrdup(fields[7]);
    *out = m;
    m = NULL;
out:
    runner__machine_free(m);
    return rc;
}

/* Parse machines-file text; machines appended to out (caller-owned). */
int runner__machines_parse(const char *text, const char *file, PtrVec *out, Err *e)
{
    char *copy = xstrdup(text);
    int rc = 0, lineno = 1;
    char *p = copy;
    while (*p) {
        char *end = p;
        Machine *m = NULL;
        while (*end && *end != '\n' && *end != ';')
            end++;
        int nl = *end == '\n';
        char saved = *end;
        *end = '\0';
        char *hash = strchr(p, '#');
        if (hash)
            *hash = '\0';
        rc = parse_line(p, file, lineno, &m, e);
        if (rc < 0)
            break;
        if (m)
            ptrvec_push(out, m);
        if (nl)
            lineno++;
        if (!saved)
            break;
        p = end + 1;
    }
    free(copy);
    return rc;
}

static int has_word(const char *words, const char *w)
{
    size_t n = strlen(w);
    const char *p = words;
    while ((p = strstr(p, w))) {
        if ((p == words || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' '))
            return 1;
        p += n;
    }
    return 0;
}

/* Does machine m fit a step of (system, features)? features: sorted, space separated. */
int runner__machine_fits(const Machine *m, const char *system, const char *features)
{
    if (strcmp(system, "builtin") != 0 && !strvec_contains(&m->systems, system))
        return 0;
    for (size_t i = 0; i < m->mandatory.n; i++)
        if (!has_word(features, m->mandatory.v[i]))
            return 0;
    for (const char *p = features; *p;) {
        const char *sp = strchr(p, ' ');
        size_t n = sp ? (size_t)(sp - p) : strlen(p);
        char *f = xstrndup(p, n);
        int ok = strcmp(f, "local") == 0 || strvec_contains(&m->supported, f);
        free(f);
        if (!ok)
            return 0;
        if (!sp)
            break;
        p = sp + 1;
    }
    return 1;
}

int runner__machine_has_work(Runner *r, const Machine *m)
{
    size_t it = 0;
    const char *key;
    void *val;
    int any = 0;
    runner__lock(r);
    any = !m->removed && m->current_jobs > 0;
    while (!m->removed && !any && map_next(r->g.queues, &it, &key, &val)) {
        const StepQueue *q = val;
        any = q->n && runner__machine_fits(m, q->system, q->features);
    }
    runner__unlock(r);
    return any;
}

/* ---------------------------------------------------------------- the runner's set */

extern char **environ;

static void machine_disable(Runner *r, Machine *m, const char *why, int untrusted)
{
    /* Hydra's C++ runner: 60 * 3^(n-1) s plus jitter, n capped at 4 */
    unsigned n = m->consecutive_failures ? m->consecutive_failures : 1;
    int64_t delay;
    if (n > 4)
        n = 4;
    delay = 60;
    for (unsigned i = 1; i < n; i++)
        delay *= 3;
    delay += rand() % 30;
    if (r->opt.machine_backoff_scale > 0)
        delay = (int64_t)((double)delay * r->opt.machine_backoff_scale);
    if (m->is_local && !untrusted)
        return; /* the local store is not disabled for a failed session */
    m->disabled_until = util_time_now() + delay;
    free(m->disabled_reason);
    m->disabled_reason = xstrdup(why ? why : "connection failed");
    log_warn("machine %s disabled for %" PRId64 " s: %s", m->uri, delay, m->disabled_reason);
}

/* Features the local store offers: `system-features` of its Nix config, plus
 * ca-derivations when that experimental feature is on. */
static void local_features(StrVec *out, int ca)
{
    char *argv[] = {"nix", "--extra-experimental-features", "nix-command", "show-config", "--json",
                    NULL};
    int pfd[2];
    pid_t pid;
    posix_spawn_file_actions_t fa;
    Buf b;
    json_t *j = NULL, *sf;
    buf_init(&b, LIMIT_TOOL_OUTPUT);
    if (pipe(pfd) == 0) {
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
        posix_spawn_file_actions_addclose(&fa, pfd[0]);
        if (posix_spawnp(&pid, "nix", &fa, NULL, argv, environ) == 0) {
            char tmp[65536];
            ssize_t n;
            close(pfd[1]);
            while ((n = read(pfd[0], tmp, sizeof tmp)) > 0)
                buf_append(&b, tmp, (size_t)n);
            waitpid(pid, NULL, 0);
        } else {
            close(pfd[1]);
        }
        close(pfd[0]);
        posix_spawn_file_actions_destroy(&fa);
    }
    if (b.len)
        j = json_loadb((const char *)b.p, b.len, 0, NULL);
    sf = j ? json_object_get(json_object_get(j, "system-features"), "value") : NULL;
    if (json_is_array(sf)) {
        size_t i;
        json_t *v;
        json_array_foreach(sf, i, v)
        {
            if (json_is_string(v))
                strvec_push(out, json_string_value(v));
        }
    } else {
        strvec_push(out, "benchmark");
        strvec_push(out, "big-parallel");
        strvec_push(out, "nixos-test");
    }
    if (ca && !strvec_contains(out, "ca-derivations"))
        strvec_push(out, "ca-derivations");
    json_decref(j);
    buf_dispose(&b);
}

/* Slots of the local store when there is no machines file: max-jobs, 0 for the cores. */
uint32_t runner__local_max_jobs(int max_jobs)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return (uint32_t)(max_jobs > 0 ? max_jobs : (cores > 0 ? cores : 1));
}

static Machine *make_local_machine(Runner *r)
{
    Machine *m = xcalloc(1, sizeof *m);
    m->uri = xstrdup(r->opt.local_store ? r->opt.local_store : "local");
    m->row_name = xstrdup("");
    strvec_push(&m->systems, local_system());
    local_features(&m->supported, r->ca_enabled);
    runner__lock(r); /* a reload may change it */
    m->max_jobs = runner__local_max_jobs(r->opt.local_max_jobs);
    runner__unlock(r);
    m->speed_factor = 1.0;
    m->is_local = 1;
    return m;
}

static StoreOpenOptions machine_open_options(Runner *r, Machine *m)
{
    StoreOpenOptions o = {0};
    o.ssh_key = m->ssh_key;
    o.host_key_b64 = m->host_key;
    o.server_alive_interval = r->opt.ssh_alive_interval;
    o.server_alive_count_max = r->opt.ssh_alive_count_max;
    return o;
}

static void machine_connect(Runner *r, Machine *m)
{
    StoreOpenOptions o = machine_open_options(r, m);
    StorePoolOptions po = {0};
    po.max_uses = (unsigned)r->opt.local_daemon_max_steps;
    po.max_idle_s = (unsigned)r->opt.local_daemon_idle_time;
    if (m->is_local) {
        m->store = r->local_store;
        m->shares_local = 1;
    } else {
        /* a busy machine takes a session per slot as fast as the builder opens new ones:
         * one ready and one on its way per slot */
        size_t warm = r->opt.warm_sessions > 0 ? (size_t)r->opt.warm_sessions : 0;
        if (warm > 2 * m->max_jobs)
            warm = 2 * m->max_jobs;
        m->store = store_machine_new(m->uri, &o, &po);
        store_machine_set_warm(m->store, warm);
        store_machine_set_session_steps(m->store, (unsigned)r->opt.session_steps);
    }
}

/* What tells one version of the machines file from the next: mtime to the nanosecond,
 * size and inode (an editor's rename gives a new inode), mixed into one value kept in
 * Runner.machines_mtime.  0 when the file cannot be stat'ed. */
static time_t machines_file_sig(const char *path)
{
    struct stat st;
    uint64_t h;
    if (stat(path, &st) != 0)
        return 0;
    h = (uint64_t)st.st_mtim.tv_sec * 1000000007u + (uint64_t)st.st_mtim.tv_nsec;
    h = h * 31 + (uint64_t)st.st_size;
    h = h * 31 + (uint64_t)st.st_ino;
    return (time_t)(h ? h : 1);
}

/* (Re)load the machines file when it changed (a stat when it did not: cheap enough to
 * call every second); machines that vanished finish what they run. Lock not held on
 * entry. */
int runner__load_machines(Runner *r, Err *e)
{
    PtrVec fresh = {0};
    int rc = 0;
    if (r->opt.machines_file) {
        Buf b;
        time_t sig = machines_file_sig(r->opt.machines_file);
        if (atomic_exchange(&r->machines_reload, 0))
            r->machines_mtime = r->machines_failed_sig = 0; /* read it, changed or not */
        if (sig != 0 && sig == r->machines_mtime && r->machines.n)
            return 0;
        /* a missing or invalid file is reported once per version, not at every look;
         * the machines loaded before stay */
        if (r->machines.n && (sig ? sig : (time_t)-1) == r->machines_failed_sig)
            return 0;
        buf_init(&b, LIMIT_CONFIG_FILE);
        rc = util_read_file(r->opt.machines_file, &b, e);
        if (rc == 0)
            rc = runner__machines_parse(buf_cstr(&b), r->opt.machines_file, &fresh, e);
        buf_dispose(&b);
        if (rc < 0) {
            for (uint32_t i = 0; i < fresh.n; i++)
                runner__machine_free(fresh.v[i]);
            ptrvec_dispose(&fresh);
            r->machines_failed_sig = sig ? sig : (time_t)-1;
            return rc;
        }
        r->machines_mtime = sig;
        r->machines_failed_sig = 0;
    } else if (r->machines.n) {
        return 0;
    } else {
        ptrvec_push(&fresh, make_local_machine(r));
    }
    runner__lock(r);
    /* keep machines whose line did not change (their counters and connections) */
    for (uint32_t i = 0; i < fresh.n; i++) {
        Machine *m = fresh.v[i];
        for (uint32_t j = 0; j < r->machines.n; j++) {
            Machine *old = r->machines.v[j];
            if (!old->removed && strcmp(old->uri, m->uri) == 0 && old->max_jobs == m->max_jobs &&
                old->speed_factor == m->speed_factor) {
                old->removed = 2; /* kept */
                strvec_dispose(&old->systems);
                old->systems = m->systems;
                strvec_init(&m->systems);
                strvec_dispose(&old->supported);
                old->supported = m->supported;
                strvec_init(&m->supported);
                strvec_dispose(&old->mandatory);
                old->mandatory = m->mandatory;
                strvec_init(&m->mandatory);
                runner__machine_free(m);
                fresh.v[i] = old;
                break;
            }
        }
    }
    for (uint32_t j = 0; j < r->machines.n; j++) {
        Machine *old = r->machines.v[j];
        if (old->removed == 2)
            old->removed = 0;
        else
            old->removed = 1; /* freed at shutdown */
        if (old->removed)
            ptrvec_push(&r->old_machines, old);
    }
    r->machines.n = 0;
    for (uint32_t i = 0; i < fresh.n; i++) {
        Machine *m = fresh.v[i];
        if (!m->store)
            machine_connect(r, m);
        ptrvec_push(&r->machines, m);
    }
    runner__wake_dispatcher(r);
    runner__unlock(r);
    ptrvec_dispose(&fresh);
    log_info("%u machine(s) loaded", (unsigned)r->machines.n);
    return 0;
}

/* w's machine slot, given back once (lock held): early, when only the copy back of a
 * remote build is left, or at the step's end. */
void runner__worker_release_slot(Runner *r, Worker *w)
{
    RUNNER_ASSERT_LOCKED(r);
    if (w->slot_released)
        return;
    w->slot_released = 1;
    if (w->machine && w->machine->current_jobs > 0)
        w->machine->current_jobs--;
    runner__wake_dispatcher(r);
}

/* The end of a step on w's machine (lock held): the machine's counters, its slot, and
 * its backoff when the failure is blamed on it; the worker leaves the running set. */
void runner__machine_release(Runner *r, Worker *w, int status, Blame blame, const char *msg)
{
    RUNNER_ASSERT_LOCKED(r);
    Machine *m = w->machine;
    if (status == DB_STATUS_SUCCESS)
        m->steps_done++;
    else if (status != DB_STATUS_CANCELLED && blame != BLAME_NOBODY)
        m->steps_failed++;
    runner__worker_release_slot(r, w);
    m->last_seen = util_time_now();
    if (blame != BLAME_STEP) {
        m->consecutive_failures++;
        machine_disable(r, m, msg, blame == BLAME_UNTRUSTED);
    } else {
        m->consecutive_failures = 0;
    }
    ptrvec_remove(&r->workers, w);
    if (r->running > 0)
        r->running--;
}

/* The features a drv requires of a machine, sorted and space separated ("" for none):
 * requiredSystemFeatures, "ca-derivations" for a two-phase drv, "local" for
 * preferLocalBuild.  Caller frees. */
char *runner__features_string(const NixDrv *d, int two_phase)
{
    StrVec f;
    Buf b;
    strvec_init(&f);
    nix_drv_required_features(d, &f);
    if (two_phase && !strvec_contains(&f, "ca-derivations"))
        strvec_push(&f, "ca-derivations");
    /* Hydra's runner: preferLocalBuild, when the local system could build it, is the
     * "local" feature (runner__machine_fits: any machine may take it; a machine whose mandatory
     * features include "local" takes only such steps) */
    if (nix_drv_prefers_local(d) && !strvec_contains(&f, "local") &&
        (strcmp(d->platform, "builtin") == 0 || strcmp(d->platform, local_system()) == 0))
        strvec_push(&f, "local");
    strvec_sort_unique(&f);
    buf_init(&b, LIMIT_BUF_DEFAULT);
    for (size_t i = 0; i < f.n; i++) {
        if (i)
            buf_putc(&b, ' ');
        buf_puts(&b, f.v[i]);
    }
    strvec_dispose(&f);
    return buf_take(&b, NULL);
}
