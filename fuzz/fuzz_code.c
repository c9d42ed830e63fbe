/* fuzz_code.c — the unit's offline booking-code verifier (lf_code_verify,
 * what /screen/pickup runs on whatever is typed or scanned) on arbitrary
 * bytes. Never crashes; only LF_EINVAL/LF_EDENIED for junk; a code that
 * verifies (possible only if the fuzzer starts from a real code) re-made
 * with lf_code_make from its decoded fields is the same string. Seeds: real
 * codes under the fixed key below (fuzz/corpus/code). */
#include "domain/code.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const unsigned char key[LF_CODE_KEY_LEN] = "lockerfleet-fuzz-key-0123456789";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int inited;
    if (!inited) inited = lf_init() == 0;
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    lf_code_info info;
    memset(&info, 0xAA, sizeof info);
    int rc = lf_code_verify(key, s, -1, &info);
    if (rc == 0) {
        char again[LF_CODE_MAX];
        if (lf_code_make(key, info.reservation_id, info.locker, info.from_ms, info.to_ms, again,
                         sizeof again) != 0)
            abort();
        if (strcmp(again, s) != 0) abort(); /* one code per reservation: no malleability */
        /* the window check agrees with the decoded window */
        if (lf_code_verify(key, s, info.from_ms, NULL) != 0) abort();
        if (lf_code_verify(key, s, info.to_ms, NULL) != LF_ESTATE) abort();
    } else if (rc != LF_EINVAL && rc != LF_EDENIED) {
        abort();
    }
    (void)lf_code_verify(key, s, 1800000000000LL, NULL);
    free(s);
    return 0;
}
