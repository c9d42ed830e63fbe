/*
 * test_store_tail.c — lf_tail (src/store/store_tail.c), the server
 * backends' shared log tail, against a fake log in memory: what it serves
 * from memory is exactly what the log holds; "nothing new" always comes
 * from a query; readers behind the tail query, and share what they
 * brought through kept pages; concurrent readers at the top or behind it
 * each see every event once, in order, while a writer appends.
 */
#include "core/lf.h"
#include "store/store_int.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The fake log: events at positions 2, 4, 6, ... (gaps: lf_tail must not
 * assume contiguous positions), the first `visible` of them readable. */
#define LOG_MAX 20000
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static int g_visible;
static atomic_int g_fetches;
static atomic_int g_fail; /* set: queries fail */

static int fake_fetch(void *impl, int64_t after, size_t max, lf_event_list *out)
{
    (void)impl;
    atomic_fetch_add(&g_fetches, 1);
    if (atomic_load(&g_fail)) return LF_EIO;
    pthread_mutex_lock(&g_mu);
    int vis = g_visible;
    pthread_mutex_unlock(&g_mu);
    for (int i = 0; i < vis && max > 0; i++) {
        int64_t pos = 2 * (int64_t)(i + 1);
        if (pos <= after) continue;
        char data[32], stream[16];
        snprintf(data, sizeof data, "{\"p\":%lld}", (long long)pos);
        snprintf(stream, sizeof stream, "s%d", i % 7);
        lf_event *e = lf_event_list_push_copy(out, stream, strlen(stream), "T", 1, data,
                                              strlen(data), "{}", 2);
        e->position = pos;
        e->version = i / 7 + 1;
        e->time_ms = 1000 + pos;
        snprintf(e->id, sizeof e->id, "id-%lld", (long long)pos);
        max--;
    }
    return 0;
}

static void set_visible(int n)
{
    pthread_mutex_lock(&g_mu);
    g_visible = n;
    pthread_mutex_unlock(&g_mu);
}

static void check_event(const lf_event *e, int64_t pos)
{
    char data[32], id[32];
    snprintf(data, sizeof data, "{\"p\":%lld}", (long long)pos);
    snprintf(id, sizeof id, "id-%lld", (long long)pos);
    assert_int_equal(e->position, pos);
    assert_string_equal(e->data, data);
    assert_string_equal(e->id, id);
    assert_string_equal(e->meta, "{}");
    assert_string_equal(e->type, "T");
    assert_int_equal(e->time_ms, 1000 + pos);
}

