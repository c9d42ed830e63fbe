/* fuzz_time.c — lf_time_parse on arbitrary bytes: never crashes, and a
 * parsed time formats back to a string that parses to the same instant. */
#include "core/lf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    int64_t ms;
    if (lf_time_parse(s, &ms) == 0 && ms >= 0) {
        char buf[LF_TIME_LEN];
        int64_t back;
        lf_time_format(ms, buf);
        if (ms < 253402300800000LL && (lf_time_parse(buf, &back) != 0 || back != ms)) abort();
    }
    free(s);
    return 0;
}
