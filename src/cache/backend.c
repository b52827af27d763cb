/*
 * backend.c: where a cache's files go.
 *
 *   file:///DIR   a spool is a temporary file DIR/nar/.tmp-PID-SEQ-XXXXXX; putting it is
 *                 a rename to its final name (atomic: a reader sees the whole file or
 *                 nothing).  Durability comes from cache__sync (syncfs), which the
 *                 publisher calls between NARs and the narinfos naming them.  Existence
 *                 is a stat.
 *   http(s)://    a spool is an unlinked temporary file in $TMPDIR; putting it is one
 *                 PUT of its bytes (Content-Length known, the body read from the file, so
 *                 memory stays bounded).  Existence is a HEAD (200: there; 404 or 403:
 *                 not there, as Nix reads it), up to CACHE_HTTP_PARALLEL at once on one
 *                 curl multi handle.  Any other status is an error naming the status.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/cache_int.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void cache__curl_global(void)
{
    pthread_once(&curl_once, curl_init_once);
}

/* ---------------------------------------------------------------- spools */

int cache__spool_open(Cache *c, CacheSpool *s, Err *e)
{
    char *tmpl;
    unsigned seq = atomic_fetch_add(&c->spool_seq, 1);
    memset(s, 0, sizeof *s);
    s->fd = -1;
    if (c->kind == CACHE_FILE) {
        tmpl = xasprintf("%s/nar/.tmp-%d-%u-XXXXXX", c->root, (int)getpid(), seq);
    } else {
        const char *dir = getenv("TMPDIR");
        tmpl = xasprintf("%s/sluice-cache-XXXXXX", dir && *dir ? dir : "/tmp");
    }
    s->fd = mkostemp(tmpl, O_CLOEXEC);
    if (s->fd < 0) {
        int rc = err_sys(e, ERR_IO, "cannot create a temporary file '%s'", tmpl);
        free(tmpl);
        return rc;
    }
    if (c->kind == CACHE_FILE) {
        /* readable by whoever serves the directory, as Nix's own files are */
        if (fchmod(s->fd, 0644) < 0) {
            int rc = err_sys(e, ERR_IO, "cannot chmod '%s'", tmpl);
            close(s->fd);
            s->fd = -1;
            unlink(tmpl);
            free(tmpl);
            return rc;
        }
        s->tmp_path = tmpl;
    } else {
        unlink(tmpl);
        free(tmpl);
    }
    return 0;
}

int cache__spool_write(CacheSpool *s, const void *data, size_t n, Err *e)
{
    const uint8_t *p = data;
    while (n > 0) {
        ssize_t w = write(s->fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return err_sys(e, ERR_IO, "cannot write '%s'",
                           s->tmp_path ? s->tmp_path : "a temporary file");
        }
        p += w;
        n -= (size_t)w;
        s->size += (uint64_t)w;
    }
    return 0;
}

void cache__spool_discard(CacheSpool *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    if (s->tmp_path)
        unlink(s->tmp_path);
    free(s->tmp_path);
    s->tmp_path = NULL;
}

/* ---------------------------------------------------------------- HTTP */

typedef struct HttpBody {
    int fd;             /* >= 0: read from the file */
    const uint8_t *mem; /* else from memory */
    size_t mem_len, mem_pos;
} HttpBody;

static size_t body_read(char *buf, size_t size, size_t nitems, void *payload)
{
    HttpBody *b = payload;
    size_t want = size * nitems;
    if (b->fd >= 0) {
        ssize_t r;
        do
            r = read(b->fd, buf, want);
        while (r < 0 && errno == EINTR);
        return r < 0 ? CURL_READFUNC_ABORT : (size_t)r;
    }
    if (want > b->mem_len - b->mem_pos)
        want = b->mem_len - b->mem_pos;
    memcpy(buf, b->mem + b->mem_pos, want);
    b->mem_pos += want;
    return want;
}

static size_t discard_body(char *ptr, size_t size, size_t nmemb, void *payload)
{
    (void)ptr;
    (void)payload;
    return size * nmemb;
}

static CURL *easy_new(const char *url, char *errbuf)
{
    CURL *h = curl_easy_init();
    if (!h)
        return NULL;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 300L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "sluice");
    curl_easy_setopt(h, CURLOPT_NETRC, (long)CURL_NETRC_OPTIONAL);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    errbuf[0] = '\0';
    return h;
}

