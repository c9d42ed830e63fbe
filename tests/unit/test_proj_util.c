/*
 * test_proj_util.c — helpers of the projection files (proj_util.h): the
 * top-level integer scanner agrees with jansson on every input it decides,
 * and the cached day string equals the first ten characters of
 * lf_time_format.
 */
#include "projection/proj_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* jansson's verdict: 1 and the value when key is a top-level integer. */
static int by_jansson(const char *txt, const char *key, int64_t *out)
{
    json_t *d = json_loads(txt, 0, NULL);
    json_t *v = json_object_get(d, key);
    int got = json_is_integer(v);
    if (got) *out = json_integer_value(v);
    json_decref(d);
    return got;
}

static void test_json_i64_agrees_with_jansson(void **state)
{
    (void)state;
    static const char *const docs[] = {
        "{}",
        " { } ",
        "{\"amount_cents\":1}",
        "{\"amount_cents\":-250,\"currency\":\"EUR\"}",
        "{ \"a\" : 1 , \"amount_cents\" : 42 }",
        "{\"rental_id\":\"r1\",\"amount_cents\":0}",
        "{\"amount_cents\":-0}",
        "{\"amount_cents\":999999999999999999}",
        "{\"amount_cents\":1.0}",
        "{\"amount_cents\":1e3}",
        "{\"amount_cents\":2E1}",
        "{\"amount_cents\":\"12\"}",
        "{\"amount_cents\":null}",
        "{\"amount_cents\":true}",
        "{\"amount_cents\":[1]}",
        "{\"amount_cents\":{\"amount_cents\":1}}",
        "{\"x\":{\"amount_cents\":5}}",
        "{\"x\":[{\"amount_cents\":5}],\"y\":2}",
        "{\"s\":\"\\\"amount_cents\\\":5\",\"amount_cents\":6}",
        "{\"s\":\"}{][\",\"amount_cents\":7}",
        "{\"s\":\"\\\\\",\"amount_cents\":8}",
        "{\"amount_centsx\":1}",
        "{\"amount_cent\":1}",
        "{\"AMOUNT_CENTS\":1}",
        "{\"n\":-1.5e-3,\"b\":false,\"amount_cents\":9,\"z\":null}",
        "{\"amount_cents\":12\n}",
        "{\"amount_cents\":\t12}",
        "{\"\\u00e9\":1,\"amount_cents\":3}",
        "{\"x\":\"\\u00e9\",\"amount_cents\":4}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        int64_t a = -777, b = -777;
        int fast = lf_proj_json_i64(docs[i], "amount_cents", &a);
        int slow = by_jansson(docs[i], "amount_cents", &b);
        if (fast < 0) continue; /* not decided: the caller asks jansson */
        if (fast != slow || (fast && a != b))
            fail_msg("%s: scanner %d (%lld), jansson %d (%lld)", docs[i], fast, (long long)a, slow,
                     (long long)b);
    }
}

static void test_json_i64_undecided(void **state)
{
    (void)state;
    int64_t v;
    /* escaped keys and integers past 18 digits go to jansson */
    assert_int_equal(lf_proj_json_i64("{\"amount\\u005fcents\":1}", "amount_cents", &v), -1);
    assert_int_equal(lf_proj_json_i64("{\"amount_cents\":1234567890123456789}", "amount_cents", &v),
                     -1);
    assert_int_equal(lf_proj_json_i64("[1]", "amount_cents", &v), -1);
    /* not JSON: a trailing comma, a missing comma, no closing brace */
    assert_int_equal(lf_proj_json_i64("{\"amount_cents\":1,}", "amount_cents", &v), -1);
    assert_int_equal(lf_proj_json_i64("{\"a\":1 \"amount_cents\":2}", "amount_cents", &v), -1);
    assert_int_equal(lf_proj_json_i64("{\"amount_cents\":1", "amount_cents", &v), -1);
    assert_int_equal(lf_proj_json_i64("{ }", "amount_cents", &v), 0);
    assert_int_equal(lf_proj_json_i64("{\"a\":\"unterminated", "amount_cents", &v), -1);
    /* and what it decides, it decides right */
    assert_int_equal(lf_proj_json_i64("{\"amount_cents\":-12}", "amount_cents", &v), 1);
    assert_int_equal(v, -12);
    assert_int_equal(lf_proj_json_i64("{\"other\":1}", "amount_cents", &v), 0);
}

/* lf_proj_json_strs: what it decides, jansson would say too (each wanted
 * member's string value, NULL when absent or not a string). */