static void test_serves_what_the_log_holds(void **state)
{
    (void)state;
    set_visible(100);
    atomic_store(&g_fetches, 0);
    lf_tail *t = lf_tail_new(64, 1 << 20);
    lf_event_list l;
    lf_event_list_init(&l);

    /* first read queries; the tail keeps the newest 64 of the 100 */
    assert_int_equal(lf_tail_read_all(t, 0, 1000, &l, fake_fetch, NULL), 0);
    assert_int_equal(l.n, 100);
    assert_int_equal(atomic_load(&g_fetches), 1);
    lf_event_list_clear(&l);

    /* inside the tail (positions 74..200 kept: base 72): from memory */
    assert_int_equal(lf_tail_read_all(t, 150, 10, &l, fake_fetch, NULL), 0);
    assert_int_equal(l.n, 10);
    for (size_t i = 0; i < l.n; i++)
        check_event(&l.ev[i], 152 + 2 * (int64_t)i);
    assert_int_equal(atomic_load(&g_fetches), 1);
    lf_event_list_clear(&l);
    assert_int_equal(lf_tail_read_all(t, 151, 1000, &l, fake_fetch, NULL), 0); /* a gap */
    assert_int_equal(l.n, 25);
    check_event(&l.ev[0], 152);
    assert_int_equal(atomic_load(&g_fetches), 1);
    lf_event_list_clear(&l);

    /* behind the tail: a query from the page boundary at or before 10
     * (here 0: the 100 events), kept as a page that serves the next
     * readers behind */
    assert_int_equal(lf_tail_read_all(t, 10, 5, &l, fake_fetch, NULL), 0);
    assert_int_equal(l.n, 5);
    check_event(&l.ev[0], 12);
    assert_int_equal(atomic_load(&g_fetches), 2);
    lf_event_list_clear(&l);
    assert_int_equal(lf_tail_read_all(t, 13, 3, &l, fake_fetch, NULL), 0); /* a gap */
    assert_int_equal(l.n, 3);
    check_event(&l.ev[0], 14);
    check_event(&l.ev[2], 18);
    assert_int_equal(atomic_load(&g_fetches), 2);
    lf_event_list_clear(&l);
    /* before where the first reader was: the same page */
    assert_int_equal(lf_tail_read_all(t, 4, 2, &l, fake_fetch, NULL), 0);
    check_event(&l.ev[0], 6);
    check_event(&l.ev[1], 8);
    assert_int_equal(atomic_load(&g_fetches), 2);
    lf_event_list_clear(&l);

    /* at the top: never "nothing new" from memory */
    assert_int_equal(lf_tail_read_all(t, 200, 10, &l, fake_fetch, NULL), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(atomic_load(&g_fetches), 3);
    set_visible(103);
    assert_int_equal(lf_tail_read_all(t, 200, 10, &l, fake_fetch, NULL), 0);
    assert_int_equal(l.n, 3);
    check_event(&l.ev[2], 206);
    assert_int_equal(atomic_load(&g_fetches), 4);
    lf_event_list_clear(&l);
    /* ... and what that query brought is served from memory next */
    assert_int_equal(lf_tail_read_all(t, 202, 10, &l, fake_fetch, NULL), 0);
    assert_int_equal(l.n, 2);
    check_event(&l.ev[0], 204);
    assert_int_equal(atomic_load(&g_fetches), 4);
    lf_event_list_clear(&l);

    /* past the top (a reader that knows more than the tail): a query */
    set_visible(110);
    assert_int_equal(lf_tail_read_all(t, 212, 100, &l, fake_fetch, NULL), 0);
    assert_int_equal(l.n, 4);
    check_event(&l.ev[0], 214);
    assert_int_equal(atomic_load(&g_fetches), 5);
    lf_event_list_free(&l);
    lf_tail_free(t);
}

/* Readers at the top while a writer makes events visible one batch at a
 * time: each reader sees every event exactly once, in order. */
#define READERS 6
typedef struct {
    lf_tail *t;
    int64_t last;
    int bad;
} reader;

static atomic_int g_done;

static void *reader_main(void *arg)
{
    reader *r = arg;
    lf_event_list l;
    lf_event_list_init(&l);
    int64_t deadline = lf_mono_ms() + 60000; /* a reader left behind fails, not hangs */
    for (;;) {
        if (lf_mono_ms() > deadline) {
            r->bad = 1;
            break;
        }
        lf_event_list_clear(&l);
        if (lf_tail_read_all(r->t, r->last, 100, &l, fake_fetch, NULL)) r->bad = 1;
        for (size_t i = 0; i < l.n; i++) {
            if (l.ev[i].position != r->last + 2) r->bad = 1;
            r->last = l.ev[i].position;
        }
        if (l.n == 0 && atomic_load(&g_done) && r->last == 2 * LOG_MAX) break;
        if (r->bad) break;
    }
    lf_event_list_free(&l);
    return NULL;
}

/* Pages are bounded: the least recently used goes first. */
#define PAGES 32 /* store_tail.c's BEHIND_PAGES */
static void test_behind_pages_lru(void **state)
{
    (void)state;
    set_visible(80000);
    atomic_store(&g_fetches, 0);
    lf_tail *t = lf_tail_new(16, 1 << 20);
    lf_event_list l;
    lf_event_list_init(&l);
    assert_int_equal(lf_tail_read_all(t, 160000 - 10, 100, &l, fake_fetch, NULL), 0);
    assert_int_equal(l.n, 5);
    lf_event_list_clear(&l);
    /* PAGES + 1 pages, (4096 i, 4096 (i + 1)] (2048 events of a log with
     * gaps): the first is dropped */
    for (int i = 0; i <= PAGES; i++) {
        assert_int_equal(lf_tail_read_all(t, 4096 * i + 1, 1, &l, fake_fetch, NULL), 0);
        check_event(&l.ev[0], 4096 * i + 2);
        lf_event_list_clear(&l);
    }
    assert_int_equal(atomic_load(&g_fetches), PAGES + 2);
    assert_int_equal(lf_tail_read_all(t, 4096 * PAGES + 100, 1, &l, fake_fetch, NULL), 0);
    assert_int_equal(lf_tail_read_all(t, 4096 + 100, 1, &l, fake_fetch, NULL), 0);
    assert_int_equal(atomic_load(&g_fetches), PAGES + 2); /* both kept */
    assert_int_equal(lf_tail_read_all(t, 100, 1, &l, fake_fetch, NULL), 0);
    assert_int_equal(atomic_load(&g_fetches), PAGES + 3); /* dropped: queried again */
    check_event(&l.ev[2], 102);
    lf_event_list_free(&l);
    lf_tail_free(t);
}

/* A page from the boundary at or before the reader; where a log with gaps
 * has nothing past the reader in it, the reader still gets what follows. */
static void test_behind_pages_aligned(void **state)
{
    (void)state;
    set_visible(LOG_MAX);
    atomic_store(&g_fetches, 0);
    lf_tail *t = lf_tail_new(16, 1 << 20);
    lf_event_list l;
    lf_event_list_init(&l);
    assert_int_equal(lf_tail_read_all(t, 2 * LOG_MAX - 10, 100, &l, fake_fetch, NULL), 0);
    lf_event_list_clear(&l);
    /* readers at 3000, 2049 and 6000: pages (2048, ...] and (4096, ...] */
    assert_int_equal(lf_tail_read_all(t, 3000, 10, &l, fake_fetch, NULL), 0);
    check_event(&l.ev[0], 3002);
    assert_int_equal(lf_tail_read_all(t, 2049, 1, &l, fake_fetch, NULL), 0);
    check_event(&l.ev[10], 2050);
    assert_int_equal(atomic_load(&g_fetches), 2);
    assert_int_equal(lf_tail_read_all(t, 6000, 1, &l, fake_fetch, NULL), 0);
    check_event(&l.ev[11], 6002); /* in (2048, 6144]: 2048 events of a log with gaps */
    assert_int_equal(atomic_load(&g_fetches), 2);
    lf_event_list_clear(&l);
    /* 2048 events after 2048 reach 6144: a reader at 6144 is past that
     * page; its own boundary 6144 gives a page of its own */
    assert_int_equal(lf_tail_read_all(t, 6144, 2, &l, fake_fetch, NULL), 0);
    check_event(&l.ev[0], 6146);
    assert_int_equal(atomic_load(&g_fetches), 3);
    lf_event_list_free(&l);
    lf_tail_free(t);
}

/* A read that goes on past a page into a query that fails returns what
 * the page gave (a correct prefix); the next read reports the error. */
static void test_behind_error_after_page(void **state)
{
    (void)state;
    set_visible(LOG_MAX);
    atomic_store(&g_fail, 0);
    lf_tail *t = lf_tail_new(16, 1 << 20);
    lf_event_list l;
    lf_event_list_init(&l);
    assert_int_equal(lf_tail_read_all(t, 2 * LOG_MAX - 10, 100, &l, fake_fetch, NULL), 0);
    lf_event_list_clear(&l);
    assert_int_equal(lf_tail_read_all(t, 1, 10, &l, fake_fetch, NULL), 0); /* page (0, 4096] */
    lf_event_list_clear(&l);
    atomic_store(&g_fail, 1);
    assert_int_equal(lf_tail_read_all(t, 4000, 100, &l, fake_fetch, NULL), 0);
    assert_int_equal(l.n, 48);
    check_event(&l.ev[0], 4002);
    check_event(&l.ev[47], 4096);
    lf_event_list_clear(&l);
    assert_int_equal(lf_tail_read_all(t, 4096, 100, &l, fake_fetch, NULL), LF_EIO);
    assert_int_equal(l.n, 0);
    atomic_store(&g_fail, 0);
    lf_event_list_free(&l);
    lf_tail_free(t);
}

/* Pages nobody reads for 5 s are let go at the next query at the top. */
static void test_behind_pages_idle(void **state)
{
    (void)state;
    set_visible(1000);
    atomic_store(&g_fetches, 0);
    lf_tail *t = lf_tail_new(16, 1 << 20);
    lf_event_list l;
    lf_event_list_init(&l);
    assert_int_equal(lf_tail_read_all(t, 1990, 100, &l, fake_fetch, NULL), 0);
    assert_int_equal(lf_tail_read_all(t, 0, 10, &l, fake_fetch, NULL), 0);  /* a page */
    assert_int_equal(lf_tail_read_all(t, 20, 10, &l, fake_fetch, NULL), 0); /* from it */
    assert_int_equal(atomic_load(&g_fetches), 2);
    lf_sleep_ms(5200);
    assert_int_equal(lf_tail_read_all(t, 2000, 10, &l, fake_fetch, NULL), 0); /* top: drops */
    assert_int_equal(atomic_load(&g_fetches), 3);
    assert_int_equal(lf_tail_read_all(t, 40, 10, &l, fake_fetch, NULL), 0);
    assert_int_equal(atomic_load(&g_fetches), 4); /* the page was let go */
    lf_event_list_free(&l);
    lf_tail_free(t);
}

static void test_concurrent_readers(void **state)
{
    (void)state;
    set_visible(0);
    atomic_store(&g_done, 0);
    atomic_store(&g_fetches, 0);
    lf_tail *t = lf_tail_new(500, 1 << 20);
    pthread_t th[READERS];
    reader r[READERS];
    for (int i = 0; i < READERS; i++) {
        r[i] = (reader){.t = t};
        pthread_create(&th[i], NULL, reader_main, &r[i]);
    }
    for (int n = 0; n < LOG_MAX;) {
        n += 1 + (int)(lf_random_u32() % 40);
        set_visible(n < LOG_MAX ? n : LOG_MAX);
        if (n % 7 == 0) lf_sleep_ms(1);
    }
    atomic_store(&g_done, 1);
    for (int i = 0; i < READERS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(r[i].bad, 0);
        assert_int_equal(r[i].last, 2 * LOG_MAX);
    }
    lf_tail_free(t);
}

/* Readers far behind a small tail, all starting at 0 of a log that is
 * all there: each sees every event once, in order, and they share pages
 * (far fewer queries than each reading alone). */
static void test_concurrent_readers_behind(void **state)
{
    (void)state;
    set_visible(LOG_MAX);
    atomic_store(&g_done, 1);
    atomic_store(&g_fetches, 0);
    lf_tail *t = lf_tail_new(64, 1 << 20);
    lf_event_list l;
    lf_event_list_init(&l);
    assert_int_equal(lf_tail_read_all(t, 2 * LOG_MAX - 10, 100, &l, fake_fetch, NULL), 0);
    lf_event_list_free(&l);
    pthread_t th[READERS];
    reader r[READERS];
    for (int i = 0; i < READERS; i++) {
        r[i] = (reader){.t = t};
        pthread_create(&th[i], NULL, reader_main, &r[i]);
    }
    for (int i = 0; i < READERS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(r[i].bad, 0);
        assert_int_equal(r[i].last, 2 * LOG_MAX);
    }
    /* alone, each reader would query LOG_MAX / 100 times */
    int alone = READERS * LOG_MAX / 100;
    print_message("behind: %d queries for %d readers (%d alone)\n", atomic_load(&g_fetches),
                  READERS, alone);
    assert_true(atomic_load(&g_fetches) < alone / 2);
    lf_tail_free(t);
}

int main(void)
{
    if (lf_init()) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_serves_what_the_log_holds),
        cmocka_unit_test(test_behind_pages_lru),
        cmocka_unit_test(test_behind_pages_idle),
        cmocka_unit_test(test_behind_pages_aligned),
        cmocka_unit_test(test_behind_error_after_page),
        cmocka_unit_test(test_concurrent_readers),
        cmocka_unit_test(test_concurrent_readers_behind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
