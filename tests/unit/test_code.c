/*
 * test_code.c — booking codes: round trip, tampering, wrong key, windows,
 * malformed input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "domain/code.h"

#include <stdio.h>
#include <string.h>

static const char *RID = "0b9c7d52-3f1e-4a6b-9c2d-1e2f3a4b5c6d";
static unsigned char key1[32], key2[32];
#define T0 1800000000000LL
#define T1 (T0 + 3600000LL)

static int setup(void **state)
{
    (void)state;
    lf_init();
    memset(key1, 0x11, sizeof key1);
    memset(key2, 0x11, sizeof key2);
    key2[31] = 0x12;
    return 0;
}

static void round_trip(void **state)
{
    char code[LF_CODE_MAX];
    lf_code_info info;
    (void)state;
    assert_int_equal(lf_code_make(key1, RID, "A01", T0, T1, code, sizeof code), 0);
    assert_true(strncmp(code, "LF1", 3) == 0);
    for (const char *p = code; *p; p++)
        assert_true(
            strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", *p) != NULL);
    assert_int_equal(lf_code_verify(key1, code, T0, &info), 0);
    assert_string_equal(info.reservation_id, RID);
    assert_string_equal(info.locker, "A01");
    assert_int_equal(info.from_ms, T0);
    assert_int_equal(info.to_ms, T1);
    /* skip the window check */
    assert_int_equal(lf_code_verify(key1, code, -1, NULL), 0);
    /* deterministic */
    char again[LF_CODE_MAX];
    assert_int_equal(lf_code_make(key1, RID, "A01", T0, T1, again, sizeof again), 0);
    assert_string_equal(code, again);
}

static void window_edges(void **state)
{
    char code[LF_CODE_MAX];
    lf_code_info info;
    (void)state;
    assert_int_equal(lf_code_make(key1, RID, "B12", T0, T1, code, sizeof code), 0);
    assert_int_equal(lf_code_verify(key1, code, T0 - 1, &info), LF_ESTATE);
    assert_string_equal(info.locker, "B12"); /* filled: caller can say "too early" */
    assert_int_equal(lf_code_verify(key1, code, T0, NULL), 0);
    assert_int_equal(lf_code_verify(key1, code, T1 - 1, NULL), 0);
    assert_int_equal(lf_code_verify(key1, code, T1, &info), LF_ESTATE); /* half-open */
}

static void wrong_key(void **state)
{
    char code[LF_CODE_MAX];
    (void)state;
    assert_int_equal(lf_code_make(key1, RID, "A01", T0, T1, code, sizeof code), 0);
    assert_int_equal(lf_code_verify(key2, code, T0, NULL), LF_EDENIED);
}

static void tampered(void **state)
{
    char code[LF_CODE_MAX], bad[LF_CODE_MAX];
    size_t n;
    int denied = 0;
    (void)state;
    assert_int_equal(lf_code_make(key1, RID, "A01", T0, T1, code, sizeof code), 0);
    n = strlen(code);
    /* flip every character after the prefix to another base64url char */
    for (size_t i = 3; i < n; i++) {
        memcpy(bad, code, n + 1);
        bad[i] = bad[i] == 'A' ? 'B' : 'A';
        int rc = lf_code_verify(key1, bad, T0, NULL);
        assert_true(rc == LF_EDENIED || rc == LF_EINVAL);
        if (rc == LF_EDENIED) denied++;
    }
    assert_true(denied > (int)(n / 2));
    /* a different locker or window under the same key is a different code */
    char other[LF_CODE_MAX];
    assert_int_equal(lf_code_make(key1, RID, "A02", T0, T1, other, sizeof other), 0);
    assert_string_not_equal(code, other);
    assert_int_equal(lf_code_make(key1, RID, "A01", T0, T1 + 1, other, sizeof other), 0);
    assert_string_not_equal(code, other);
}

static void malformed(void **state)
{
    char code[LF_CODE_MAX], buf[LF_CODE_MAX + 10];
    (void)state;
    assert_int_equal(lf_code_verify(key1, NULL, T0, NULL), LF_EINVAL);
    assert_int_equal(lf_code_verify(key1, "", T0, NULL), LF_EINVAL);
    assert_int_equal(lf_code_verify(key1, "LF1", T0, NULL), LF_EINVAL);
    assert_int_equal(lf_code_verify(key1, "XX1AAAA", T0, NULL), LF_EINVAL);
    assert_int_equal(lf_code_verify(key1, "LF1!!!!", T0, NULL), LF_EINVAL);
    assert_int_equal(lf_code_make(key1, RID, "A01", T0, T1, code, sizeof code), 0);
    /* truncated */
    memcpy(buf, code, strlen(code) - 4);
    buf[strlen(code) - 4] = '\0';
    assert_int_equal(lf_code_verify(key1, buf, T0, NULL), LF_EINVAL);
    /* extended */
    snprintf(buf, sizeof buf, "%sAAAA", code);
    assert_int_equal(lf_code_verify(key1, buf, T0, NULL), LF_EINVAL);
    /* very long */
    char lng[4096];
    memset(lng, 'A', sizeof lng - 1);
    lng[sizeof lng - 1] = '\0';
    memcpy(lng, "LF1", 3);
    assert_int_equal(lf_code_verify(key1, lng, T0, NULL), LF_EINVAL);
}

static void make_rejects_bad_args(void **state)
{
    char code[LF_CODE_MAX];
    (void)state;
    assert_int_equal(lf_code_make(key1, "not-a-uuid", "A01", T0, T1, code, sizeof code), LF_EINVAL);
    assert_int_equal(lf_code_make(key1, RID, "", T0, T1, code, sizeof code), LF_EINVAL);
    assert_int_equal(lf_code_make(key1, RID, "A 1", T0, T1, code, sizeof code), LF_EINVAL);
    assert_int_equal(lf_code_make(key1, RID, "A0123456789012345", T0, T1, code, sizeof code),
                     LF_EINVAL);
    assert_int_equal(lf_code_make(key1, RID, "A01", T1, T0, code, sizeof code), LF_EINVAL);
    assert_int_equal(lf_code_make(key1, RID, "A01", T0, T0, code, sizeof code), LF_EINVAL);
    assert_int_equal(lf_code_make(key1, RID, "A01", T0, T1, code, 10), LF_EINVAL);
    /* longest locker fits in LF_CODE_MAX */
    assert_int_equal(lf_code_make(key1, RID, "A01234567890123", T0, T1, code, sizeof code), 0);
    assert_int_equal(lf_code_verify(key1, code, T0, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip), cmocka_unit_test(window_edges),
        cmocka_unit_test(wrong_key),  cmocka_unit_test(tampered),
        cmocka_unit_test(malformed),  cmocka_unit_test(make_rejects_bad_args),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
