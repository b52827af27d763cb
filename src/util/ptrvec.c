/* ptrvec.c: PtrVec, a growable array of borrowed pointers. */
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

void ptrvec_push(PtrVec *pv, void *p)
{
    if (pv->n == pv->cap) {
        pv->cap = pv->cap ? pv->cap * 2 : 2;
        pv->v = xrealloc(pv->v, pv->cap * sizeof *pv->v);
    }
    pv->v[pv->n++] = p;
}

int ptrvec_remove(PtrVec *pv, void *p)
{
    for (uint32_t i = 0; i < pv->n; i++) {
        if (pv->v[i] == p) {
            pv->v[i] = pv->v[--pv->n];
            return 1;
        }
    }
    return 0;
}

int ptrvec_contains(const PtrVec *pv, const void *p)
{
    for (uint32_t i = 0; i < pv->n; i++)
        if (pv->v[i] == p)
            return 1;
    return 0;
}

void ptrvec_remove_ordered(PtrVec *pv, void *p)
{
    for (uint32_t i = 0; i < pv->n; i++) {
        if (pv->v[i] == p) {
            memmove(&pv->v[i], &pv->v[i + 1], (pv->n - i - 1) * sizeof *pv->v);
            pv->n--;
            return;
        }
    }
}

void ptrvec_dispose(PtrVec *pv)
{
    free(pv->v);
    pv->v = NULL;
    pv->n = pv->cap = 0;
}
