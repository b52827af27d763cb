/* tests/util/map.c: the string-keyed map, copied and borrowed keys, checked against a
 * plain array under random puts, replacements and deletions (run under ASan in CI, which
 * catches a key freed twice or used after its value went). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "util/util.h"

typedef struct Val {
    int n;
    char key[24]; /* the borrowed map's key lives here */
} Val;

static int live;

static Val *val_new(int k, int n)
{
    Val *v = xcalloc(1, sizeof *v);
    snprintf(v->key, sizeof v->key, "key-%d", k);
    v->n = n;
    live++;
    return v;
}

static void val_free(void *p)
{
    if (p)
        live--;
    free(p);
}

/* Random operations on a map of 500 possible keys against the array `model`. */
static int exercise(Map *m, int borrowed, unsigned seed)
{
    enum { K = 500 };
    int model[K];
    srand(seed);
    for (int i = 0; i < K; i++)
        model[i] = -1;
    for (int step = 0; step < 20000; step++) {
        int k = rand() % K, op = rand() % 3;
        char key[24];
        snprintf(key, sizeof key, "key-%d", k);
        if (op < 2) { /* put or replace */
            Val *v = val_new(k, step);
            map_put(m, borrowed ? v->key : key, v);
            model[k] = step;
        } else {
            Val *v = map_del(m, key);
            if ((v != NULL) != (model[k] >= 0))
                return -1;
            val_free(v);
            model[k] = -1;
        }
        if (step % 997 == 0) {
            size_t n = 0, it = 0;
            const char *mk;
            void *mv;
            for (int i = 0; i < K; i++) {
                char kk[24];
                Val *v;
                snprintf(kk, sizeof kk, "key-%d", i);
                v = map_get(m, kk);
                if ((v ? v->n : -1) != model[i])
                    return -2;
                n += model[i] >= 0;
            }
            if (map_size(m) != n)
                return -3;
            while (map_next(m, &it, &mk, &mv))
                if (strcmp(mk, ((Val *)mv)->key) != 0)
                    return -4;
        }
    }
    return 0;
}

/* Exercise m, clear it, exercise it again, free it; 0, or which check failed:
 * 1 the first exercise, 2 the size after the clear, 3 values left after the clear,
 * 4 the second exercise, 5 values left after the free. */
static int exercise_clear_free(Map *m, int borrowed, unsigned seed)
{
    int rc = 0;
    live = 0;
    if (exercise(m, borrowed, seed) < 0)
        rc = 1;
    map_clear(m);
    if (!rc && map_size(m) != 0)
        rc = 2;
    if (!rc && live != 0)
        rc = 3;
    if (!rc && exercise(m, borrowed, seed + 1) < 0)
        rc = 4;
    map_free(m);
    if (!rc && live != 0)
        rc = 5;
    return rc;
}

TEST(util, map, copied_keys_match_a_model)
{
    CHECK_INT(exercise_clear_free(map_new(val_free), 0, 1), 0);
}

TEST(util, map, borrowed_keys_live_in_their_values)
{
    CHECK_INT(exercise_clear_free(map_new_borrowed(val_free), 1, 3), 0);
}
