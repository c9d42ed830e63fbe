/*
 * test_core.c — unit tests of src/core/lf.c: time format/parse, ids,
 * shards, names, bounded buffers, strict integer parsing.
 */
#include "core/lf.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void test_time_format(void **state)
{
    (void)state;
    char buf[LF_TIME_LEN];
    assert_string_equal(lf_time_format(0, buf), "1970-01-01T00:00:00.000Z");
    assert_string_equal(lf_time_format(1795946400123, buf), "2026-11-29T10:00:00.123Z");
    assert_string_equal(lf_time_format(951782400000, buf), "2000-02-29T00:00:00.000Z");
    assert_string_equal(lf_time_format(253402300799999, buf), "9999-12-31T23:59:59.999Z");
}

static void test_time_parse(void **state)
{
    (void)state;
    int64_t ms = -1;
    assert_int_equal(lf_time_parse("1970-01-01T00:00:00Z", &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(lf_time_parse("2026-11-29T10:00:00.123Z", &ms), 0);
    assert_int_equal(ms, 1795946400123);
    /* Offsets: the same instant written three ways. */
    assert_int_equal(lf_time_parse("2026-11-29T11:30:00.123+01:30", &ms), 0);
    assert_int_equal(ms, 1795946400123);
    assert_int_equal(lf_time_parse("2026-11-29T05:00:00.123-05:00", &ms), 0);
    assert_int_equal(ms, 1795946400123);
    /* Fractions: 1, 2, 9 digits (ms kept, the rest truncated); lowercase z. */
    assert_int_equal(lf_time_parse("2026-11-29T10:00:00.1z", &ms), 0);
    assert_int_equal(ms, 1795946400100);
    assert_int_equal(lf_time_parse("2026-11-29T10:00:00.12Z", &ms), 0);
    assert_int_equal(ms, 1795946400120);
    assert_int_equal(lf_time_parse("2026-11-29T10:00:00.123456789Z", &ms), 0);
    assert_int_equal(ms, 1795946400123);
    /* Leap days. */
    assert_int_equal(lf_time_parse("2024-02-29T00:00:00Z", &ms), 0);
    assert_int_equal(lf_time_parse("2000-02-29T00:00:00Z", &ms), 0);
    /* Round trip. */
    char buf[LF_TIME_LEN];
    for (int64_t t = 0; t < 4102444800000; t += 97654321987) {
        assert_int_equal(lf_time_parse(lf_time_format(t, buf), &ms), 0);
        assert_int_equal(ms, t);
    }

    static const char *bad[] = {
        "",
        "2026-13-01T00:00:00Z",   /* month 13 */
        "2026-00-01T00:00:00Z",   /* month 0 */
        "2026-02-30T00:00:00Z",   /* Feb 30 */
        "2023-02-29T00:00:00Z",   /* not a leap year */
        "1900-02-29T00:00:00Z",   /* not a leap year either */
        "2026-04-31T00:00:00Z",   /* April has 30 */
        "2026-01-00T00:00:00Z",   /* day 0 */
        "2026-01-01T25:00:00Z",   /* hour 25 */
        "2026-01-01T24:00:00Z",   /* hour 24 */
        "2026-01-01T00:60:00Z",   /* minute 60 */
        "2026-01-01T00:00:60Z",   /* second 60 */
        "2026-01-01T00:00:00",    /* no zone */
        "2026-01-01T00:00:00+01", /* short offset */
        "2026-01-01T00:00:00+24:00",
        "2026-01-01T00:00:00+01:60",
        "2026-01-01T00:00:00.Z", /* empty fraction */
        "2026-01-01T00:00:00.1234567890Z",
        "2026-01-01T00:00:00Zjunk",
        "2026-1-01T00:00:00Z",
        "26-01-01T00:00:00Z",
        "2026-01-01X00:00:00Z",
        "2026/01/01T00:00:00Z",
        "1969-12-31T23:59:59Z", /* before the epoch */
        "abcd-01-01T00:00:00Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (lf_time_parse(bad[i], &ms) != LF_EINVAL) fail_msg("accepted '%s'", bad[i]);
    }
    assert_int_equal(lf_time_parse(NULL, &ms), LF_EINVAL);
}

static void test_uuid(void **state)
{
    (void)state;
    char a[LF_UUID_LEN], b[LF_UUID_LEN];
    for (int i = 0; i < 1000; i++) {
        lf_uuid_v4(a);
        lf_uuid_v7(b);
        assert_true(lf_uuid_valid(a));
        assert_true(lf_uuid_valid(b));
        assert_int_equal(strlen(a), 36);
        assert_int_equal(a[14], '4');
        assert_int_equal(b[14], '7');
        assert_non_null(strchr("89ab", a[19]));
        assert_non_null(strchr("89ab", b[19]));
        assert_string_not_equal(a, b);
    }
    /* v7 ids sort by time. */
    lf_uuid_v7(a);
    lf_sleep_ms(3);
    lf_uuid_v7(b);
    assert_true(strcmp(a, b) < 0);

    assert_true(lf_uuid_valid("123e4567-e89b-12d3-a456-426614174000"));
    assert_true(lf_uuid_valid("123E4567-E89B-12D3-A456-426614174000"));
    static const char *bad[] = {
        "",
        "123e4567-e89b-12d3-a456-42661417400",   /* short */
        "123e4567-e89b-12d3-a456-4266141740000", /* long */
        "123e4567e89b-12d3-a456-4266141740000",  /* dash missing */
        "123e4567-e89b-12d3-a456_426614174000",
        "123e4567-e89b-12d3-a456-42661417400g",
        "{123e4567-e89b-12d3-a456-426614174000}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (lf_uuid_valid(bad[i])) fail_msg("'%s' taken for a UUID", bad[i]);
    assert_false(lf_uuid_valid(NULL));
}

/* Ids come from a per-thread buffer of random bytes (lf.c rand_ids):
 * every id differs, across buffer refills, and a forked child does not
 * hand out the ids its parent will. */
static int cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void test_uuid_buffered(void **state)
{
    (void)state;
    enum { N = 4000 };
    static char ids[N][LF_UUID_LEN];
    for (int i = 0; i < N; i++)
        if (i % 3 == 2) {
            snprintf(ids[i], sizeof ids[i], "%08x%08x", lf_random_u32(), lf_random_u32());
        } else if (i % 3) {
            lf_uuid_v7(ids[i]);
        } else {
            lf_uuid_v4(ids[i]);
        }
    qsort(ids, N, sizeof ids[0], cmp_id);
    for (int i = 1; i < N; i++)
        if (strcmp(ids[i - 1], ids[i]) == 0) fail_msg("id %s twice", ids[i]);

    /* after a fork, the child's next id is not the parent's next one */
    char mine[LF_UUID_LEN], theirs[LF_UUID_LEN] = "";
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    lf_uuid_v4(mine); /* the buffer holds bytes now */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char id[LF_UUID_LEN];
        lf_uuid_v4(id);
        _exit(write(fd[1], id, sizeof id) == (ssize_t)sizeof id ? 0 : 1);
    }
    lf_uuid_v4(mine);
    assert_int_equal(read(fd[0], theirs, sizeof theirs), (ssize_t)sizeof theirs);
    int st = 0;
    waitpid(pid, &st, 0);
    assert_int_equal(st, 0);
    close(fd[0]);
    close(fd[1]);
    assert_true(lf_uuid_valid(theirs));
    assert_string_not_equal(mine, theirs);
}

static void test_shard_of(void **state)
{
    (void)state;
    char h[17], s1[2], s2[3], s4[5], name[32];
    lf_hash_hex("unit-1", h);
    assert_int_equal(strlen(h), 16);
    lf_shard_of("unit-1", 1, s1);
    lf_shard_of("unit-1", 4, s4);
    assert_int_equal(strlen(s1), 1);
    assert_memory_equal(s4, h, 4);
    /* Stable: the same name, the same shard. */
    char again[5];
    lf_shard_of("unit-1", 4, again);
    assert_string_equal(s4, again);
    /* Out-of-range digit counts are clamped. */
    char c[8];
    lf_shard_of("unit-1", 0, c);
    assert_int_equal(strlen(c), 1);
    lf_shard_of("unit-1", 9, c);
    assert_int_equal(strlen(c), 4);

    int count[16] = {0};
    for (int i = 0; i < 10000; i++) {
        snprintf(name, sizeof name, "unit-%05d", i);
        lf_shard_of(name, 1, s1);
        lf_shard_of(name, 2, s2);
        /* A 2-digit shard is a child of the 1-digit one. */
        assert_int_equal(s2[0], s1[0]);
        int d = s1[0] <= '9' ? s1[0] - '0' : s1[0] - 'a' + 10;
        assert_true(d >= 0 && d < 16);
        count[d]++;
    }
    /* 10,000 names spread over 16 shards within +-10% of 625. */
    for (int d = 0; d < 16; d++)
        if (count[d] < 563 || count[d] > 688) fail_msg("shard %x got %d of 10000", d, count[d]);
}

static void test_name_valid(void **state)
{
    (void)state;
    assert_true(lf_name_valid("a"));
    assert_true(lf_name_valid("unit-0042"));
    assert_true(lf_name_valid("0-9-z"));
    char n64[65], n65[66];
    memset(n64, 'a', 64);
    n64[64] = '\0';
    memset(n65, 'a', 65);
    n65[65] = '\0';
    assert_true(lf_name_valid(n64));
    assert_false(lf_name_valid(n65));
    assert_false(lf_name_valid(""));
    assert_false(lf_name_valid(NULL));
    assert_false(lf_name_valid("Unit"));
    assert_false(lf_name_valid("unit_1"));
    assert_false(lf_name_valid("unit 1"));
    assert_false(lf_name_valid("unit/1"));
    assert_false(lf_name_valid("\xc3\xa9"));
}

static void test_buf_cap(void **state)
{
    (void)state;
    lf_buf b;
    lf_buf_init(&b, 10);
    assert_int_equal(lf_buf_append(&b, "12345", 5), 0);
    assert_int_equal(lf_buf_printf(&b, "%d", 6789), 0);
    assert_int_equal(b.len, 9);
    assert_string_equal(b.data, "123456789");
    /* Past the cap: refused, nothing appended. */
    assert_int_equal(lf_buf_append(&b, "ab", 2), LF_EINVAL);
    assert_int_equal(lf_buf_printf(&b, "%s", "xy"), LF_EINVAL);
    assert_int_equal(b.len, 9);
    assert_string_equal(b.data, "123456789");
    assert_int_equal(lf_buf_append(&b, "0", 1), 0); /* exactly at the cap */
    assert_int_equal(b.len, 10);
    lf_buf_free(&b);

    /* Unbounded, and a printf longer than the internal scratch buffer. */
    lf_buf_init(&b, 0);
    char big[2000];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    for (int i = 0; i < 100; i++)
        assert_int_equal(lf_buf_printf(&b, "%s", big), 0);
    assert_int_equal(b.len, 100 * (sizeof big - 1));
    assert_int_equal(b.data[b.len], '\0');
    lf_buf_free(&b);
    assert_null(b.data);
}

static void test_parse_i64_and_errors(void **state)
{
    (void)state;
    int64_t v;
    assert_int_equal(lf_parse_i64("42", &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(lf_parse_i64("-9223372036854775808", &v), 0);
    assert_int_equal(lf_parse_i64("9223372036854775808", &v), LF_EINVAL);
    assert_int_equal(lf_parse_i64("12x", &v), LF_EINVAL);
    assert_int_equal(lf_parse_i64("", &v), LF_EINVAL);
    assert_int_equal(lf_parse_i64(NULL, &v), LF_EINVAL);

    assert_string_equal(lf_strerror(LF_ECONFLICT), "version conflict");
    assert_string_equal(lf_strerror(12345), "unknown error");
    lf_err_set("disk %s is %d%% full", "vda", 99);
    assert_string_equal(lf_err_get(), "disk vda is 99% full");
    lf_err_clear();
    assert_string_equal(lf_err_get(), "");
}

int main(void)
{
    if (lf_init()) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time_format),
        cmocka_unit_test(test_time_parse),
        cmocka_unit_test(test_uuid),
        cmocka_unit_test(test_uuid_buffered),
        cmocka_unit_test(test_shard_of),
        cmocka_unit_test(test_name_valid),
        cmocka_unit_test(test_buf_cap),
        cmocka_unit_test(test_parse_i64_and_errors), /* one a line */
    };
    return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}
