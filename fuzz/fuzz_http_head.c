/* fuzz_http_head.c — lf_http_parse_head (the unit uplink's own HTTP client,
 * src/http/client_plain.c) on arbitrary bytes from a server: never reads
 * past the buffer (the input is copied to an exact-size allocation, so
 * ASan sees any overread), and a head it accepts is sane — a length within
 * the input, a status 100..599, no negative Content-Length, a Retry-After
 * of at most a week; the same bytes parsed again give the same answer. */
#include "http/client.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size ? size : 1);
    if (size) memcpy(buf, data, size);
    const int64_t now = 1764400000000LL; /* a fixed wall clock: reproducible */
    lf_http_head h, again;
    long r = lf_http_parse_head(buf, size, now, &h);
    if (r < -1 || r > (long)size) abort();
    if (r > 0) {
        if (h.status < 100 || h.status > 599) abort();
        if (h.content_length < -1) abort();
        if (h.retry_after_ms < -1 || h.retry_after_ms > 7LL * 24 * 3600 * 1000) abort();
        if (lf_http_parse_head(buf, size, now, &again) != r || memcmp(&h, &again, sizeof h) != 0)
            abort();
    }
    free(buf);
    return 0;
}