static int http_put(Cache *c, const char *rel, HttpBody *body, uint64_t size,
                    const char *content_type, Err *e)
{
    char *url = xasprintf("%s/%s", c->root, rel);
    char *ct = xasprintf("Content-Type: %s", content_type);
    char errbuf[CURL_ERROR_SIZE];
    struct curl_slist *hdrs = NULL;
    CURL *h = NULL;
    CURLcode cc;
    long status = 0;
    int rc = 0;

    cache__curl_global();
    h = easy_new(url, errbuf);
    if (!h) {
        rc = err_set(e, ERR_NOMEM, "cannot make a curl handle");
        goto out;
    }
    hdrs = curl_slist_append(hdrs, ct);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, body_read);
    curl_easy_setopt(h, CURLOPT_READDATA, body);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)size);
    cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        rc = err_set(e, ERR_IO, "uploading %s: %s", url,
                     errbuf[0] ? errbuf : curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status >= 300)
        rc = err_set(e, ERR_IO, "uploading %s: HTTP status %ld", url, status);
out:
    curl_slist_free_all(hdrs);
    if (h)
        curl_easy_cleanup(h);
    free(ct);
    free(url);
    return rc;
}

/* HEAD of every name, CACHE_HTTP_PARALLEL at a time. */
static int http_exists(Cache *c, const char *const *names, size_t n, int *present, Err *e)
{
    CURLM *m = curl_multi_init();
    CURL *slot[CACHE_HTTP_PARALLEL] = {0};
    size_t slot_idx[CACHE_HTTP_PARALLEL];
    char *slot_url[CACHE_HTTP_PARALLEL] = {0};
    char errbuf[CACHE_HTTP_PARALLEL][CURL_ERROR_SIZE];
    size_t next = 0, active = 0;
    int rc = 0;

    cache__curl_global();
    if (!m)
        return err_set(e, ERR_NOMEM, "cannot make a curl multi handle");
    while (rc == 0 && (next < n || active > 0)) {
        int running, left;
        CURLMsg *msg;
        for (size_t i = 0; i < CACHE_HTTP_PARALLEL && next < n; i++) {
            if (slot[i])
                continue;
            slot_url[i] = xasprintf("%s/%s", c->root, names[next]);
            slot[i] = easy_new(slot_url[i], errbuf[i]);
            if (!slot[i]) {
                rc = err_set(e, ERR_NOMEM, "cannot make a curl handle");
                break;
            }
            curl_easy_setopt(slot[i], CURLOPT_NOBODY, 1L);
            curl_easy_setopt(slot[i], CURLOPT_PRIVATE, (void *)&slot_idx[i]);
            slot_idx[i] = next++;
            curl_multi_add_handle(m, slot[i]);
            active++;
        }
        if (rc < 0)
            break;
        curl_multi_perform(m, &running);
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            size_t i;
            long status = 0;
            if (msg->msg != CURLMSG_DONE)
                continue;
            for (i = 0; i < CACHE_HTTP_PARALLEL; i++)
                if (slot[i] == msg->easy_handle)
                    break;
            if (i == CACHE_HTTP_PARALLEL)
                continue;
            if (msg->data.result != CURLE_OK) {
                if (rc == 0)
                    rc = err_set(e, ERR_IO, "looking up %s: %s", slot_url[i],
                                 errbuf[i][0] ? errbuf[i] : curl_easy_strerror(msg->data.result));
            } else {
                curl_easy_getinfo(slot[i], CURLINFO_RESPONSE_CODE, &status);
                if (status >= 200 && status < 300)
                    present[slot_idx[i]] = 1;
                else if (status == 404 || status == 403 || status == 410)
                    present[slot_idx[i]] = 0;
                else if (rc == 0)
                    rc = err_set(e, ERR_IO, "looking up %s: HTTP status %ld", slot_url[i], status);
            }
            curl_multi_remove_handle(m, slot[i]);
            curl_easy_cleanup(slot[i]);
            slot[i] = NULL;
            free(slot_url[i]);
            slot_url[i] = NULL;
            active--;
        }
        if (active > 0 && rc == 0)
            curl_multi_poll(m, NULL, 0, 1000, NULL);
    }
    for (size_t i = 0; i < CACHE_HTTP_PARALLEL; i++) {
        if (slot[i]) {
            curl_multi_remove_handle(m, slot[i]);
            curl_easy_cleanup(slot[i]);
        }
        free(slot_url[i]);
    }
    curl_multi_cleanup(m);
    return rc;
}

