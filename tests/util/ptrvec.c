/* tests/util/ptrvec.c: PtrVec (src/util/ptrvec.c). */
#include "test.h"
#include "util/util.h"

TEST(util, ptrvec, push_remove_contains)
{
    PtrVec pv = {0};
    int x[6];
    for (int i = 0; i < 6; i++)
        ptrvec_push(&pv, &x[i]);
    CHECK_INT(pv.n, 6);
    CHECK(ptrvec_contains(&pv, &x[3]));
    /* unordered removal: the last entry takes the hole */
    CHECK_INT(ptrvec_remove(&pv, &x[1]), 1);
    CHECK(pv.v[1] == &x[5]);
    CHECK_INT(ptrvec_remove(&pv, &x[1]), 0);
    CHECK(!ptrvec_contains(&pv, &x[1]));
    /* ordered removal keeps the rest in place: 0 5 2 3 4 -> 0 2 3 4 */
    ptrvec_remove_ordered(&pv, &x[5]);
    CHECK_INT(pv.n, 4);
    CHECK(pv.v[0] == &x[0] && pv.v[1] == &x[2] && pv.v[2] == &x[3] && pv.v[3] == &x[4]);
    ptrvec_remove_ordered(&pv, &x[5]); /* absent: nothing happens */
    CHECK_INT(pv.n, 4);
    ptrvec_dispose(&pv);
    CHECK(pv.v == NULL && pv.n == 0);
}
