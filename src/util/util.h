/*
 * util: the base layer of sluice.  Error values with messages (Err), length-carrying
 * buffers with a size cap (Buf), named limits (limits.h), logging, allocation helpers,
 * a string vector and a string-keyed hash map.  Depends on libc only.
 *
 * Conventions used across the project:
 *   - fallible functions return int: 0 on success or a negative ERR_* code, and fill
 *     the caller's Err (may be NULL) at the place the failure is found;
 *   - callers pass the code up, optionally adding one fact with err_prefix();
 *   - `**out` results are owned by the caller; returned pointers are borrowed.
 */
#ifndef SLUICE_UTIL_H
#define SLUICE_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "util/limits.h"

#define UTIL_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define UTIL_WUR          __attribute__((warn_unused_result))
#define UTIL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* sluice's version: the VERSION file, passed by the Makefile. */
#ifndef SLUICE_VERSION
#define SLUICE_VERSION "unknown"
#endif

/* ---------------------------------------------------------------- errors */

enum {
    ERR_OK = 0,
    ERR_NOMEM = -1,        /* allocation failed */
    ERR_MALFORMED = -2,    /* hostile or broken input (message has the offset) */
    ERR_AGAIN = -3,        /* a parser needs more bytes */
    ERR_TOOBIG = -4,       /* a named limit was hit */
    ERR_IO = -5,           /* read/write/exec failure (errno in Err.sys_errno) */
    ERR_NOTFOUND = -6,     /* file, row, path not there */
    ERR_PEER = -7,         /* the peer (Nix, PostgreSQL) reported an error */
    ERR_TIMEOUT = -8,      /* a deadline passed */
    ERR_DB = -9,           /* database error */
    ERR_INVALID = -10,     /* bad argument, usage or configuration */
    ERR_BUSY = -11,        /* locked by someone else (database, lock file) */
    ERR_UNSUPPORTED = -12, /* the peer or the build lacks a feature */
    ERR_CONFLICT = -13,    /* contradicts existing state */
    ERR_EOF = -14,         /* the peer hung up */
    ERR_CANCELLED = -15,   /* stopped on request */
};

#define ERR_MSG_MAX 1024

/* An error value: code, one-line message, errno at the failure. Embedded by callers. */
typedef struct Err {
    int code;
    int sys_errno;
    char msg[ERR_MSG_MAX];
} Err;

/* Set *e (if not NULL) and return `code`. */
int err_set(Err *e, int code, const char *fmt, ...) UTIL_PRINTF(3, 4);
/* Like err_set, appending ": strerror(errno)" and recording errno. */
int err_sys(Err *e, int code, const char *fmt, ...) UTIL_PRINTF(3, 4);
/* Prefix the existing message with one fact ("host b1: " + msg); returns e->code. */
int err_prefix(Err *e, const char *fmt, ...) UTIL_PRINTF(2, 3);
void err_clear(Err *e);
/* Name of an ERR_* code ("malformed", "timeout", ...). */
const char *err_code_name(int code);

/* ---------------------------------------------------------------- memory */

/* Allocation helpers for our own bookkeeping (not for sizes taken from peers, which
 * must be checked against a limit first): they abort with a message on OOM. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) UTIL_PRINTF(1, 2);
/* Overflow-checked a*b and a+b; return 0 or ERR_TOOBIG. */
int util_mul(size_t a, size_t b, size_t *out) UTIL_WUR;
int util_add(size_t a, size_t b, size_t *out) UTIL_WUR;

/* ---------------------------------------------------------------- buffers */

/* Growable byte buffer with a hard cap.  Errors are sticky: after the first failed
 * append every later append is a no-op and buf_status() reports the error, so a run
 * of appends can be checked once.  p is always NUL-terminated when len > 0 or after
 * buf_cstr(). */
typedef struct Buf {
    uint8_t *p;
    size_t len, cap, max;
    int status; /* 0, ERR_NOMEM or ERR_TOOBIG */
} Buf;

void buf_init(Buf *b, size_t max);
void buf_dispose(Buf *b);
void buf_reset(Buf *b); /* len = 0, status cleared, memory kept */
int buf_reserve(Buf *b, size_t extra);
int buf_append(Buf *b, const void *data, size_t n);
int buf_puts(Buf *b, const char *s);
int buf_putc(Buf *b, int c);
int buf_printf(Buf *b, const char *fmt, ...) UTIL_PRINTF(2, 3);
int buf_vprintf(Buf *b, const char *fmt, va_list ap);
int buf_status(const Buf *b);
/* NUL-terminated view of the contents (borrowed; "" for an empty buffer). */
const char *buf_cstr(Buf *b);
/* Hand the bytes over (NUL-terminated, caller frees); the buffer is left empty. */
char *buf_take(Buf *b, size_t *len);
/* Drop the first n bytes. */
void buf_consume(Buf *b, size_t n);

