/* map.c: string-keyed open-addressing hash map (linear probing, tombstones,
 * FNV-1a hashing).  Not thread-safe; the owner's lock guards it. */
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#define TOMB ((char *)1)

struct Map {
    char **keys;
    void **vals;
    size_t cap, n, used; /* used counts live + tombstones */
    MapFreeFn free_value;
    int borrowed; /* keys belong to the values (map_new_borrowed) */
};

static void free_key(const Map *m, char *key)
{
    if (!m->borrowed)
        free(key);
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (uint8_t)*s;
        h *= 1099511628211ull;
    }
    return h;
}

Map *map_new(MapFreeFn free_value)
{
    Map *m = xcalloc(1, sizeof *m);
    m->cap = 16;
    m->keys = xcalloc(m->cap, sizeof *m->keys);
    m->vals = xcalloc(m->cap, sizeof *m->vals);
    m->free_value = free_value;
    return m;
}

Map *map_new_borrowed(MapFreeFn free_value)
{
    Map *m = map_new(free_value);
    m->borrowed = 1;
    return m;
}

void map_free(Map *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->keys[i] && m->keys[i] != TOMB) {
            free_key(m, m->keys[i]);
            if (m->free_value)
                m->free_value(m->vals[i]);
        }
    }
    free(m->keys);
    free(m->vals);
    free(m);
}

static size_t find_slot(const Map *m, const char *key, int *found)
{
    size_t mask = m->cap - 1, i = (size_t)hash_str(key) & mask, tomb = SIZE_MAX;
    for (;;) {
        char *k = m->keys[i];
        if (!k) {
            *found = 0;
            return tomb != SIZE_MAX ? tomb : i;
        }
        if (k == TOMB) {
            if (tomb == SIZE_MAX)
                tomb = i;
        } else if (strcmp(k, key) == 0) {
            *found = 1;
            return i;
        }
        i = (i + 1) & mask;
    }
}

static void grow(Map *m)
{
    char **ok = m->keys;
    void **ov = m->vals;
    size_t ocap = m->cap;
    size_t ncap = m->n * 4 > m->cap ? m->cap * 2 : m->cap;
    m->cap = ncap;
    m->keys = xcalloc(ncap, sizeof *m->keys);
    m->vals = xcalloc(ncap, sizeof *m->vals);
    m->used = m->n;
    for (size_t i = 0; i < ocap; i++) {
        if (ok[i] && ok[i] != TOMB) {
            int found;
            size_t s = find_slot(m, ok[i], &found);
            m->keys[s] = ok[i];
            m->vals[s] = ov[i];
        }
    }
    free(ok);
    free(ov);
}

void *map_get(const Map *m, const char *key)
{
    int found;
    size_t s = find_slot(m, key, &found);
    return found ? m->vals[s] : NULL;
}

void map_put(Map *m, const char *key, void *value)
{
    int found;
    size_t s;
    if ((m->used + 1) * 4 >= m->cap * 3)
        grow(m);
    s = find_slot(m, key, &found);
    if (found) {
        void *old = m->vals[s];
        if (m->borrowed)
            m->keys[s] = (char *)key; /* the old key may go with the old value */
        m->vals[s] = value;
        if (m->free_value && old != value)
            m->free_value(old);
        return;
    }
    if (!m->keys[s])
        m->used++;
    m->keys[s] = m->borrowed ? (char *)key : xstrdup(key);
    m->vals[s] = value;
    m->n++;
}

void *map_del(Map *m, const char *key)
{
    int found;
    size_t s = find_slot(m, key, &found);
    void *v;
    if (!found)
        return NULL;
    v = m->vals[s];
    free_key(m, m->keys[s]);
    m->keys[s] = TOMB;
    m->vals[s] = NULL;
    m->n--;
    return v;
}

size_t map_size(const Map *m)
{
    return m->n;
}

int map_next(const Map *m, size_t *it, const char **key, void **value)
{
    while (*it < m->cap) {
        size_t i = (*it)++;
        if (m->keys[i] && m->keys[i] != TOMB) {
            if (key)
                *key = m->keys[i];
            if (value)
                *value = m->vals[i];
            return 1;
        }
    }
    return 0;
}

void map_clear(Map *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        if (m->keys[i] && m->keys[i] != TOMB) {
            free_key(m, m->keys[i]);
            if (m->free_value)
                m->free_value(m->vals[i]);
        }
        m->keys[i] = NULL;
        m->vals[i] = NULL;
    }
    m->n = m->used = 0;
}
