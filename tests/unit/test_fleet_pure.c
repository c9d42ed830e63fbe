/* test_fleet_pure.c — the fleet's pure parts: retry schedule, shard math,
 * ingestion batch validation, hub token. */
#include "hub/fleet.h"

#include <sodium.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static void test_retry_delay(void **st)
{
    (void)st;
    int64_t s[3] = {60000, 300000, 900000};
    assert_int_equal(lf_fleet_retry_delay(s, 3, 1), 60000);
    assert_int_equal(lf_fleet_retry_delay(s, 3, 2), 300000);
    assert_int_equal(lf_fleet_retry_delay(s, 3, 3), 900000);
    assert_int_equal(lf_fleet_retry_delay(s, 3, 4), 900000); /* the last repeats */
    assert_int_equal(lf_fleet_retry_delay(s, 3, 1000), 900000);
    assert_int_equal(lf_fleet_retry_delay(s, 3, 0), 60000);
    assert_int_equal(lf_fleet_retry_delay(s, 1, 5), 60000);
}

static void test_retry_parse(void **st)
{
    (void)st;
    int64_t out[LF_RETRY_MAX];
    int n = 0;
    assert_int_equal(lf_fleet_parse_retry_schedule("60,300,900", out, LF_RETRY_MAX, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(out[0], 60000);
    assert_int_equal(out[2], 900000);
    assert_int_equal(lf_fleet_parse_retry_schedule("1", out, LF_RETRY_MAX, &n), 0);
    assert_int_equal(n, 1);
    const char *bad[] = {"", "0", "-1", "60,,300", "60,", ",60", "abc", "60,x", "86401", NULL};
    for (int i = 0; bad[i]; i++)
        assert_int_equal(lf_fleet_parse_retry_schedule(bad[i], out, LF_RETRY_MAX, &n), LF_EINVAL);
    assert_int_equal(lf_fleet_parse_retry_schedule("1,2,3", out, 2, &n), LF_EINVAL);
}

static void test_shard_index_group(void **st)
{
    (void)st;
    assert_int_equal(lf_fleet_shard_index("0"), 0);
    assert_int_equal(lf_fleet_shard_index("f"), 15);
    assert_int_equal(lf_fleet_shard_index("ff"), 255);
    assert_int_equal(lf_fleet_shard_index("1a"), 26);
    assert_int_equal(lf_fleet_shard_index(""), -1);
    assert_int_equal(lf_fleet_shard_index("g"), -1);
    assert_int_equal(lf_fleet_shard_index("F"), -1);
    assert_int_equal(lf_fleet_shard_index("12345"), -1);
    assert_int_equal(lf_fleet_shard_group("0", 2), 0);
    assert_int_equal(lf_fleet_shard_group("7", 2), 0);
    assert_int_equal(lf_fleet_shard_group("8", 2), 1);
    assert_int_equal(lf_fleet_shard_group("f", 2), 1);
    assert_int_equal(lf_fleet_shard_group("f", 1), 0);
    assert_int_equal(lf_fleet_shard_group("ff", 16), 15);
}

/* Going from 1 to 2 digits splits each shard into 16 children and moves
 * no unit out of its parent: neither its shard prefix nor its group. */
static void test_shard_split(void **st)
{
    (void)st;
    int children[16][16] = {{0}};
    for (int i = 0; i < 10000; i++) {
        char name[32], s1[5], s2[5];
        snprintf(name, sizeof name, "unit-%05d", i);
        lf_shard_of(name, 1, s1);
        lf_shard_of(name, 2, s2);
        assert_int_equal(strlen(s1), 1);
        assert_int_equal(strlen(s2), 2);
        assert_int_equal(s2[0], s1[0]);
        for (int g = 1; g <= 16; g *= 2)
            assert_int_equal(lf_fleet_shard_group(s1, g), lf_fleet_shard_group(s2, g));
        /* and 2 -> 3 digits the same way */
        char s3[5];
        lf_shard_of(name, 3, s3);
        assert_memory_equal(s3, s2, 2);
        for (int g = 1; g <= 16; g *= 2)
            assert_int_equal(lf_fleet_shard_group(s2, g), lf_fleet_shard_group(s3, g));
        children[lf_fleet_shard_index(s1)][lf_fleet_shard_index(s2) & 15]++;
    }
    /* each parent really is split among its 16 children */
    for (int p = 0; p < 16; p++)
        for (int c = 0; c < 16; c++)
            assert_true(children[p][c] > 0);
}

/* 10,000 names spread over the 16 shards within ±10% of even. */
static void test_shard_spread(void **st)
{
    (void)st;
    int count[16] = {0};
    for (int i = 0; i < 10000; i++) {
        char name[32], s[5];
        snprintf(name, sizeof name, "unit-%05d", i);
        lf_shard_of(name, 1, s);
        count[lf_fleet_shard_index(s)]++;
    }
    for (int k = 0; k < 16; k++) {
        if (count[k] < 562 || count[k] > 688) fail_msg("shard %x holds %d of 10000", k, count[k]);
    }
    /* the same with another naming scheme */
    memset(count, 0, sizeof count);
    for (int i = 0; i < 10000; i++) {
        char name[32], s[5];
        snprintf(name, sizeof name, "locker-berlin-%d", i * 7 + 3);
        lf_shard_of(name, 1, s);
        count[lf_fleet_shard_index(s)]++;
    }
    for (int k = 0; k < 16; k++)
        if (count[k] < 562 || count[k] > 688) fail_msg("shard %x holds %d of 10000", k, count[k]);
}

static void test_shard_owned(void **st)
{
    (void)st;
    assert_true(lf_fleet_shard_owned("3", NULL));
    assert_true(lf_fleet_shard_owned("3", ""));
    assert_true(lf_fleet_shard_owned("3", "1,3"));
    assert_false(lf_fleet_shard_owned("4", "1,3"));
    assert_true(lf_fleet_shard_owned("3a", "3"));
    assert_false(lf_fleet_shard_owned("3", "3a"));
    assert_true(lf_fleet_shard_owned("3a", "0,3a,f"));
}

static json_t *batch(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j) fail_msg("bad test json: %s", e.text);
    return j;
}

#define EV(seq, id, type, time, data)                                                              \
    "{\"seq\":" seq ",\"id\":\"" id "\",\"type\":\"" type "\",\"time\":\"" time                    \
    "\",\"data\":" data "}"
#define ID1 "0190a6d2-0000-7000-8000-000000000001"
#define ID2 "0190a6d2-0000-7000-8000-000000000002"
#define T0 "2026-01-02T03:04:05.000Z"

static void check_bad(const char *text, const char *field)
{
    lf_fleet_uevent ev[4];
    size_t n = 99;
    char f[48], m[160];
    json_t *j = batch(text);
    /* the fast path never accepts what the jansson path rejects */
    char *body = lf_asprintf("{\"events\":%s}", text), *arena = NULL;
    const char *raw[4];
    if (lf_fleet_batch_fast(body, strlen(body), 4, ev, raw, &n, &arena))
        fail_msg("fast path accepted %s", text);
    free(body);
    assert_int_equal(lf_fleet_batch_parse(j, 4, ev, &n, f, sizeof f, m, sizeof m), LF_EINVAL);
    if (strcmp(f, field) != 0) fail_msg("%s: field '%s', expected '%s'", text, f, field);
    assert_int_equal(n, 0);
    json_decref(j);
}

static void test_batch_ok(void **st)
{
    (void)st;
    lf_fleet_uevent ev[4];
    size_t n = 0;
    char f[48], m[160];
    json_t *j = batch("[" EV("5", ID1, "DoorOpened", T0, "{\"locker\":\"A01\"}") "," EV(
        "6", ID2, "DoorClosed", "2026-01-02T04:04:05+01:00", "{}") "]");
    assert_int_equal(lf_fleet_batch_parse(j, 4, ev, &n, f, sizeof f, m, sizeof m), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ev[0].seq, 5);
    assert_int_equal(ev[1].seq, 6);
    assert_string_equal(ev[1].type, "DoorClosed");
    assert_int_equal(ev[0].time_ms, ev[1].time_ms); /* same instant, two offsets */
    assert_true(json_is_object(ev[0].data));
    json_decref(j);
}

static void test_batch_bad(void **st)
{
    (void)st;
    check_bad("{}", "events");
    check_bad("[]", "events");
    check_bad("[1]", "events[0]");
    check_bad("[" EV("0", ID1, "A", T0, "{}") "]", "events[0].seq");
    check_bad("[" EV("-3", ID1, "A", T0, "{}") "]", "events[0].seq");
    check_bad("[" EV("\"1\"", ID1, "A", T0, "{}") "]", "events[0].seq");
    check_bad("[" EV("1.5", ID1, "A", T0, "{}") "]", "events[0].seq");
    check_bad("[" EV("1", ID1, "A", T0, "{}") "," EV("3", ID2, "A", T0, "{}") "]", "events[1].seq");
    check_bad("[" EV("2", ID1, "A", T0, "{}") "," EV("1", ID2, "A", T0, "{}") "]", "events[1].seq");
    check_bad("[" EV("1", "not-a-uuid", "A", T0, "{}") "]", "events[0].id");
    check_bad("[" EV("1", ID1, "Door_Opened", T0, "{}") "]", "events[0].type");
    check_bad("[" EV("1", ID1, "", T0, "{}") "]", "events[0].type");
    check_bad("[" EV("1", ID1, "Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                     T0, "{}") "]",
              "events[0].type"); /* 65 letters */
    check_bad("[" EV("1", ID1, "A", "2026-02-30T00:00:00Z", "{}") "]", "events[0].time");
    check_bad("[" EV("1", ID1, "A", "yesterday", "{}") "]", "events[0].time");
    check_bad("[" EV("1", ID1, "A", T0, "[]") "]", "events[0].data");
    check_bad("[" EV("1", ID1, "A", T0, "null") "]", "events[0].data");
    check_bad("[" EV("1", ID1, "A", T0, "{}") "," EV("2", ID2, "A", T0, "{}") "," EV(
                  "3", ID2, "A", T0, "{}") "," EV("4", ID2, "A", T0, "{}") "," EV("5", ID2, "A", T0,
                                                                                  "{}") "]",
              "events"); /* 5 > max 4 */
    /* the index names the first bad event */
    check_bad("[" EV("1", ID1, "A", T0, "{}") "," EV("2", ID2, "A", T0, "7") "]", "events[1].data");
}

/* The fast path agrees with the jansson path: when it accepts, the events
 * and the data text are what jansson + json_dumps(JSON_COMPACT) give. */
static void check_fast(const char *body, int want_fast)
{
    lf_fleet_uevent a[4], b[4];
    const char *raw[4];
    size_t na = 0, nb = 0;
    char *arena = NULL, f[48], m[160];
    int fast = lf_fleet_batch_fast(body, strlen(body), 4, a, raw, &na, &arena);
    if (fast != want_fast) fail_msg("%s: fast %d, expected %d", body, fast, want_fast);
    json_t *j = json_loads(body, JSON_REJECT_DUPLICATES, NULL);
    int slow = j && lf_fleet_batch_parse(json_object_get(j, "events"), 4, b, &nb, f, sizeof f, m,
                                         sizeof m) == 0;
    if (fast) {
        if (!slow) fail_msg("%s: fast accepted, jansson did not", body);
        assert_int_equal(na, nb);
        for (size_t i = 0; i < na; i++) {
            assert_int_equal(a[i].seq, b[i].seq);
            assert_string_equal(a[i].id, b[i].id);
            assert_string_equal(a[i].type, b[i].type);
            assert_int_equal(a[i].time_ms, b[i].time_ms);
            char *d = json_dumps(b[i].data, JSON_COMPACT);
            if (strcmp(d, raw[i]) != 0) fail_msg("%s: data '%s' vs jansson '%s'", body, raw[i], d);
            free(d);
        }
    }
    free(arena);
    json_decref(j);
}

#define BODY1(data) "{\"events\":[" EV("7", ID1, "DoorOpened", T0, data) "]}"

static void test_batch_fast(void **st)
{
    (void)st;
    check_fast("{\"events\":[" EV("5", ID1, "DoorOpened", T0, "{\"locker\":\"A01\"}") "," EV(
                   "6", ID2, "DoorClosed", "2026-01-02T04:04:05+01:00", "{}") "]}",
               1);
    check_fast(" { \"events\" : [ " EV("1", ID1, "A", T0, "{}") " ] } ", 1);
    check_fast(BODY1("{\"a\":[1,-2,0,true,false,null,\"x\",{\"b\":{}}],\"c\":[]}"), 1);
    check_fast(BODY1("{\"n\":\"caf\u00e9 \u2603 \xf0\x9f\x94\x92\"}"), 1); /* UTF-8 as is */
    /* not sure: jansson decides (and may store other bytes) */
    check_fast(BODY1("{\"a\": 1}"), 0);          /* whitespace in data */
    check_fast(BODY1("{\"a\":1.5}"), 0);         /* reals */
    check_fast(BODY1("{\"a\":1e3}"), 0);         /* exponent */
    check_fast(BODY1("{\"a\":-0}"), 0);          /* dumps as 0 */
    check_fast(BODY1("{\"a\":\"\\u0041\"}"), 0); /* escapes */
    check_fast(BODY1("{\"a\":1,\"a\":2}"), 0);   /* duplicate key */
    check_fast(BODY1("{\"a\":1234567890123456789}"), 0);
    check_fast(BODY1("{\"a\":\"\xc3\"}"), 0); /* bad UTF-8 */
    check_fast(BODY1("{\"a\":01}"), 0);
    check_fast("{\"events\":[" EV("1", ID1, "A", T0, "{}") "],\"x\":1}", 0); /* extra key */
    check_fast("{\"events\":[{\"seq\":1,\"seq\":1,\"id\":\"" ID1 "\",\"type\":\"A\",\"time\":\"" T0
               "\",\"data\":{}}]}",
               0); /* duplicate field */
    check_fast("{\"events\":[{\"seq\":1,\"id\":\"" ID1 "\",\"type\":\"A\",\"time\":\"" T0
               "\",\"data\":{},\"more\":1}]}",
               0);                                                  /* unknown field */
    check_fast("{\"events\":[" EV("1", ID1, "A", T0, "{}") "]", 0); /* truncated */
    check_fast("{\"events\":[" EV("1", ID1, "A", T0, "{}") "]}x", 0);
    check_fast("", 0);
}

static void test_hub_token(void **st)
{
    (void)st;
    unsigned char s1[32] = {1}, s2[32] = {2};
    char a[65], b[65], c[65], d[65];
    lf_fleet_hub_token_raw(s1, "unit-1", a);
    lf_fleet_hub_token_raw(s1, "unit-1", b);
    lf_fleet_hub_token_raw(s1, "unit-2", c);
    lf_fleet_hub_token_raw(s2, "unit-1", d);
    assert_int_equal(strlen(a), 64);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_string_not_equal(a, d);
    /* RFC 4231-style check against libsodium directly is implicit: the
     * value is hex(HMAC-SHA256(secret, "hubtoken:unit-1")) */
    unsigned char mac[32];
    crypto_auth_hmacsha256(mac, (const unsigned char *)"hubtoken:unit-1", 15, s1);
    char hex[65];
    sodium_bin2hex(hex, sizeof hex, mac, sizeof mac);
    assert_string_equal(a, hex);
}

int main(void)
{
    lf_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_delay),       cmocka_unit_test(test_retry_parse),
        cmocka_unit_test(test_shard_index_group), cmocka_unit_test(test_shard_split),
        cmocka_unit_test(test_shard_spread),      cmocka_unit_test(test_shard_owned),
        cmocka_unit_test(test_batch_ok),          cmocka_unit_test(test_batch_bad),
        cmocka_unit_test(test_hub_token),         cmocka_unit_test(test_batch_fast),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
