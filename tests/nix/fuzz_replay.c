/* tests/nix/fuzz_replay.c: replays the libFuzzer corpus of the ATerm parser
 * (tests/fuzz/corpus/aterm/) through the fuzz target's checks, so every stored input,
 * including any that once found a bug, keeps passing under the normal and ASan builds. */
#include <dirent.h>
#include <stdlib.h>

#define NIX_FUZZ_NO_MAIN
#include "fuzz/fuzz_aterm.c"
#include "test.h"

TEST(nix, fuzz_replay, aterm_corpus)
{
    char *dir = xstrdup(test_data("../fuzz/corpus/aterm"));
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
        buf_init(&b, LIMIT_DRV_FILE_SIZE + 1);
        rc = util_read_file(p, &b, NULL);
        if (rc == 0)
            rc = nix_fuzz_aterm_one(b.p ? b.p : (const uint8_t *)"", b.len);
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
    CHECK_MSG(n >= 20, "only %zu corpus files", n);
}
