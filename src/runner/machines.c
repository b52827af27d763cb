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
 * runner_features_string) needs no support: as in Hydra's runner any machine may
 * build such a step, and one with the mandatory feature "local" builds only those.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "runner/runner_int.h"

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

const char *runner_local_system(void)
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

void machine_free(Machine *m)
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
        strvec_push(&m->systems, runner_local_system());
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
    machine_free(m);
    return rc;
}

/* Parse machines-file text; machines appended to out (caller-owned). */
int runner_machines_parse(const char *text, const char *file, PtrVec *out, Err *e)
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
int machine_fits(const Machine *m, const char *system, const char *features)
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