/* Read a whole file into b (which must be initialised with its cap); ERR_TOOBIG when
 * the file is larger than b->max. */
int util_read_file(const char *path, Buf *b, Err *e);
/* Write data to path atomically (tmp file + fsync + rename). */
int util_write_file_atomic(const char *path, const void *data, size_t n, Err *e);
/* mkdir -p */
int util_mkdir_p(const char *path, int mode, Err *e);

/* ---------------------------------------------------------------- strings */

typedef struct StrVec {
    char **v;
    size_t n, cap;
} StrVec;

void strvec_init(StrVec *sv);
void strvec_dispose(StrVec *sv);             /* frees every element */
void strvec_push(StrVec *sv, const char *s); /* copies s */
void strvec_push_take(StrVec *sv, char *s);  /* takes ownership of s */
void strvec_sort_unique(StrVec *sv);         /* byte order, duplicates dropped */
int strvec_contains(const StrVec *sv, const char *s);

/* A growable array of pointers the vector does not own (ptrvec.c). */
typedef struct PtrVec {
    void **v;
    uint32_t n, cap;
} PtrVec;

void ptrvec_push(PtrVec *pv, void *p);
int ptrvec_remove(PtrVec *pv, void *p);          /* 1 when found (order not kept) */
void ptrvec_remove_ordered(PtrVec *pv, void *p); /* keeps the order of the rest */
int ptrvec_contains(const PtrVec *pv, const void *p);
void ptrvec_dispose(PtrVec *pv); /* the array only, not what it points to */

int util_starts_with(const char *s, const char *prefix);
int util_ends_with(const char *s, const char *suffix);
/* Parse a decimal integer (whole string); 0 or ERR_INVALID. */
int util_parse_i64(const char *s, int64_t *out);
/* Remove ANSI escape sequences in place. */
void util_strip_ansi(char *s);
/* Text from a peer made fit for the database: a NUL-terminated copy of n bytes that is
 * valid UTF-8, each NUL byte and each byte outside a valid sequence replaced by U+FFFD.
 * Caller frees. */
char *util_text_valid(const char *s, size_t n);
/* Text from the database made safe for a terminal or a log line: control characters
 * (but newline and tab), C1 controls and bytes outside valid UTF-8 are written as \xNN,
 * so no escape sequence reaches the terminal.  Caller frees. */
char *util_text_escape(const char *s);
/* Monotonic and wall clocks. */
uint64_t util_now_ms(void); /* monotonic */
/* CLOCK_REALTIME now plus ms: a deadline for pthread_cond_timedwait. */
struct timespec util_deadline_in(uint64_t ms);
int64_t util_time_now(void); /* wall clock, seconds since the epoch */

/* ---------------------------------------------------------------- hash map */

/* String-keyed open-addressing hash map.  Keys are copied (see map_new_borrowed);
 * values are borrowed unless a free callback is given. */
typedef struct Map Map;
typedef void (*MapFreeFn)(void *value);

Map *map_new(MapFreeFn free_value);
/* A map whose keys are not copied: each key must live inside (or as long as) its value,
 * and map_put must be given the new value's own key.  Saves a copy per entry for big
 * maps keyed by a string their values hold. */
Map *map_new_borrowed(MapFreeFn free_value);
void map_free(Map *m);
void *map_get(const Map *m, const char *key);
/* Insert or replace; an old value is freed with the callback. */
void map_put(Map *m, const char *key, void *value);
/* Remove; returns the value (not freed) or NULL. */
void *map_del(Map *m, const char *key);
size_t map_size(const Map *m);
/* Remove every entry (values freed with the callback). */
void map_clear(Map *m);
/* Iterate: *it starts at 0; returns 0 at the end. */
int map_next(const Map *m, size_t *it, const char **key, void **value);

/* ---------------------------------------------------------------- logging */

enum { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* Process-wide level, set once at start-up from SLUICE_LOG / --verbose (atomic int). */
void log_set_level(int level);
int log_get_level(void);
void log_msg(int level, const char *fmt, ...) UTIL_PRINTF(2, 3);
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_get_level() >= LOG_DEBUG)                                                          \
            log_msg(LOG_DEBUG, __VA_ARGS__);                                                       \
    } while (0)

#endif