/* ---------------------------------------------------------------- interface */

int cache__spool_put(Cache *c, CacheSpool *s, const char *rel, const char *content_type, Err *e)
{
    int rc = 0;
    if (c->kind == CACHE_FILE) {
        char *dst = xasprintf("%s/%s", c->root, rel);
        if (rename(s->tmp_path, dst) < 0)
            rc = err_sys(e, ERR_IO, "cannot rename '%s' to '%s'", s->tmp_path, dst);
        if (rc == 0) {
            free(s->tmp_path);
            s->tmp_path = NULL;
        }
        free(dst);
    } else {
        HttpBody body = {.fd = s->fd};
        if (lseek(s->fd, 0, SEEK_SET) < 0)
            rc = err_sys(e, ERR_IO, "cannot rewind a temporary file");
        else
            rc = http_put(c, rel, &body, s->size, content_type, e);
    }
    cache__spool_discard(s);
    return rc;
}

int cache__put_bytes(Cache *c, const char *rel, const void *data, size_t n,
                     const char *content_type, Err *e)
{
    CacheSpool s;
    int rc;
    if (c->kind == CACHE_HTTP) {
        HttpBody body = {.fd = -1, .mem = data, .mem_len = n};
        return http_put(c, rel, &body, n, content_type, e);
    }
    rc = cache__spool_open(c, &s, e);
    if (rc < 0)
        return rc;
    rc = cache__spool_write(&s, data, n, e);
    if (rc < 0) {
        cache__spool_discard(&s);
        return rc;
    }
    return cache__spool_put(c, &s, rel, content_type, e);
}

static int sync_fs(Cache *c, Err *e)
{
    int fd, rc = 0;
    fd = open(c->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return err_sys(e, ERR_IO, "cannot open '%s'", c->root);
    if (syncfs(fd) < 0)
        rc = err_sys(e, ERR_IO, "cannot sync the filesystem of '%s'", c->root);
    close(fd);
    return rc;
}

/* Group commit: what the caller wrote before calling is covered by any sync that begins
 * after the call, so it waits for generation sync_begun + 1 (at the time of the call)
 * and runs that sync itself only when none is running.  A failed sync fails the callers
 * that ran it; the others wait for the next one. */
int cache__sync(Cache *c, Err *e)
{
    uint64_t want;
    int rc = 0;
    if (c->kind != CACHE_FILE)
        return 0;
    pthread_mutex_lock(&c->sync_lock);
    want = c->sync_begun + 1;
    while (c->sync_done < want) {
        uint64_t gen;
        if (c->sync_running) {
            pthread_cond_wait(&c->sync_done_cv, &c->sync_lock);
            continue;
        }
        gen = ++c->sync_begun;
        c->sync_running = 1;
        pthread_mutex_unlock(&c->sync_lock);
        rc = sync_fs(c, e);
        pthread_mutex_lock(&c->sync_lock);
        c->sync_running = 0;
        if (rc == 0)
            c->sync_done = gen;
        pthread_cond_broadcast(&c->sync_done_cv);
        if (rc < 0)
            break;
    }
    pthread_mutex_unlock(&c->sync_lock);
    return rc;
}

int cache__exists(Cache *c, const char *const *names, size_t n, int *present, Err *e)
{
    for (size_t i = 0; i < n; i++)
        present[i] = 0;
    if (n == 0)
        return 0;
    if (c->kind == CACHE_HTTP)
        return http_exists(c, names, n, present, e);
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        char *p = xasprintf("%s/%s", c->root, names[i]);
        int r = stat(p, &st);
        if (r == 0) {
            present[i] = 1;
        } else if (errno != ENOENT && errno != ENOTDIR) {
            int rc = err_sys(e, ERR_IO, "cannot stat '%s'", p);
            free(p);
            return rc;
        }
        free(p);
    }
    return 0;
}
