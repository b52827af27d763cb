/* tests/nix/fuzz_nar_replay.c: replays the libFuzzer corpus of the NAR reader
 * (tests/fuzz/corpus/nar/) through the fuzz target's checks (three chunkings agree,
 * errors are malformed-with-offset), so every stored input keeps passing under the
 * normal and ASan builds. */
#include <dirent.h>
#include <stdlib.h>

#define FUZZ_NAR_NO_MAIN
#include "fuzz/fuzz_nar.c"
#include "test.h"

TEST(nix, fuzz_nar_replay, nar_corpus)
{
    char *dir = xstrdup(test_data("../fuzz/corpus/nar"));
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t n = 0;
    CHECK_MSG(d != NULL, "no corpus at %s", dir);
    while ((de = readdir(d))) {
        Buf b;
        char *p;
        int rc;
        if (de->d_name[0] == '.')
            continue;
        p = xasprintf("%s/%s", dir, de->d_name);
        buf_init(&b, 64u << 20);
        rc = util_read_file(p, &b, NULL);
        if (rc == 0)
            rc = fuzz_nar_one(b.p ? b.p : (const uint8_t *)"", b.len);
        buf_dispose(&b);
        if (rc < 0) {
            test_fail(__FILE__, __LINE__, "%s fails", p);
            free(p);
            break;
        }
        free(p);
        n++;
    }
    closedir(d);
    free(dir);
    CHECK_MSG(n >= 17, "only %zu corpus files", n);
}