static void test_json_strs_agrees_with_jansson(void **state)
{
    (void)state;
    static const char *const keys[] = {"reservation_id", "locker", "from", "x"};
    static const char *const docs[] = {
        "{}",
        " { } ",
        "{\"reservation_id\":\"r-1\",\"locker\":\"A01\",\"from\":\"2026-01-01T00:00:00Z\"}",
        "{ \"locker\" : \"B\" , \"n\" : 1 , \"reservation_id\" : \"\" }",
        "{\"reservation_id\":1,\"locker\":null,\"from\":true,\"x\":[\"a\"]}",
        "{\"reservation_id\":{\"locker\":\"no\"},\"locker\":\"yes\"}",
        "{\"y\":[{\"locker\":\"no\"}],\"locker\":\"yes\"}",
        "{\"s\":\"\\\"locker\\\":\\\"no\\\"\",\"locker\":\"yes\"}",
        "{\"s\":\"}{][\",\"x\":\"}{][,:\"}",
        "{\"x\":\"caf\u00e9\"}",
        "{\"lockerx\":\"a\",\"locke\":\"b\",\"LOCKER\":\"c\"}",
        "{\"x\":\"a\"\n,\"from\":\t\"b\"}",
        "{\"x\":\"\\u00e9\"}",
        "{\"x\":\"a\\\"b\"}",
        "{\"\\u0078\":\"a\"}",
        "{\"n\":-1.5e-3,\"b\":false,\"x\":\"9\",\"z\":null}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        const char *v[4];
        char buf[256];
        json_t *d = json_loads(docs[i], 0, NULL);
        assert_non_null(d);
        int rc = lf_proj_json_strs(docs[i], keys, 4, v, buf, sizeof buf);
        if (rc == 0)
            for (int k = 0; k < 4; k++) {
                const char *j = json_string_value(json_object_get(d, keys[k]));
                if (!j != !v[k] || (j && strcmp(j, v[k]) != 0))
                    fail_msg("%s: %s scanner '%s', jansson '%s'", docs[i], keys[k],
                             v[k] ? v[k] : "(null)", j ? j : "(null)");
            }
        json_decref(d);
    }
}

static void test_json_strs_undecided(void **state)
{
    (void)state;
    static const char *const keys[] = {"a", "b"};
    const char *v[2];
    char buf[8];
    /* escapes in a wanted string or in a key, a small buffer, not an object */
    assert_int_equal(lf_proj_json_strs("{\"a\":\"x\\ny\"}", keys, 2, v, buf, sizeof buf), -1);
    assert_int_equal(lf_proj_json_strs("{\"\\u0061\":\"x\"}", keys, 2, v, buf, sizeof buf), -1);
    assert_int_equal(lf_proj_json_strs("{\"a\":\"12345678\"}", keys, 2, v, buf, sizeof buf), -1);
    assert_int_equal(lf_proj_json_strs("[\"a\"]", keys, 2, v, buf, sizeof buf), -1);
    assert_int_equal(lf_proj_json_strs("{\"a\":\"unterminated", keys, 2, v, buf, sizeof buf), -1);
    /* an escape in a string nobody wants is fine */
    assert_int_equal(
        lf_proj_json_strs("{\"c\":\"\\\"\",\"a\":\"1\",\"b\":\"2\"}", keys, 2, v, buf, sizeof buf),
        0);
    assert_string_equal(v[0], "1");
    assert_string_equal(v[1], "2");
    assert_int_equal(lf_proj_json_strs("{\"a\":\"1234567\"}", keys, 2, v, buf, sizeof buf), 0);
    assert_string_equal(v[0], "1234567");
    assert_null(v[1]);
}

static void test_day_is_time_format_prefix(void **state)
{
    (void)state;
    static const int64_t ms[] = {0,
                                 1,
                                 86399999,
                                 86400000,
                                 -1,
                                 -86400000,
                                 -86400001,
                                 1790000000000LL,
                                 1790006399999LL,
                                 1790006400000LL,
                                 1790000000000LL, /* again: from the cache */
                                 951782400000LL,  /* 2000-02-29 */
                                 253402300799999LL};
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
        char want[LF_TIME_LEN], got[11];
        lf_time_format(ms[i], want);
        want[10] = '\0';
        lf_proj_day(ms[i], got);
        assert_string_equal(got, want);
    }
}

int main(void)
{
    lf_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_i64_agrees_with_jansson),
        cmocka_unit_test(test_json_i64_undecided),
        cmocka_unit_test(test_json_strs_agrees_with_jansson),
        cmocka_unit_test(test_json_strs_undecided),
        cmocka_unit_test(test_day_is_time_format_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
