/* tests/store/fuzz_wire_replay.c: replays the libFuzzer corpus of the store decoders
 * (tests/fuzz/corpus/wire/) through the fuzz target, so every stored input, including
 * any that once found a bug, keeps passing under the normal and ASan builds. */
#include <dirent.h>
#include <stdlib.h>

#define STORE_FUZZ_NO_MAIN
#include "fuzz/fuzz_wire.c"
#include "test.h"

TEST(store, fuzz_wire_replay, corpus)
{
    char *dir = xstrdup(test_data("../fuzz/corpus/wire"));
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t n = 0;
    CHECK_MSG(d != NULL, "no corpus at %s", dir);
    while ((de = readdir(d))) {
        Buf b;
        char *p;
        if (de->d_name[0] == '.')
            continue;
        p = xasprintf("%s/%s", dir, de->d_name);
        buf_init(&b, 64u << 20);
        if (util_read_file(p, &b, NULL) == 0)
            store_fuzz_wire_one(b.p ? b.p : (const uint8_t *)"", b.len);
        buf_dispose(&b);
        free(p);
        n++;
    }
    closedir(d);
    free(dir);
    CHECK_MSG(n >= 20, "only %zu corpus files", n);
}
