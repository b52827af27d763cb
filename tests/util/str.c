/* tests/util/str.c: text from peers made valid UTF-8 for the database, text from the
 * database made safe for a terminal. */
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "util/util.h"

TEST(util, str, text_valid_replaces_nul_and_bad_bytes)
{
    static const char in[] = "a\0b\xff"
                             "c\xc3\xa9"         /* é */
                             "\xe2\x82"          /* truncated 3-byte sequence */
                             "\xed\xa0\x80"      /* a surrogate */
                             "\xc0\xaf"          /* an overlong '/' */
                             "\xf0\x9f\x98\x80"; /* an emoji */
    char *s = util_text_valid(in, sizeof in - 1);
    CHECK_STR(s, "a\xef\xbf\xbd"
                 "b\xef\xbf\xbd"
                 "c\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                 "\xef\xbf\xbd\xef\xbf\xbd\xf0\x9f\x98\x80");
    free(s);
    s = util_text_valid("", 0);
    CHECK_STR(s, "");
    free(s);
}

TEST(util, str, text_escape_leaves_no_escape_sequence)
{
    char *s = util_text_escape("job \x1b]0;owned\x07 \x1b[2J\tok\nnext \xc2\x9b"
                               "31m \xff caf\xc3\xa9\x7f");
    CHECK_STR(s, "job \\x1b]0;owned\\x07 \\x1b[2J\tok\nnext \\xc2\\x9b31m \\xff caf\xc3\xa9\\x7f");
    CHECK(!strchr(s, 0x1b));
    free(s);
}
