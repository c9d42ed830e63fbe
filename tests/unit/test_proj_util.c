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
    assert_int_equal(lf_proj_json_i64("{\"a\":\"unterminated", "amount_cents", &v), -1);
    /* and what it decides, it decides right */
    assert_int_equal(lf_proj_json_i64("{\"amount_cents\":-12}", "amount_cents", &v), 1);
    assert_int_equal(v, -12);
    assert_int_equal(lf_proj_json_i64("{\"other\":1}", "amount_cents", &v), 0);
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
        cmocka_unit_test(test_day_is_time_format_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
