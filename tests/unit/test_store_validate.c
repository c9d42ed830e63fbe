/*
 * test_store_validate.c — the fast JSON object check in store.c must never
 * accept what jansson (the judge, with JSON_REJECT_DUPLICATES |
 * JSON_ALLOW_NUL) rejects. Differential test over hand-picked cases and
 * random mutations of valid objects.
 */
#include "core/lf.h"
#include "store/store.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int lf_store_json_fast_object(const char *txt); /* store.c, for tests */

static int jansson_object(const char *txt)
{
    json_error_t je;
    json_t *j = json_loads(txt, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    int ok = j && json_is_object(j);
    json_decref(j);
    return ok;
}

static void check(const char *txt)
{
    int fast = lf_store_json_fast_object(txt), judge = jansson_object(txt);
    if (fast && !judge) fail_msg("fast check accepts what jansson rejects: %s", txt);
}

static void test_cases(void **state)
{
    (void)state;
    static const char *cases[] = {
        "{}",
        "{\"a\":1}",
        " {\"a\" : [1, 2.5, -0, true, false, null, \"x\"]} ",
        "{\"a\":1,\"a\":2}",
        "{\"a\":{\"a\":1},\"b\":{\"a\":2}}",
        "{\"k\\u0000\":1}",
        "{\"v\":\"\\u0000\"}",
        "{\"a\":\"\\ud83d\\ude00\"}",
        "{\"a\":\"\\ud83d\"}",
        "{\"a\":\"\\ude00\"}",
        "{\"a\":99999999999999999999}",
        "{\"a\":1e999}",
        "{\"a\":\"\xc3\xa9\"}",
        "{\"a\":\"\xed\xa0\x80\"}",
        "{\"a\":\"\xf4\x90\x80\x80\"}",
        "{\"a\":\"\xe0\x80\xaf\"}",
        "{\"a\":\"\xc0\xaf\"}",
        "{\"a\":01}",
        "{\"a\":-}",
        "{\"a\":[1,]}",
        "{\"a\":1,}",
        "{\"a\":tru}",
        "{\"a\":nul}",
        "{\"a\":1}x",
        "[]",
        "{\"a\":\"\t\"}",
        "{\"a\":\"\\/\"}",
        "{\"\":0}",
        "{\"a\":1.5,\"b\":-0.25}",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check(cases[i]);
    assert_true(lf_store_json_fast_object("{\"a\":[1,{\"b\":null}],\"c\":\"d\"}"));
    assert_false(lf_store_json_fast_object("{\"a\":1,\"a\":2}"));
}

static void test_mutations(void **state)
{
    (void)state;
    static const char *seeds[] = {
        "{\"unit\":\"unit-00042\",\"locker\":17,\"kind\":\"door_closed\",\"ok\":true,"
        "\"t\":-21.5,\"x\":null,\"list\":[1,2,{\"a\":\"\\u00e9\\n\"}],\"s\":\"h\xc3\xa9\"}",
        "{\"a\":{\"b\":{\"c\":[[],{},\"\\\"\",0.5]}}}",
    };
    static const char alphabet[] = "{}[]\",:\\/u0123456789abcdefnrtl.-+eE \t\n\x01\xc3\xa9\xff";
    char buf[512];
    srand(12345);
    for (int round = 0; round < 50000; round++) {
        const char *seed = seeds[round % 2];
        size_t n = strlen(seed);
        memcpy(buf, seed, n + 1);
        int edits = 1 + rand() % 3;
        for (int e = 0; e < edits; e++) {
            size_t at = (size_t)rand() % n;
            int op = rand() % 3;
            char c = alphabet[rand() % (int)(sizeof alphabet - 1)];
            if (op == 0) {
                buf[at] = c;
            } else if (op == 1 && n + 1 < sizeof buf - 1) {
                memmove(buf + at + 1, buf + at, n - at + 1);
                buf[at] = c;
                n++;
            } else if (n > 1) {
                memmove(buf + at, buf + at + 1, n - at);
                n--;
            }
        }
        buf[n] = '\0';
        check(buf);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests_name("store_validate", tests, NULL, NULL);
}
