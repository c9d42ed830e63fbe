/*
 * conformance.c — the one test suite every event-store backend passes.
 *
 * Written against store.h only. The store under test comes from the
 * environment:
 *   LF_TEST_STORE_URL=<url>   any backend (postgres://, nats://, redis://,
 *                             sqlite:PATH); scripts/with-server.sh sets it
 *   LF_TEST_STORE=sqlite      a fresh SQLite file per test under a temp dir
 *                             (the default when neither is set)
 * Server stores are shared across tests and never emptied, so every test
 * names its streams with a random per-run prefix and never assumes the
 * store is empty; tests that need an empty file run for sqlite only.
 */
#define _GNU_SOURCE
#include "store/store.h"

#include <ctype.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#ifdef LF_HAVE_NATS
#include <nats/nats.h>
#endif
#ifdef LF_HAVE_REDIS
#include <hiredis.h>
#endif
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- harness ----------------------------------------------------------- */
static char g_dir[256];        /* temp dir (sqlite mode) */
static char g_fixed_url[1024]; /* LF_TEST_STORE_URL, or "" in sqlite mode */
static char g_prefix[32];      /* random per run: unique stream names */
static int g_file_seq;

typedef struct {
    lf_store *s;
    char url[1100];
} fixture;

static int is_sqlite(void)
{
    return g_fixed_url[0] == '\0' || strncmp(g_fixed_url, "sqlite:", 7) == 0;
}

/* A fresh file per test in sqlite mode; the shared URL otherwise. */
static void next_url(char *url, size_t len)
{
    if (g_fixed_url[0])
        snprintf(url, len, "%s", g_fixed_url);
    else
        snprintf(url, len, "sqlite:%s/events-%d.db", g_dir, ++g_file_seq);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    next_url(f->url, sizeof f->url);
    char err[512] = "";
    int rc = lf_store_open(f->url, &f->s, err, sizeof err);
    if (rc) {
        fprintf(stderr, "cannot open %s: %s (%s)\n", f->url, lf_strerror(rc), err);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    lf_store_close(f->s);
    free(f);
    return 0;
}

/* "<prefix>-<name>" in a caller buffer. */
static const char *sname(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static const char *sname(char *buf, size_t len, const char *fmt, ...)
{
    int n = snprintf(buf, len, "%s-", g_prefix);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, len - (size_t)n, fmt, ap);
    va_end(ap);
    return buf;
}

static lf_event_in ev(const char *type, const char *data)
{
    lf_event_in e = {.id = NULL, .type = type, .data = data, .meta = NULL, .time_ms = 0};
    return e;
}

static int64_t head_of(lf_store *s)
{
    int64_t h = -1;
    assert_int_equal(lf_store_head(s, &h), 0);
    return h;
}

static int64_t version_of(lf_store *s, const char *stream)
{
    int64_t v = -1;
    assert_int_equal(lf_store_stream_version(s, stream, &v), 0);
    return v;
}

/* Reads the whole stream in pages of `page`. */
static void read_whole_stream(lf_store *s, const char *stream, size_t page, lf_event_list *out)
{
    int64_t from = 1;
    for (;;) {
        size_t before = out->n;
        assert_int_equal(lf_store_read_stream(s, stream, from, page, out), 0);
        if (out->n == before) break;
        from = out->ev[out->n - 1].version + 1;
        if (out->n - before < page) break;
    }
}

#define assert_err_mentions(word)                                                                  \
    do {                                                                                           \
        const char *m_ = lf_err_get();                                                             \
        if (!strcasestr(m_, (word)))                                                               \
            fail_msg("error detail '%s' does not mention '%s'", m_, word);                         \
    } while (0)

/* ---- version conflicts ------------------------------------------------- */
static void test_version_conflicts(void **state)
{
    lf_store *s = ((fixture *)*state)->s;
    char st[128];
    sname(st, sizeof st, "conflict");
    lf_event_in e[3] = {ev("T", "{\"n\":1}"), ev("T", "{\"n\":2}"), ev("T", "{\"n\":3}")};
    lf_append_result r;

    assert_int_equal(version_of(s, st), 0);
    /* An exact version on a missing stream conflicts. */
    assert_int_equal(lf_store_append(s, st, 1, e, 1, &r), LF_ECONFLICT);
    assert_int_equal(version_of(s, st), 0);

    assert_int_equal(lf_store_append(s, st, LF_EXPECT_NO_STREAM, e, 1, &r), 0);
    assert_int_equal(r.last_version, 1);
    assert_int_equal(r.duplicate, 0);
    assert_true(r.first_position >= 1);
    assert_int_equal(r.first_position, r.last_position);

    assert_int_equal(lf_store_append(s, st, LF_EXPECT_NO_STREAM, e, 3, &r), LF_ECONFLICT);
    assert_true(strlen(lf_err_get()) > 0);
    assert_int_equal(lf_store_append(s, st, 1, e, 2, &r), 0);
    assert_int_equal(r.last_version, 3);
    int64_t last = r.last_position;
    /* Behind, ahead: both conflict and write nothing. */
    assert_int_equal(lf_store_append(s, st, 1, e, 3, &r), LF_ECONFLICT);
    assert_int_equal(lf_store_append(s, st, 2, e, 3, &r), LF_ECONFLICT);
    assert_int_equal(lf_store_append(s, st, 4, e, 3, &r), LF_ECONFLICT);
    assert_int_equal(lf_store_append(s, st, 100, e, 1, &r), LF_ECONFLICT);
    assert_int_equal(version_of(s, st), 3);
    assert_true(head_of(s) >= last);

    assert_int_equal(lf_store_append(s, st, LF_EXPECT_ANY, e, 3, &r), 0);
    assert_int_equal(r.last_version, 6);
    assert_true(r.first_position > last);
    assert_true(r.last_position >= r.first_position + 2);
    assert_int_equal(lf_store_append(s, st, 6, e, 1, &r), 0);
    assert_int_equal(r.last_version, 7);

    lf_event_list l;
    lf_event_list_init(&l);
    read_whole_stream(s, st, 100, &l);
    assert_int_equal(l.n, 7);
    for (size_t i = 0; i < l.n; i++) {
        assert_int_equal(l.ev[i].version, (int64_t)i + 1);
        assert_string_equal(l.ev[i].stream, st);
        if (i) assert_true(l.ev[i].position > l.ev[i - 1].position);
    }
    /* Batch order is kept. */
    assert_string_equal(l.ev[3].data, "{\"n\":1}");
    assert_string_equal(l.ev[5].data, "{\"n\":3}");
    lf_event_list_free(&l);

    /* A conflict in one stream does not disturb another. */
    char st2[128];
    sname(st2, sizeof st2, "conflict-other");
    assert_int_equal(lf_store_append(s, st2, LF_EXPECT_ANY, e, 1, &r), 0);
    assert_int_equal(r.last_version, 1);
    assert_int_equal(version_of(s, st), 7);
}

/* ---- N threads, one stream, exact expected versions -------------------- */
#define RACE_THREADS 8
#define RACE_VERSIONS 240

typedef struct {
    lf_store *s;
    const char *stream;
    int id;
    _Atomic int *winner; /* [RACE_VERSIONS + 1], -1 = nobody */
    atomic_int *errors;
    int wins, conflicts;
} race_arg;

static void *race_main(void *p)
{
    race_arg *a = p;
    char data[64];
    for (;;) {
        int64_t v = 0;
        if (lf_store_stream_version(a->s, a->stream, &v)) {
            atomic_fetch_add(a->errors, 1);
            return NULL;
        }
        if (v >= RACE_VERSIONS) return NULL;
        snprintf(data, sizeof data, "{\"thread\":%d,\"v\":%lld}", a->id, (long long)v + 1);
        lf_event_in e = ev("Raced", data);
        lf_append_result r;
        int rc = lf_store_append(a->s, a->stream, v == 0 ? LF_EXPECT_NO_STREAM : v, &e, 1, &r);
        if (rc == 0) {
            int expect = -1;
            if (r.last_version != v + 1 ||
                !atomic_compare_exchange_strong(&a->winner[v + 1], &expect, a->id))
                atomic_fetch_add(a->errors, 1);
            a->wins++;
        } else if (rc == LF_ECONFLICT) {
            a->conflicts++;
        } else {
            atomic_fetch_add(a->errors, 1);
            return NULL;
        }
    }
}

static void test_same_stream_threads(void **state)
{
    lf_store *s = ((fixture *)*state)->s;
    char st[128];
    sname(st, sizeof st, "race");
    _Atomic int winner[RACE_VERSIONS + 1];
    for (int i = 0; i <= RACE_VERSIONS; i++)
        atomic_init(&winner[i], -1);
    atomic_int errors = 0;
    pthread_t th[RACE_THREADS];
    race_arg args[RACE_THREADS];
    for (int i = 0; i < RACE_THREADS; i++) {
        args[i] = (race_arg){.s = s, .stream = st, .id = i, .winner = winner, .errors = &errors};
        assert_int_equal(pthread_create(&th[i], NULL, race_main, &args[i]), 0);
    }
    int wins = 0, conflicts = 0;
    for (int i = 0; i < RACE_THREADS; i++) {
        pthread_join(th[i], NULL);
        wins += args[i].wins;
        conflicts += args[i].conflicts;
    }
    assert_int_equal(atomic_load(&errors), 0);
    assert_int_equal(wins, RACE_VERSIONS);
    print_message("  %d versions won by %d threads, %d conflicts\n", wins, RACE_THREADS, conflicts);

    lf_event_list l;
    lf_event_list_init(&l);
    read_whole_stream(s, st, 1000, &l);
    assert_int_equal(l.n, RACE_VERSIONS);
    for (size_t i = 0; i < l.n; i++) {
        int64_t v = (int64_t)i + 1;
        assert_int_equal(l.ev[i].version, v);
        char want[64];
        snprintf(want, sizeof want, "{\"thread\":%d,\"v\":%lld}", atomic_load(&winner[v]),
                 (long long)v);
        assert_string_equal(l.ev[i].data, want); /* the stored event is the winner's */
    }
    lf_event_list_free(&l);
}

/* ---- N threads on different streams while a subscriber reads ----------- */
#define SUB_WRITERS 4
#define SUB_APPENDS 150 /* per writer, batches of 1..4 */

typedef struct {
    pthread_mutex_t lock;
    int64_t last; /* last position delivered */
    size_t n, cap;
    int64_t *pos; /* positions delivered, in order */
    int errors;   /* out of order / duplicates */
} sub_seen;

static int sub_handler(const lf_event *e, void *ctx)
{
    sub_seen *ss = ctx;
    pthread_mutex_lock(&ss->lock);
    if (e->position <= ss->last) ss->errors++;
    ss->last = e->position;
    if (ss->n == ss->cap) {
        ss->cap = ss->cap ? ss->cap * 2 : 1024;
        ss->pos = realloc(ss->pos, ss->cap * sizeof *ss->pos);
    }
    ss->pos[ss->n++] = e->position;
    pthread_mutex_unlock(&ss->lock);
    return 0;
}

typedef struct {
    lf_store *s;
    int id;
    int64_t *acked; /* positions acknowledged to this writer */
    size_t nacked;
    int errors;
} writer_arg;

static void *writer_main(void *p)
{
    writer_arg *a = p;
    char st[128], data[64];
    sname(st, sizeof st, "sub-w%d", a->id);
    lf_event_in e[4];
    for (int k = 0; k < SUB_APPENDS; k++) {
        size_t n = (size_t)(k % 4) + 1;
        snprintf(data, sizeof data, "{\"w\":%d,\"k\":%d}", a->id, k);
        for (size_t i = 0; i < n; i++)
            e[i] = ev("W", data);
        lf_append_result r;
        if (lf_store_append(a->s, st, LF_EXPECT_ANY, e, n, &r)) {
            a->errors++;
            continue;
        }
        /* Record every position of the batch (read back to learn them). */
        lf_event_list l;
        lf_event_list_init(&l);
        if (lf_store_read_stream(a->s, st, r.last_version - (int64_t)n + 1, n, &l) || l.n != n ||
            l.ev[0].position != r.first_position || l.ev[n - 1].position != r.last_position)
            a->errors++;
        for (size_t i = 0; i < l.n; i++)
            a->acked[a->nacked++] = l.ev[i].position;
        lf_event_list_free(&l);
    }
    return NULL;
}

static int cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

static void test_streams_threads_with_subscriber(void **state)
{
    lf_store *s = ((fixture *)*state)->s;
    int64_t start = head_of(s);
    /* Some history first, so the subscription starts with a catch-up. */
    char st[128];
    sname(st, sizeof st, "sub-history");
    lf_event_in hist[50];
    for (int i = 0; i < 50; i++)
        hist[i] = ev("H", "{}");
    int64_t hist_pos[500];
    size_t nhist = 0;
    for (int b = 0; b < 10; b++) {
        lf_append_result r;
        assert_int_equal(lf_store_append(s, st, LF_EXPECT_ANY, hist, 50, &r), 0);
        lf_event_list l;
        lf_event_list_init(&l);
        assert_int_equal(lf_store_read_stream(s, st, r.last_version - 49, 50, &l), 0);
        assert_int_equal(l.n, 50);
        for (size_t i = 0; i < l.n; i++)
            hist_pos[nhist++] = l.ev[i].position;
        lf_event_list_free(&l);
    }

    sub_seen ss = {.last = start};
    pthread_mutex_init(&ss.lock, NULL);
    /* A small read batch makes many catch-up/live switches. */
    lf_subscription *sub = lf_store_subscribe(s, start, 7, sub_handler, &ss);
    assert_non_null(sub);

    pthread_t th[SUB_WRITERS];
    writer_arg wa[SUB_WRITERS];
    for (int i = 0; i < SUB_WRITERS; i++) {
        wa[i] = (writer_arg){.s = s, .id = i, .acked = calloc(SUB_APPENDS * 4, sizeof(int64_t))};
        assert_int_equal(pthread_create(&th[i], NULL, writer_main, &wa[i]), 0);
    }
    size_t total = nhist;
    for (int i = 0; i < SUB_WRITERS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(wa[i].errors, 0);
        total += wa[i].nacked;
    }
    int64_t *acked = malloc(total * sizeof *acked);
    size_t k = 0;
    for (size_t i = 0; i < nhist; i++)
        acked[k++] = hist_pos[i];
    for (int i = 0; i < SUB_WRITERS; i++) {
        memcpy(acked + k, wa[i].acked, wa[i].nacked * sizeof *acked);
        k += wa[i].nacked;
        free(wa[i].acked);
    }
    qsort(acked, total, sizeof *acked, cmp_i64);
    int64_t want_last = acked[total - 1];

    /* Wait until the subscriber has delivered the last acknowledged one. */
    int64_t deadline = lf_mono_ms() + 30000;
    while (lf_subscription_position(sub) < want_last && lf_mono_ms() < deadline)
        lf_sleep_ms(5);
    assert_true(lf_subscription_position(sub) >= want_last);
    lf_subscription_stop(sub);

    pthread_mutex_lock(&ss.lock);
    assert_int_equal(ss.errors, 0); /* strictly increasing, so no duplicates */
    /* Nothing missed: every acknowledged position was delivered. */
    size_t j = 0;
    for (size_t i = 0; i < total; i++) {
        while (j < ss.n && ss.pos[j] < acked[i])
            j++;
        if (j == ss.n || ss.pos[j] != acked[i])
            fail_msg("acknowledged position %lld never delivered", (long long)acked[i]);
    }
    print_message("  %zu events acknowledged, %zu delivered in order\n", total, ss.n);
    pthread_mutex_unlock(&ss.lock);
    pthread_mutex_destroy(&ss.lock);
    free(ss.pos);
    free(acked);
}

/* Subscription stops when the handler says so; a live-only one works. */
static int stop_after_3(const lf_event *e, void *ctx)
{
    atomic_int *n = ctx;
    (void)e;
    return atomic_fetch_add(n, 1) + 1 >= 3;
}

static void test_subscription_stop(void **state)
{
    lf_store *s = ((fixture *)*state)->s;
    char st[128];
    sname(st, sizeof st, "sub-stop");
    int64_t start = head_of(s);
    atomic_int n = 0;
    lf_subscription *sub = lf_store_subscribe(s, start, 0, stop_after_3, &n);
    assert_non_null(sub);
    lf_event_in e[5];
    for (int i = 0; i < 5; i++)
        e[i] = ev("T", "{}");
    lf_append_result r;
    assert_int_equal(lf_store_append(s, st, LF_EXPECT_ANY, e, 5, &r), 0);
    int64_t deadline = lf_mono_ms() + 10000;
    while (atomic_load(&n) < 3 && lf_mono_ms() < deadline)
        lf_sleep_ms(2);
    lf_sleep_ms(50);
    assert_int_equal(atomic_load(&n), 3); /* not called again after it asked to stop */
    assert_int_equal(lf_subscription_position(sub), r.first_position + 2);
    lf_subscription_stop(sub);
    assert_null(lf_store_subscribe(s, -1, 0, stop_after_3, &n));
    lf_subscription_stop(NULL);
}

/* ---- idempotent re-append ---------------------------------------------- */
static void test_idempotent(void **state)
{
    lf_store *s = ((fixture *)*state)->s;
    char st[128], other[128];
    sname(st, sizeof st, "idem");
    sname(other, sizeof other, "idem-other");
    char ids[4][LF_UUID_LEN];
    for (int i = 0; i < 4; i++)
        lf_uuid_v4(ids[i]);
    lf_event_in e[3];
    for (int i = 0; i < 3; i++) {
        e[i] = ev("T", "{\"a\":1}");
        e[i].id = ids[i];
    }
    lf_append_result r1, r2;
    assert_int_equal(lf_store_append(s, st, LF_EXPECT_NO_STREAM, e, 3, &r1), 0);
    assert_int_equal(r1.duplicate, 0);
    int64_t h = head_of(s);

    /* A retry with the same expected version is a no-op, not a conflict. */
    assert_int_equal(lf_store_append(s, st, LF_EXPECT_NO_STREAM, e, 3, &r2), 0);
    assert_int_equal(r2.duplicate, 1);
    assert_int_equal(r2.first_position, r1.first_position);
    assert_int_equal(r2.last_position, r1.last_position);
    assert_int_equal(r2.last_version, 3);
    assert_int_equal(lf_store_append(s, st, LF_EXPECT_ANY, e, 3, &r2), 0);
    assert_int_equal(r2.duplicate, 1);
    assert_int_equal(r2.last_position, r1.last_position);
    assert_int_equal(version_of(s, st), 3);
    if (is_sqlite()) assert_int_equal(head_of(s), h);

    /* Partly stored: the stored id first, or a new one first. */
    lf_event_in p[2] = {e[0], ev("T", "{}")};
    p[1].id = ids[3];
    assert_int_equal(lf_store_append(s, st, LF_EXPECT_ANY, p, 2, &r2), LF_EEXIST);
    assert_true(strlen(lf_err_get()) > 0);
    lf_event_in q[2] = {p[1], e[1]};
    assert_int_equal(lf_store_append(s, st, LF_EXPECT_ANY, q, 2, &r2), LF_EEXIST);
    /* A stored id in another stream. */
    assert_int_equal(lf_store_append(s, other, LF_EXPECT_ANY, e, 1, &r2), LF_EEXIST);
    assert_int_equal(version_of(s, st), 3);
    assert_int_equal(version_of(s, other), 0);

    /* The id reads back as given (lowercase). */
    lf_event_list l;
    lf_event_list_init(&l);
    read_whole_stream(s, st, 10, &l);
    assert_int_equal(l.n, 3);
    for (int i = 0; i < 3; i++)
        assert_string_equal(l.ev[i].id, ids[i]);
    assert_int_equal(l.ev[0].position, r1.first_position);
    assert_int_equal(l.ev[2].position, r1.last_position);
    lf_event_list_free(&l);

    /* Ids the store generates are UUIDs, and distinct. */
    lf_event_in g[2] = {ev("T", "{}"), ev("T", "{}")};
    g[1].id = "";
    assert_int_equal(lf_store_append(s, other, LF_EXPECT_ANY, g, 2, &r2), 0);
    read_whole_stream(s, other, 10, &l);
    assert_int_equal(l.n, 2);
    assert_true(lf_uuid_valid(l.ev[0].id));
    assert_true(lf_uuid_valid(l.ev[1].id));
    assert_string_not_equal(l.ev[0].id, l.ev[1].id);
    lf_event_list_free(&l);
}

/* ---- batches of 1 and 10,000 --------------------------------------------- */
static void test_batch_sizes(void **state)
{
    lf_store *s = ((fixture *)*state)->s;
    char st[128];
    sname(st, sizeof st, "batch");
    lf_append_result r;
    lf_event_in one = ev("One", "{\"i\":0}");
    assert_int_equal(lf_store_append(s, st, LF_EXPECT_NO_STREAM, &one, 1, &r), 0);
    assert_int_equal(r.first_position, r.last_position);
    assert_int_equal(r.last_version, 1);

    enum { N = 10000 };
    lf_event_in *e = calloc(N, sizeof *e);
    char(*data)[48] = calloc(N, 48);
    char(*ids)[LF_UUID_LEN] = calloc(N, LF_UUID_LEN);
    for (int i = 0; i < N; i++) {
        snprintf(data[i], 48, "{\"i\":%d}", i + 1);
        lf_uuid_v7(ids[i]);
        e[i] = ev("Many", data[i]);
        e[i].id = ids[i];
    }
    assert_int_equal(lf_store_append(s, st, 1, e, N, &r), 0);
    assert_int_equal(r.last_version, N + 1);
    assert_true(r.last_position - r.first_position >= N - 1);
    if (is_sqlite()) assert_int_equal(r.last_position - r.first_position, N - 1);
    lf_append_result r2;
    assert_int_equal(lf_store_append(s, st, 1, e, N, &r2), 0); /* retry of 10,000 */
    assert_int_equal(r2.duplicate, 1);
    assert_int_equal(r2.first_position, r.first_position);
    assert_int_equal(r2.last_position, r.last_position);

    lf_event_list l;
    lf_event_list_init(&l);
    read_whole_stream(s, st, 1000, &l);
    assert_int_equal(l.n, N + 1);
    for (int i = 0; i <= N; i++) {
        char want[48];
        snprintf(want, sizeof want, "{\"i\":%d}", i);
        assert_int_equal(l.ev[i].version, i + 1);
        assert_string_equal(l.ev[i].data, want);
        if (i) assert_true(l.ev[i].position > l.ev[i - 1].position);
        if (i) assert_string_equal(l.ev[i].id, ids[i - 1]);
    }
    assert_int_equal(l.ev[1].position, r.first_position);
    assert_int_equal(l.ev[N].position, r.last_position);
    lf_event_list_free(&l);

    /* read_all sees the same 10,000 in order. */
    assert_int_equal(lf_store_read_all(s, r.first_position - 1, N, &l), 0);
    assert_int_equal(l.n, N);
    for (int i = 0; i < N; i++) {
        assert_string_equal(l.ev[i].stream, st);
        assert_int_equal(l.ev[i].version, i + 2);
    }
    lf_event_list_free(&l);

    /* Out of range sizes. */
    assert_int_equal(lf_store_append(s, st, LF_EXPECT_ANY, e, 0, &r), LF_EINVAL);
    assert_err_mentions("batch");
    free(e);
    free(data);
    free(ids);
}

/* ---- any bytes in data --------------------------------------------------- */
static void test_any_bytes(void **state)
{
    lf_store *s = ((fixture *)*state)->s;
    char st[128];
    sname(st, sizeof st, "bytes-ünïcødé-✓");
    const char *texts[] = {
        "{\"s\":\"h\xc3\xa9llo \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80\"}",
        "{\"nul\":\"a\\u0000b\",\"k\":\"\\u0000\"}",
        "{\"esc\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\"}",
        "{ \"ws\" :\t[ 1 , -2.5e+3 , true , false , null , { } , [ ] ] \n}",
        "{}",
        "{\"deep\":[[[[[[[[[[{\"x\":[]}]]]]]]]]]]}",
    };
    enum { NT = sizeof texts / sizeof texts[0], BIG = 3 };
    size_t mib = 1u << 20;
    char *big[BIG];
    for (int b = 0; b < BIG; b++) {
        big[b] = malloc(mib + 1);
        memcpy(big[b], "{\"blob\":\"", 9);
        for (size_t i = 9; i < mib - 2; i++)
            big[b][i] = (char)('a' + (i * 7 + (size_t)b) % 26);
        memcpy(big[b] + mib - 2, "\"}", 3);
        assert_int_equal(strlen(big[b]), mib);
    }
    lf_event_in e[NT + BIG];
    for (int i = 0; i < NT; i++)
        e[i] = ev("Bytes", texts[i]);
    for (int b = 0; b < BIG; b++)
        e[NT + b] = ev("Big", big[b]);
    e[0].meta = "{\"source\":\"t\xc3\xa9st\",\"seq\":42}";
    e[1].time_ms = 1795946400123; /* 2026-11-29T10:00:00.123Z */
    e[2].type = "T\xc3\xbdpe.\xe2\x9c\x93";
    lf_append_result r;
    int64_t t0 = lf_now_ms();
    int rc = lf_store_append(s, st, LF_EXPECT_NO_STREAM, e, NT + BIG, &r);
    if (rc) fail_msg("append: %s: %s", lf_strerror(rc), lf_err_get());
    int64_t t1 = lf_now_ms();

    for (int pass = 0; pass < 2; pass++) {
        lf_event_list l;
        lf_event_list_init(&l);
        if (pass == 0)
            read_whole_stream(s, st, 4, &l);
        else
            assert_int_equal(lf_store_read_all(s, r.first_position - 1, NT + BIG, &l), 0);
        assert_int_equal(l.n, NT + BIG);
        for (int i = 0; i < NT + BIG; i++) {
            assert_string_equal(l.ev[i].stream, st);
            assert_string_equal(l.ev[i].data, e[i].data);
            assert_string_equal(l.ev[i].type, e[i].type);
            assert_string_equal(l.ev[i].meta, e[i].meta ? e[i].meta : "{}");
        }
        assert_int_equal(l.ev[1].time_ms, 1795946400123);
        assert_true(l.ev[0].time_ms >= t0 - 1000 && l.ev[0].time_ms <= t1 + 1000);
        lf_event_list_free(&l);
    }
    for (int b = 0; b < BIG; b++)
        free(big[b]);
}

/* ---- invalid input -------------------------------------------------------- */
static void expect_einval(lf_store *s, const char *stream, int64_t expected, const lf_event_in *e,
                          size_t n, const char *word)
{
    lf_err_clear();
    lf_append_result r;
    int rc = lf_store_append(s, stream, expected, e, n, &r);
    if (rc != LF_EINVAL)
        fail_msg("append accepted bad input (want '%s'): rc %d %s", word, rc, lf_strerror(rc));
    assert_err_mentions(word);
}

static void test_invalid_input(void **state)
{
    lf_store *s = ((fixture *)*state)->s;
    char st[128];
    sname(st, sizeof st, "invalid");
    lf_event_in ok = ev("T", "{}");

    expect_einval(s, "", LF_EXPECT_ANY, &ok, 1, "stream");
    expect_einval(s, NULL, LF_EXPECT_ANY, &ok, 1, "stream");
    char longname[LF_STREAM_MAX + 2];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    expect_einval(s, longname, LF_EXPECT_ANY, &ok, 1, "stream");
    expect_einval(s, "bad\nname", LF_EXPECT_ANY, &ok, 1, "stream");
    expect_einval(s,
                  "bad\xff"
                  "utf8",
                  LF_EXPECT_ANY, &ok, 1, "stream");
    /* Names must be UTF-8 that JSON can carry: no overlong forms, no
     * surrogates, nothing past U+10FFFF, nothing cut short. */
    const char *bad_names[] = {"over\xc0\xaf"
                               "x",
                               "over\xe0\x80\xaf"
                               "x",
                               "sur\xed\xa0\x80"
                               "x",
                               "big\xf4\x90\x80\x80",
                               "big\xf5\x80\x80\x80",
                               "cut\xe2\x82"};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        expect_einval(s, bad_names[i], LF_EXPECT_ANY, &ok, 1, "stream");
        lf_event_in bt = ev(bad_names[i], "{}");
        expect_einval(s, st, LF_EXPECT_ANY, &bt, 1, "type");
    }
    lf_event_in good_type = ev("T\xc3\xa9\xe2\x82\xac\xf0\x9f\x94\x92", "{}"); /* é € 🔒 */
    char good_name[160];
    snprintf(good_name, sizeof good_name, "%s-\xc3\xa9\xf0\x9f\x94\x92", st);
    assert_int_equal(lf_store_append(s, good_name, LF_EXPECT_ANY, &good_type, 1, NULL), 0);

    expect_einval(s, st, 0, &ok, 1, "expected");
    expect_einval(s, st, -3, &ok, 1, "expected");
    expect_einval(s, st, LF_EXPECT_ANY, NULL, 1, "batch");
    expect_einval(s, st, LF_EXPECT_ANY, &ok, 0, "batch");

    static const char *not_objects[] = {
        "[1,2]",
        "\"text\"",
        "42",
        "null",
        "true",
        "",
        " ",
        "not json",
        "{",
        "}",
        "{\"a\":}",
        "{\"a\" 1}",
        "{\"a\":1,}",
        "{a:1}",
        "{'a':1}",
        "{\"a\":1} x",
        "{\"a\":1}{}",
        "{\"a\":01}",
        "{\"a\":1.}",
        "{\"a\":.5}",
        "{\"a\":-}",
        "{\"a\":1e}",
        "{\"a\":tru}",
        "{\"a\":\"\\x\"}",
        "{\"a\":\"\\u12g4\"}",
        "{\"a\":\"tab\there\"}",
        "{\"a\":[1,]}",
        "{\"a\":[1 2]}",
        "{\"a\":NaN}",
        "{\"a\":\"\xc3\x28\"}",
        "{\"a\":\"\xed\xa0\x80\"}",
        "{\"a\":\"\xff\"}",
        "{\"a\":\"\\ud800\"}",
        "{\"a\":1}\x01",
    };
    for (size_t i = 0; i < sizeof not_objects / sizeof not_objects[0]; i++) {
        lf_event_in bad[2] = {ok, ev("T", not_objects[i])};
        lf_err_clear();
        lf_append_result r;
        int rc = lf_store_append(s, st, LF_EXPECT_ANY, bad, 2, &r);
        if (rc != LF_EINVAL) fail_msg("data %s accepted (rc %d)", not_objects[i], rc);
        if (!strcasestr(lf_err_get(), "data") || !strcasestr(lf_err_get(), "event 1"))
            fail_msg("data %s: error '%s' does not name event 1's data", not_objects[i],
                     lf_err_get());
    }
    lf_event_in nodata = ev("T", NULL);
    expect_einval(s, st, LF_EXPECT_ANY, &nodata, 1, "data");
    lf_event_in badmeta = ev("T", "{}");
    badmeta.meta = "[]";
    expect_einval(s, st, LF_EXPECT_ANY, &badmeta, 1, "meta");
    lf_event_in notype = ev("", "{}");
    expect_einval(s, st, LF_EXPECT_ANY, &notype, 1, "type");
    notype.type = NULL;
    expect_einval(s, st, LF_EXPECT_ANY, &notype, 1, "type");
    lf_event_in badid = ev("T", "{}");
    badid.id = "not-a-uuid";
    expect_einval(s, st, LF_EXPECT_ANY, &badid, 1, "id");
    badid.id = "123e4567-e89b-12d3-a456-42661417400"; /* one digit short */
    expect_einval(s, st, LF_EXPECT_ANY, &badid, 1, "id");
    lf_event_in neg = ev("T", "{}");
    neg.time_ms = -5;
    expect_einval(s, st, LF_EXPECT_ANY, &neg, 1, "time");
    char id[LF_UUID_LEN];
    lf_uuid_v4(id);
    lf_event_in twice[2] = {ev("T", "{}"), ev("T", "{}")};
    twice[0].id = twice[1].id = id;
    expect_einval(s, st, LF_EXPECT_ANY, twice, 2, "id");

    size_t huge = LF_EVENT_DATA_MAX + 1;
    char *h = malloc(huge + 1);
    memset(h, ' ', huge);
    h[0] = '{';
    h[huge - 1] = '}';
    h[huge] = '\0';
    lf_event_in big = ev("T", h);
    expect_einval(s, st, LF_EXPECT_ANY, &big, 1, "data");
    free(h);

    /* Nothing of all that was written. */
    assert_int_equal(version_of(s, st), 0);

    /* Bad read arguments. */
    lf_event_list l;
    lf_event_list_init(&l);
    assert_int_equal(lf_store_read_stream(s, st, 0, 10, &l), LF_EINVAL);
    assert_int_equal(lf_store_read_stream(s, "", 1, 10, &l), LF_EINVAL);
    assert_int_equal(lf_store_read_all(s, -1, 10, &l), LF_EINVAL);
    assert_int_equal(l.n, 0);
    int64_t v;
    assert_int_equal(lf_store_stream_version(s, "", &v), LF_EINVAL);
}

/* ---- read bounds, head, stream_version ----------------------------------- */
static void test_read_bounds(void **state)
{
    lf_store *s = ((fixture *)*state)->s;
    char st[128], st2[128];
    sname(st, sizeof st, "bounds");
    sname(st2, sizeof st2, "bounds-2");
    lf_event_in e[10];
    char data[10][32];
    for (int i = 0; i < 10; i++) {
        snprintf(data[i], sizeof data[i], "{\"i\":%d}", i + 1);
        e[i] = ev("B", data[i]);
    }
    lf_append_result r, r2;
    assert_int_equal(lf_store_append(s, st, LF_EXPECT_NO_STREAM, e, 10, &r), 0);
    assert_int_equal(lf_store_append(s, st2, LF_EXPECT_NO_STREAM, e, 2, &r2), 0);
    assert_true(head_of(s) >= r2.last_position);
    if (is_sqlite()) assert_int_equal(head_of(s), r2.last_position);
    assert_int_equal(version_of(s, st), 10);
    assert_int_equal(version_of(s, st2), 2);
    char missing[128];
    assert_int_equal(version_of(s, sname(missing, sizeof missing, "missing")), 0);

    lf_event_list l;
    lf_event_list_init(&l);
    assert_int_equal(lf_store_read_stream(s, st, 1, 3, &l), 0);
    assert_int_equal(l.n, 3);
    assert_int_equal(l.ev[0].version, 1);
    assert_int_equal(l.ev[2].version, 3);
    /* The list is appended to, not replaced. */
    assert_int_equal(lf_store_read_stream(s, st, 4, 100, &l), 0);
    assert_int_equal(l.n, 10);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(l.ev[i].version, i + 1);
        assert_string_equal(l.ev[i].data, data[i]);
        assert_string_equal(l.ev[i].type, "B");
        assert_true(lf_uuid_valid(l.ev[i].id));
    }
    assert_int_equal(l.ev[0].position, r.first_position);
    assert_int_equal(l.ev[9].position, r.last_position);
    lf_event_list_free(&l);
    assert_int_equal(lf_store_read_stream(s, st, 10, 5, &l), 0);
    assert_int_equal(l.n, 1);
    lf_event_list_free(&l);
    assert_int_equal(lf_store_read_stream(s, st, 11, 5, &l), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(lf_store_read_stream(s, st, 1, 0, &l), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(lf_store_read_stream(s, missing, 1, 10, &l), 0);
    assert_int_equal(l.n, 0);

    /* read_all: strictly after `after`, at most max. */
    assert_int_equal(lf_store_read_all(s, r.first_position + 3, 2, &l), 0);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.ev[0].version, 5);
    assert_int_equal(l.ev[1].version, 6);
    assert_string_equal(l.ev[0].stream, st);
    lf_event_list_free(&l);
    assert_int_equal(lf_store_read_all(s, r.last_position - 1, 100, &l), 0);
    assert_true(l.n >= 3);
    assert_int_equal(l.ev[0].position, r.last_position);
    assert_string_equal(l.ev[1].stream, st2);
    assert_int_equal(l.ev[2].position, r2.last_position);
    lf_event_list_free(&l);
    assert_int_equal(lf_store_read_all(s, r.first_position, 0, &l), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(lf_store_read_all(s, head_of(s), 10, &l), 0);
    assert_int_equal(l.n, 0);
    if (is_sqlite()) {
        assert_int_equal(lf_store_read_all(s, 0, 1000, &l), 0);
        assert_int_equal(l.n, 12);
        for (size_t i = 0; i < l.n; i++)
            assert_int_equal(l.ev[i].position, (int64_t)i + 1);
        lf_event_list_free(&l);
    }
    assert_string_not_equal(lf_store_backend(s), "");
}

/* ---- lf_store_wait -------------------------------------------------------- */
typedef struct {
    lf_store *s;
    const char *stream;
} late_arg;

static void *late_append(void *p)
{
    late_arg *a = p;
    lf_sleep_ms(100);
    lf_event_in e = ev("Late", "{}");
    lf_store_append(a->s, a->stream, LF_EXPECT_ANY, &e, 1, NULL);
    return NULL;
}

static void test_wait(void **state)
{
    lf_store *s = ((fixture *)*state)->s;
    char st[128];
    sname(st, sizeof st, "wait");
    lf_event_in e = ev("T", "{}");
    lf_append_result r;
    assert_int_equal(lf_store_append(s, st, LF_EXPECT_ANY, &e, 1, &r), 0);
    int64_t h = head_of(s);

    int64_t t0 = lf_mono_ms();
    assert_int_equal(lf_store_wait(s, r.last_position - 1, 5000), 0); /* already there */
    assert_true(lf_mono_ms() - t0 < 1000);

    if (is_sqlite()) { /* a server store may see other writers */
        t0 = lf_mono_ms();
        assert_int_equal(lf_store_wait(s, h, 150), LF_ETIMEDOUT);
        int64_t took = lf_mono_ms() - t0;
        assert_true(took >= 140 && took < 2000);
        t0 = lf_mono_ms();
        assert_int_equal(lf_store_wait(s, h, 0), LF_ETIMEDOUT);
        assert_true(lf_mono_ms() - t0 < 500);
    }

    /* Woken by an append from another thread, well before the timeout. */
    pthread_t th;
    late_arg a = {s, st};
    t0 = lf_mono_ms();
    assert_int_equal(pthread_create(&th, NULL, late_append, &a), 0);
    assert_int_equal(lf_store_wait(s, h, 10000), 0);
    int64_t took = lf_mono_ms() - t0;
    pthread_join(th, NULL);
    assert_true(took < 5000);
    assert_int_equal(version_of(s, st), 2);
}

/* ---- sqlite only: persistence, corruption, foreign files ----------------- */
static void test_sqlite_reopen(void **state)
{
    (void)state;
    if (!is_sqlite()) skip();
    char url[1100];
    next_url(url, sizeof url);
    char err[512];
    lf_store *s;
    assert_int_equal(lf_store_open(url, &s, err, sizeof err), 0);
    assert_string_equal(lf_store_backend(s), "sqlite");
    char id[LF_UUID_LEN];
    lf_uuid_v4(id);
    lf_event_in e[3] = {ev("A", "{\"x\":1}"), ev("B", "{\"x\":2}"), ev("C", "{\"x\":3}")};
    e[0].id = id;
    lf_append_result r;
    assert_int_equal(lf_store_append(s, "persist", LF_EXPECT_NO_STREAM, e, 1, &r), 0);
    assert_int_equal(lf_store_append(s, "persist", 1, e + 1, 2, &r), 0);
    lf_store_close(s);

    for (int round = 0; round < 2; round++) {
        assert_int_equal(lf_store_open(url, &s, err, sizeof err), 0);
        assert_int_equal(head_of(s), 3 + round);
        assert_int_equal(version_of(s, "persist"), 3);
        lf_event_list l;
        lf_event_list_init(&l);
        assert_int_equal(lf_store_read_all(s, 0, 100, &l), 0);
        assert_int_equal(l.n, 3 + (size_t)round);
        assert_string_equal(l.ev[0].id, id);
        assert_string_equal(l.ev[2].data, "{\"x\":3}");
        assert_string_equal(l.ev[1].type, "B");
        lf_event_list_free(&l);
        /* Idempotency survives the reopen. */
        assert_int_equal(lf_store_append(s, "persist", LF_EXPECT_NO_STREAM, e, 1, &r), 0);
        assert_int_equal(r.duplicate, 1);
        assert_int_equal(r.first_position, 1);
        /* Versions and positions continue. */
        if (round == 0) {
            assert_int_equal(lf_store_append(s, "other", LF_EXPECT_NO_STREAM, e + 1, 1, &r), 0);
            assert_int_equal(r.first_position, 4);
        }
        assert_int_equal(lf_store_append(s, "persist", 2, e + 2, 1, &r), LF_ECONFLICT);
        lf_store_close(s);
    }
}

typedef struct {
    lf_store *s;
    int id;
    int errors;
} delay_arg;
static void *delay_main(void *p);

/* ---- lf_store_append_async ---------------------------------------------
 * Many batches in flight from one caller: each callback once, in the order
 * of the calls, with the result a synchronous append would give; a
 * conflict reaches its callback and writes nothing; bad input is refused
 * at the call (no callback); closing waits for what is queued. */
#define ASYNC_STREAMS 4
#define ASYNC_BATCHES 200

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int calls, order_errors, failures, conflicts;
    int next_tag;     /* the tag the next callback must carry */
    int64_t last_pos; /* positions must grow in callback order */
    int64_t ver[ASYNC_STREAMS];
} async_seen;

typedef struct {
    async_seen *seen;
    int tag, stream, n;
    int want_rc;
    lf_event_in e[3];
    char data[3][48];
    char st[128];
} async_call;

static void async_cb(void *ctx, int rc, const lf_append_result *res, const char *err)
{
    async_call *c = ctx;
    async_seen *a = c->seen;
    pthread_mutex_lock(&a->mu);
    a->calls++;
    if (c->tag != a->next_tag++) a->order_errors++;
    if (rc != c->want_rc) {
        a->failures++;
        fprintf(stderr, "async tag %d: rc %d (want %d): %s\n", c->tag, rc, c->want_rc,
                err ? err : "");
    } else if (rc == 0) {
        if (!res || res->first_position <= a->last_pos ||
            res->last_position != res->first_position + c->n - 1 ||
            res->last_version != a->ver[c->stream] + c->n)
            a->failures++;
        else {
            a->last_pos = res->last_position;
            a->ver[c->stream] = res->last_version;
        }
    } else {
        if (res || !err || !*err) a->failures++;
        if (rc == LF_ECONFLICT) a->conflicts++;
    }
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->mu);
}

static void async_wait(async_seen *a, int calls)
{
    pthread_mutex_lock(&a->mu);
    while (a->calls < calls)
        pthread_cond_wait(&a->cond, &a->mu);
    pthread_mutex_unlock(&a->mu);
}

/* A synchronous appender that holds a lock while it appends. */
typedef struct {
    lf_store *s;
    pthread_mutex_t *m;
    int rounds, errors;
    char st[128];
} holder_arg;

static void *holder_main(void *p)
{
    holder_arg *h = p;
    char data[32];
    for (int i = 0; i < h->rounds; i++) {
        snprintf(data, sizeof data, "{\"i\":%d}", i);
        lf_event_in e = ev("HeldAppend", data);
        pthread_mutex_lock(h->m);
        if (lf_store_append(h->s, h->st, LF_EXPECT_ANY, &e, 1, NULL) != 0) h->errors++;
        pthread_mutex_unlock(h->m);
    }
    return NULL;
}

typedef struct {
    pthread_mutex_t *m; /* the appenders' lock */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int calls, failures;
} lock_seen;

static void locking_cb(void *ctx, int rc, const lf_append_result *res, const char *err)
{
    (void)res;
    (void)err;
    lock_seen *l = ctx;
    pthread_mutex_lock(l->m);
    pthread_mutex_unlock(l->m);
    pthread_mutex_lock(&l->mu);
    l->calls++;
    if (rc != 0) l->failures++;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->mu);
}

static void test_append_async(void **state)
{
    fixture *f = *state;
    lf_store *s = f->s;
    async_seen a = {.last_pos = head_of(s)};
    pthread_mutex_init(&a.mu, NULL);
    pthread_cond_init(&a.cond, NULL);
    async_call *calls = calloc(ASYNC_BATCHES + 1, sizeof *calls);
    int64_t expect_ver[ASYNC_STREAMS] = {0};
    for (int i = 0; i < ASYNC_BATCHES; i++) {
        async_call *c = &calls[i];
        *c = (async_call){.seen = &a, .tag = i, .stream = i % ASYNC_STREAMS, .n = 1 + i % 3};
        sname(c->st, sizeof c->st, "async-%d", c->stream);
        for (int k = 0; k < c->n; k++) {
            snprintf(c->data[k], sizeof c->data[k], "{\"call\":%d,\"k\":%d}", i, k);
            c->e[k] = ev("AsyncTick", c->data[k]);
        }
        int64_t exp = expect_ver[c->stream] ? expect_ver[c->stream] : LF_EXPECT_NO_STREAM;
        expect_ver[c->stream] += c->n;
        assert_int_equal(lf_store_append_async(s, c->st, exp, c->e, (size_t)c->n, async_cb, c), 0);
    }
    /* A conflict, queued behind them: expected version 1 is long gone. */
    async_call *cf = &calls[ASYNC_BATCHES];
    *cf = (async_call){
        .seen = &a, .tag = ASYNC_BATCHES, .stream = 0, .n = 1, .want_rc = LF_ECONFLICT};
    memcpy(cf->st, calls[0].st, sizeof cf->st);
    cf->e[0] = ev("AsyncTick", "{\"conflict\":true}");
    assert_int_equal(lf_store_append_async(s, cf->st, 1, cf->e, 1, async_cb, cf), 0);
    async_wait(&a, ASYNC_BATCHES + 1);
    assert_int_equal(a.calls, ASYNC_BATCHES + 1);
    assert_int_equal(a.order_errors, 0);
    assert_int_equal(a.failures, 0);
    assert_int_equal(a.conflicts, 1);

    /* Bad input is refused at the call, and no callback comes. */
    lf_event_in bad = ev("AsyncTick", "[1]");
    assert_int_equal(lf_store_append_async(s, calls[0].st, LF_EXPECT_ANY, &bad, 1, async_cb, cf),
                     LF_EINVAL);
    assert_int_equal(lf_store_append_async(s, "", LF_EXPECT_ANY, calls[0].e, 1, async_cb, cf),
                     LF_EINVAL);
    assert_int_equal(
        lf_store_append_async(s, calls[0].st, LF_EXPECT_ANY, calls[0].e, 1, NULL, NULL), LF_EINVAL);
    lf_sleep_ms(20);
    pthread_mutex_lock(&a.mu);
    assert_int_equal(a.calls, ASYNC_BATCHES + 1);
    pthread_mutex_unlock(&a.mu);

    /* Read back: every stream holds its batches in call order. */
    for (int st = 0; st < ASYNC_STREAMS; st++) {
        lf_event_list l;
        lf_event_list_init(&l);
        read_whole_stream(s, calls[st].st, 1000, &l);
        assert_int_equal((int64_t)l.n, expect_ver[st]);
        size_t k = 0;
        for (int i = st; i < ASYNC_BATCHES; i += ASYNC_STREAMS)
            for (int j = 0; j < calls[i].n; j++, k++)
                assert_string_equal(l.ev[k].data, calls[i].data[j]);
        lf_event_list_free(&l);
    }

    /* Sync and async appenders at once: groups hold both kinds (the
     * leader may be either), and each gets its own answer. */
    {
        pthread_t th[4];
        delay_arg da[4];
        for (int i = 0; i < 4; i++) {
            da[i] = (delay_arg){.s = s, .id = 100 + i};
            assert_int_equal(pthread_create(&th[i], NULL, delay_main, &da[i]), 0);
        }
        async_seen c = {.last_pos = 0};
        pthread_mutex_init(&c.mu, NULL);
        pthread_cond_init(&c.cond, NULL);
        async_call *mix = calloc(ASYNC_BATCHES, sizeof *mix);
        int64_t v = 0;
        for (int i = 0; i < ASYNC_BATCHES; i++) {
            mix[i] = (async_call){.seen = &c, .tag = i, .stream = 0, .n = 1};
            sname(mix[i].st, sizeof mix[i].st, "%s", "async-mixed");
            snprintf(mix[i].data[0], sizeof mix[i].data[0], "{\"i\":%d}", i);
            mix[i].e[0] = ev("AsyncTick", mix[i].data[0]);
            assert_int_equal(lf_store_append_async(s, mix[i].st, v ? v : LF_EXPECT_NO_STREAM,
                                                   mix[i].e, 1, async_cb, &mix[i]),
                             0);
            v++;
            if (i % 16 == 0) lf_sleep_ms(1);
        }
        async_wait(&c, ASYNC_BATCHES);
        for (int i = 0; i < 4; i++) {
            pthread_join(th[i], NULL);
            assert_int_equal(da[i].errors, 0);
        }
        assert_int_equal(c.failures, 0);
        assert_int_equal(c.order_errors, 0);
        assert_int_equal(version_of(s, mix[0].st), ASYNC_BATCHES);
        free(mix);
        pthread_mutex_destroy(&c.mu);
        pthread_cond_destroy(&c.cond);
    }

    /* A callback may take a lock that a synchronous appender holds while it
     * appends (the hub's per-unit lock): the store never runs a callback on
     * a thread that leads a group, which would wait for itself. */
    {
        pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
        holder_arg ha[2];
        pthread_t th[2];
        for (int i = 0; i < 2; i++) {
            ha[i] = (holder_arg){.s = s, .m = &m, .rounds = 100};
            sname(ha[i].st, sizeof ha[i].st, "async-holder-%d", i);
            assert_int_equal(pthread_create(&th[i], NULL, holder_main, &ha[i]), 0);
        }
        lock_seen ls = {.m = &m};
        pthread_mutex_init(&ls.mu, NULL);
        pthread_cond_init(&ls.cond, NULL);
        char lname[128], ldata[32] = "{\"locked\":true}";
        sname(lname, sizeof lname, "%s", "async-locking");
        lf_event_in le = ev("AsyncLocked", ldata);
        for (int i = 0; i < 100; i++) {
            assert_int_equal(
                lf_store_append_async(s, lname, LF_EXPECT_ANY, &le, 1, locking_cb, &ls), 0);
            if (i % 8 == 0) lf_sleep_ms(1);
        }
        struct timespec dl;
        lf_abstime_us(60 * 1000000, &dl);
        pthread_mutex_lock(&ls.mu);
        while (ls.calls < 100)
            if (pthread_cond_timedwait(&ls.cond, &ls.mu, &dl) == ETIMEDOUT) {
                fprintf(stderr,
                        "async callbacks taking an appender's lock: %d of 100 after "
                        "60 s (deadlocked)\n",
                        ls.calls);
                abort(); /* threads are stuck: no orderly way out */
            }
        pthread_mutex_unlock(&ls.mu);
        for (int i = 0; i < 2; i++) {
            pthread_join(th[i], NULL);
            assert_int_equal(ha[i].errors, 0);
        }
        assert_int_equal(ls.failures, 0);
        assert_int_equal(version_of(s, lname), 100);
        pthread_mutex_destroy(&ls.mu);
        pthread_cond_destroy(&ls.cond);
    }

    /* Close with batches queued (a second handle on the same store): close
     * returns only after every callback, and the batches are stored. */
    lf_store *s2 = NULL;
    char err[512];
    assert_int_equal(lf_store_open(f->url, &s2, err, sizeof err), 0);
    async_seen b = {.last_pos = head_of(s2)};
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cond, NULL);
    async_call *more = calloc(50, sizeof *more);
    char nm[128];
    sname(nm, sizeof nm, "%s", "async-close");
    for (int i = 0; i < 50; i++) {
        more[i] = (async_call){.seen = &b, .tag = i, .stream = 0, .n = 1};
        snprintf(more[i].st, sizeof more[i].st, "%s", nm);
        snprintf(more[i].data[0], sizeof more[i].data[0], "{\"i\":%d}", i);
        more[i].e[0] = ev("AsyncTick", more[i].data[0]);
        assert_int_equal(lf_store_append_async(s2, more[i].st, i ? i : LF_EXPECT_NO_STREAM,
                                               more[i].e, 1, async_cb, &more[i]),
                         0);
    }
    lf_store_close(s2);
    assert_int_equal(b.calls, 50);
    assert_int_equal(b.failures, 0);
    assert_int_equal(b.order_errors, 0);
    assert_int_equal(version_of(s, nm), 50);
    free(more);
    free(calls);
    pthread_mutex_destroy(&a.mu);
    pthread_cond_destroy(&a.cond);
    pthread_mutex_destroy(&b.mu);
    pthread_cond_destroy(&b.cond);
}

/* The group commit delay (sqlite:PATH?commit_delay_us=N): a new leader
 * waits for the last group's appenders to queue again. With a long cap,
 * threads appending at once still each get their own versions, positions
 * stay contiguous, a lone appender still goes through, and the file is
 * PATH. */
#define DELAY_THREADS 8
#define DELAY_APPENDS 60

static void *delay_main(void *p)
{
    delay_arg *a = p;
    char st[64], data[64];
    sname(st, sizeof st, "delay-%d", a->id);
    for (int v = 0; v < DELAY_APPENDS; v++) {
        snprintf(data, sizeof data, "{\"t\":%d,\"v\":%d}", a->id, v + 1);
        lf_event_in e = ev("Tick", data);
        lf_append_result r;
        if (lf_store_append(a->s, st, v == 0 ? LF_EXPECT_NO_STREAM : v, &e, 1, &r) ||
            r.last_version != v + 1)
            a->errors++;
    }
    return NULL;
}

static void test_sqlite_commit_delay(void **state)
{
    (void)state;
    if (!is_sqlite()) skip();
    char base[1100], url[1200], err[512];
    next_url(base, sizeof base);
    lf_store *s = NULL;
    const char *bad[] = {"?commit_delay_us=",       "?commit_delay_us=abc", "?commit_delay_us=-1",
                         "?commit_delay_us=100001", "?commit_delay_us=5x",  "?fsync=off"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(url, sizeof url, "%s%s", base, bad[i]);
        err[0] = 0;
        assert_int_equal(lf_store_open(url, &s, err, sizeof err), LF_EINVAL);
        assert_non_null(strstr(err, bad[i] + 1));
        assert_int_equal(access(base + strlen("sqlite:"), F_OK), -1); /* nothing created */
    }
    snprintf(url, sizeof url, "%s?commit_delay_us=20000", base);
    assert_int_equal(lf_store_open(url, &s, err, sizeof err), 0);
    pthread_t th[DELAY_THREADS];
    delay_arg args[DELAY_THREADS];
    for (int i = 0; i < DELAY_THREADS; i++) {
        args[i] = (delay_arg){.s = s, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, delay_main, &args[i]), 0);
    }
    for (int i = 0; i < DELAY_THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].errors, 0);
    }
    /* Alone again: the leader may wait once (its last group was bigger),
     * then never (its last group is 1). */
    int64_t t0 = lf_mono_us();
    for (int i = 0; i < 20; i++) {
        lf_event_in e = ev("Lone", "{}");
        lf_append_result r;
        assert_int_equal(lf_store_append(s, "delay-lone", LF_EXPECT_ANY, &e, 1, &r), 0);
    }
    int64_t lone_ms = (lf_mono_us() - t0) / 1000;
    print_message("  20 lone appends after the threads: %lld ms\n", (long long)lone_ms);
    lf_store_close(s);

    /* The file is PATH (the option is not part of the name). */
    assert_int_equal(lf_store_open(base, &s, err, sizeof err), 0);
    int64_t want = DELAY_THREADS * DELAY_APPENDS + 20;
    assert_int_equal(head_of(s), want);
    lf_event_list l;
    lf_event_list_init(&l);
    assert_int_equal(lf_store_read_all(s, 0, (size_t)want + 10, &l), 0);
    assert_int_equal(l.n, (size_t)want);
    int64_t next_v[DELAY_THREADS] = {0};
    for (size_t i = 0; i < l.n; i++) {
        assert_int_equal(l.ev[i].position, (int64_t)i + 1);
        int t = -1, v = -1;
        if (sscanf(l.ev[i].data, "{\"t\":%d,\"v\":%d}", &t, &v) == 2) {
            assert_true(t >= 0 && t < DELAY_THREADS);
            assert_int_equal(v, ++next_v[t]);
            assert_int_equal(l.ev[i].version, v);
        }
    }
    for (int i = 0; i < DELAY_THREADS; i++)
        assert_int_equal(next_v[i], DELAY_APPENDS);
    lf_event_list_free(&l);
    lf_store_close(s);
}

/* Ids the store makes itself name their position: re-appending them is
 * recognised without an index, inventing one is refused; batches larger
 * than one row read back from any point. */
static void test_sqlite_generated_ids(void **state)
{
    (void)state;
    if (!is_sqlite()) skip();
    char url[1100];
    next_url(url, sizeof url);
    char err[512];
    lf_store *s;
    assert_int_equal(lf_store_open(url, &s, err, sizeof err), 0);
    lf_event_in e[3] = {ev("A", "{\"x\":1}"), ev("B", "{\"x\":2}"), ev("C", "{\"x\":3}")};
    lf_append_result r;
    assert_int_equal(lf_store_append(s, "gen", LF_EXPECT_NO_STREAM, e, 3, &r), 0);
    assert_int_equal(lf_store_append(s, "gen2", LF_EXPECT_NO_STREAM, e, 1, &r), 0);
    lf_event_list l;
    lf_event_list_init(&l);
    assert_int_equal(lf_store_read_stream(s, "gen", 1, 10, &l), 0);
    assert_int_equal(l.n, 3);
    lf_event_in again[3];
    for (int i = 0; i < 3; i++) {
        assert_true(lf_uuid_valid(l.ev[i].id));
        assert_int_equal(l.ev[i].id[14], '8'); /* UUID version 8 */
        again[i] = e[i];
        again[i].id = l.ev[i].id;
    }
    /* The whole batch again: a duplicate, at its stored positions. */
    assert_int_equal(lf_store_append(s, "gen", LF_EXPECT_ANY, again, 3, &r), 0);
    assert_int_equal(r.duplicate, 1);
    assert_int_equal(r.first_position, 1);
    assert_int_equal(r.last_position, 3);
    /* Part of it, or in another stream: LF_EEXIST. */
    assert_int_equal(lf_store_append(s, "gen", LF_EXPECT_ANY, again + 1, 1, &r), 0);
    assert_int_equal(r.duplicate, 1);
    assert_int_equal(r.first_position, 2);
    assert_int_equal(lf_store_append(s, "gen2", LF_EXPECT_ANY, again, 1, &r), LF_EEXIST);
    lf_event_in mixed[2] = {e[0], again[2]};
    assert_int_equal(lf_store_append(s, "gen", LF_EXPECT_ANY, mixed, 2, &r), LF_EEXIST);
    /* An id of this store's form naming a position it does not hold. */
    char fake[LF_UUID_LEN];
    snprintf(fake, sizeof fake, "%s", l.ev[0].id);
    memcpy(fake + 24, "0000000003e7", 12);
    lf_event_in f = e[0];
    f.id = fake;
    assert_int_equal(lf_store_append(s, "gen", LF_EXPECT_ANY, &f, 1, &r), LF_EINVAL);
    assert_non_null(strstr(lf_err_get(), "cannot be chosen by a client"));
    lf_event_list_free(&l);
    assert_int_equal(head_of(s), 4);

    /* 3,000 events in one append: several rows, read from anywhere. */
    enum { BIG = 3000 };
    lf_event_in *big = calloc(BIG, sizeof *big);
    char(*datas)[32] = calloc(BIG, 32);
    for (int i = 0; i < BIG; i++) {
        snprintf(datas[i], 32, "{\"i\":%d}", i);
        big[i] = ev("Big", datas[i]);
    }
    assert_int_equal(lf_store_append(s, "big", LF_EXPECT_NO_STREAM, big, BIG, &r), 0);
    assert_int_equal(r.first_position, 5);
    for (int from = 1; from <= BIG; from += 511) {
        lf_event_list_init(&l);
        assert_int_equal(lf_store_read_stream(s, "big", from, 700, &l), 0);
        size_t want = (size_t)(BIG - from + 1) < 700 ? (size_t)(BIG - from + 1) : 700;
        assert_int_equal(l.n, want);
        for (size_t k = 0; k < l.n; k++) {
            assert_int_equal(l.ev[k].version, from + (int64_t)k);
            assert_int_equal(l.ev[k].position, 4 + from + (int64_t)k);
            assert_string_equal(l.ev[k].data, datas[from - 1 + (int)k]);
        }
        lf_event_list_free(&l);
        lf_event_list_init(&l);
        assert_int_equal(lf_store_read_all(s, 3 + from, 3, &l), 0);
        assert_int_equal(l.n, 3);
        assert_int_equal(l.ev[0].position, 4 + from);
        assert_string_equal(l.ev[0].data, datas[from - 1]);
        lf_event_list_free(&l);
    }
    free(big);
    free(datas);
    lf_store_close(s);
}

/* A file written by the first store format (a row per event) is converted
 * when opened, and reads, idempotency and versions carry on. */
static void test_sqlite_format1_upgrade(void **state)
{
    (void)state;
    if (!is_sqlite()) skip();
    char url[1100];
    next_url(url, sizeof url);
    const char *path = url + strlen("sqlite:");
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(
            db,
            "PRAGMA journal_mode=WAL; PRAGMA application_id=1279675476; PRAGMA user_version=1;"
            "CREATE TABLE streams(sid INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
            " version INTEGER NOT NULL);"
            "CREATE TABLE events(position INTEGER PRIMARY KEY, sid INTEGER NOT NULL,"
            " version INTEGER NOT NULL, id BLOB NOT NULL, type TEXT NOT NULL, time INTEGER NOT "
            "NULL, data TEXT NOT NULL, meta TEXT NOT NULL);"
            "CREATE UNIQUE INDEX events_stream ON events(sid, version);"
            "CREATE UNIQUE INDEX events_id ON events(id);"
            "CREATE TRIGGER events_no_update BEFORE UPDATE ON events"
            " BEGIN SELECT RAISE(ABORT, 'events are immutable'); END;"
            "CREATE TRIGGER events_no_delete BEFORE DELETE ON events"
            " BEGIN SELECT RAISE(ABORT, 'events are immutable'); END;"
            "INSERT INTO streams VALUES(1, 'a', 4), (2, 'b', 1);"
            "INSERT INTO events VALUES"
            " (1, 1, 1, x'0190000000007000800000000000000a', 'T', 1000, '{\"n\":1}', '{}'),"
            " (2, 1, 2, x'0190000000007000800000000000000b', 'T', 1001, '{\"n\":2}', '{}'),"
            " (3, 1, 3, x'0190000000007000800000000000000c', 'U', 1002, '{\"n\":3}', '{\"m\":1}'),"
            " (4, 2, 1, x'0190000000007000800000000000000d', 'T', 1003, '{\"n\":4}', '{}'),"
            " (5, 1, 4, x'0190000000007000800000000000000e', 'T', 1004, '{\"n\":5}', '{}');",
            NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    char err[512];
    lf_store *s;
    assert_int_equal(lf_store_open(url, &s, err, sizeof err), 0);
    assert_int_equal(head_of(s), 5);
    assert_int_equal(version_of(s, "a"), 4);
    assert_int_equal(version_of(s, "b"), 1);
    lf_event_list l;
    lf_event_list_init(&l);
    assert_int_equal(lf_store_read_all(s, 0, 100, &l), 0);
    assert_int_equal(l.n, 5);
    for (size_t i = 0; i < 5; i++) {
        char want[16];
        snprintf(want, sizeof want, "{\"n\":%zu}", i + 1);
        assert_string_equal(l.ev[i].data, want);
        assert_int_equal(l.ev[i].position, (int64_t)i + 1);
        assert_int_equal(l.ev[i].time_ms, 1000 + (int64_t)i);
    }
    assert_string_equal(l.ev[0].id, "01900000-0000-7000-8000-00000000000a");
    assert_string_equal(l.ev[2].meta, "{\"m\":1}");
    assert_string_equal(l.ev[3].stream, "b");
    assert_int_equal(l.ev[4].version, 4);
    lf_event_list_free(&l);
    lf_event_list_init(&l);
    assert_int_equal(lf_store_read_stream(s, "a", 3, 100, &l), 0);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.ev[1].position, 5);
    lf_event_list_free(&l);
    /* Old ids are still known; versions and positions continue. */
    lf_event_in e = ev("T", "{\"n\":2}");
    e.id = "01900000-0000-7000-8000-00000000000b";
    lf_append_result r;
    assert_int_equal(lf_store_append(s, "a", LF_EXPECT_ANY, &e, 1, &r), 0);
    assert_int_equal(r.duplicate, 1);
    assert_int_equal(r.first_position, 2);
    e.id = NULL;
    assert_int_equal(lf_store_append(s, "a", 4, &e, 1, &r), 0);
    assert_int_equal(r.first_position, 6);
    assert_int_equal(r.last_version, 5);
    lf_store_close(s);
    /* Now a format 2 file: it opens as is. */
    assert_int_equal(lf_store_open(url, &s, err, sizeof err), 0);
    assert_int_equal(head_of(s), 6);
    lf_store_close(s);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 2);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void write_at(const char *path, off_t off, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, p, n, off), (ssize_t)n);
    close(fd);
}

/* Makes a closed store file with some pages of events. */
static void make_store(const char *url)
{
    char err[512];
    lf_store *s;
    assert_int_equal(lf_store_open(url, &s, err, sizeof err), 0);
    char data[300];
    memset(data, 0, sizeof data);
    snprintf(data, sizeof data, "{\"pad\":\"%0250d\"}", 7);
    lf_event_in e[100];
    for (int i = 0; i < 100; i++)
        e[i] = ev("Pad", data);
    for (int b = 0; b < 20; b++)
        assert_int_equal(lf_store_append(s, "pad", LF_EXPECT_ANY, e, 100, NULL), 0);
    lf_store_close(s);
}

static void expect_corrupt(const char *url, const char *word)
{
    char err[512] = "";
    lf_store *s = NULL;
    int rc = lf_store_open(url, &s, err, sizeof err);
    if (rc != LF_ECORRUPT) {
        lf_store_close(s);
        fail_msg("open of a bad file: rc %d (%s), want LF_ECORRUPT", rc, lf_strerror(rc));
    }
    assert_null(s);
    if (!strcasestr(err, word)) fail_msg("message '%s' does not say '%s'", err, word);
    print_message("  refused: %s\n", err);
}

static void test_sqlite_corrupt_and_foreign(void **state)
{
    (void)state;
    if (!is_sqlite()) skip();
    char url[1100];
    const char *path;

    /* Not SQLite at all. */
    next_url(url, sizeof url);
    path = url + 7;
    FILE *f = fopen(path, "w");
    for (int i = 0; i < 2000; i++)
        fputs("this is not a database. ", f);
    fclose(f);
    expect_corrupt(url, "not a lockerfleet event store");

    /* The header overwritten. */
    next_url(url, sizeof url);
    path = url + 7;
    make_store(url);
    char junk[100];
    memset(junk, 0x5a, sizeof junk);
    write_at(path, 0, junk, sizeof junk);
    expect_corrupt(url, "lockerfleet");

    /* B-tree pages in the middle overwritten. */
    next_url(url, sizeof url);
    path = url + 7;
    make_store(url);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    char *garbage = malloc(16384);
    for (int i = 0; i < 16384; i++)
        garbage[i] = (char)(i * 131 + 17);
    write_at(path, sb.st_size / 2 - 8192, garbage, 16384);
    write_at(path, 4096, garbage, 4096);
    free(garbage);
    expect_corrupt(url, "damaged");

    /* Truncated to half. */
    next_url(url, sizeof url);
    path = url + 7;
    make_store(url);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(truncate(path, sb.st_size / 2), 0);
    expect_corrupt(url, "damaged");

    /* A valid SQLite database of someone else. */
    next_url(url, sizeof url);
    path = url + 7;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db, "CREATE TABLE t(a); INSERT INTO t VALUES(1);", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    expect_corrupt(url, "not a lockerfleet event store");
    /* ... and it was left untouched. */
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 1);
    sqlite3_finalize(st);
    sqlite3_close(db);

    /* A bad URL. */
    char err[256];
    lf_store *s;
    assert_int_equal(lf_store_open("bogus:x", &s, err, sizeof err), LF_EINVAL);
    assert_non_null(strstr(err, "bogus:x"));
    assert_int_equal(lf_store_open("sqlite:", &s, err, sizeof err), LF_EINVAL);
}

/* ---- redis: ids the store generated ------------------------------------
 * The append script makes the ids of events that come without one: version
 * 8 UUIDs naming their position, kept in no index (and it skips the lookup
 * for a batch without client ids). Read back and appended again they are a
 * duplicate, mixed into a new batch or sent to another stream LF_EEXIST;
 * one of their form that names a position not holding it is refused. */
static void test_redis_generated_ids(void **state)
{
    if (strncmp(g_fixed_url, "redis://", 8) != 0) skip();
    lf_store *s = ((fixture *)*state)->s;
    char st[128], other[128];
    sname(st, sizeof st, "genid");
    sname(other, sizeof other, "genid-other");
    lf_event_in e[3] = {ev("A", "{\"x\":1}"), ev("B", "{\"x\":2}"), ev("C", "{\"x\":3}")};
    lf_append_result r1, r2;
    assert_int_equal(lf_store_append(s, st, LF_EXPECT_NO_STREAM, e, 3, &r1), 0);
    assert_int_equal(r1.duplicate, 0);
    lf_event_list l;
    lf_event_list_init(&l);
    read_whole_stream(s, st, 10, &l);
    assert_int_equal(l.n, 3);
    lf_event_in again[3];
    for (int i = 0; i < 3; i++) {
        assert_true(lf_uuid_valid(l.ev[i].id));
        assert_int_equal(l.ev[i].id[14], '8'); /* UUID version 8 */
        again[i] = e[i];
        again[i].id = l.ev[i].id;
    }
    /* upper case is the same id */
    char upper[LF_UUID_LEN];
    for (int i = 0; i < LF_UUID_LEN; i++)
        upper[i] = (char)toupper((unsigned char)l.ev[1].id[i]);
    lf_event_in up = e[1];
    up.id = upper;
    assert_int_equal(lf_store_append(s, st, LF_EXPECT_ANY, &up, 1, &r2), 0);
    assert_int_equal(r2.duplicate, 1);
    assert_int_equal(r2.first_position, r1.first_position + 1);
    assert_int_equal(lf_store_append(s, st, LF_EXPECT_ANY, again, 3, &r2), 0);
    assert_int_equal(r2.duplicate, 1);
    assert_int_equal(r2.first_position, r1.first_position);
    assert_int_equal(r2.last_position, r1.last_position);
    /* a new event (no id) with a stored one, in either order */
    lf_event_in mixed[2] = {e[0], again[1]};
    assert_int_equal(lf_store_append(s, st, LF_EXPECT_ANY, mixed, 2, &r2), LF_EEXIST);
    lf_event_in mixed2[2] = {again[2], e[0]};
    assert_int_equal(lf_store_append(s, st, LF_EXPECT_ANY, mixed2, 2, &r2), LF_EEXIST);
    assert_int_equal(lf_store_append(s, other, LF_EXPECT_ANY, again, 1, &r2), LF_EEXIST);
    assert_int_equal(version_of(s, st), 3);
    assert_int_equal(version_of(s, other), 0);
    /* an id of the store's form naming a position that does not hold it:
     * one past the head, and one of another event */
    char fake[LF_UUID_LEN];
    snprintf(fake, sizeof fake, "%s", l.ev[0].id);
    snprintf(fake + 24, 13, "%012llx", (unsigned long long)(head_of(s) + 1));
    lf_event_in f = e[0];
    f.id = fake;
    assert_int_equal(lf_store_append(s, st, LF_EXPECT_ANY, &f, 1, &r2), LF_EINVAL);
    assert_non_null(strstr(lf_err_get(), "cannot be chosen by a client"));
    snprintf(fake, sizeof fake, "%s", l.ev[1].id);
    memcpy(fake, fake[0] == '0' ? "1" : "0", 1); /* another time, same position */
    assert_int_equal(lf_store_append(s, st, LF_EXPECT_ANY, &f, 1, &r2), LF_EINVAL);
    assert_int_equal(version_of(s, st), 3);
    /* a batch of new events only is stored */
    assert_int_equal(lf_store_append(s, st, 3, e, 2, &r2), 0);
    assert_int_equal(r2.duplicate, 0);
    assert_int_equal(version_of(s, st), 5);
    /* a client's id and generated ones in one batch: only the client's is
     * indexed, all are found again */
    char mine[LF_UUID_LEN];
    lf_uuid_v7(mine);
    lf_event_in part[3] = {e[0], e[1], e[2]};
    part[1].id = mine;
    assert_int_equal(lf_store_append(s, st, 5, part, 3, &r1), 0);
    lf_event_list_free(&l);
    lf_event_list_init(&l);
    assert_int_equal(lf_store_read_stream(s, st, 6, 10, &l), 0);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.ev[1].id, mine);
    for (int i = 0; i < 3; i++) {
        part[i].id = l.ev[i].id;
        assert_int_equal(l.ev[i].position, r1.first_position + i);
    }
    assert_int_equal(lf_store_append(s, st, LF_EXPECT_ANY, part, 3, &r2), 0);
    assert_int_equal(r2.duplicate, 1);
    assert_int_equal(r2.first_position, r1.first_position);
    assert_int_equal(version_of(s, st), 8);
    lf_event_list_free(&l);
}

/* ---- redis: a store written by an older build --------------------------
 * Older builds kept one stream-key entry per event ("<version>-0", p) and
 * id index values "<position>:<version>:<stream>"; the current one writes
 * one entry per append (p, n) and "<position>". A store holding both must
 * read, version-check and deduplicate as one. */
#ifdef LF_HAVE_REDIS
static void redis_ok(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (!r || r->type == REDIS_REPLY_ERROR) fail_msg("redis: %s", r ? r->str : c->errstr);
    freeReplyObject(r);
}

/* A direct connection to this run's redis server, or NULL when its URL
 * gives no host:port (the test skips). */
static redisContext *redis_direct(void)
{
    char host[256];
    int port = 0;
    const char *hp = g_fixed_url + 8;
    if (strchr(hp, '@')) hp = strchr(hp, '@') + 1;
    if (sscanf(hp, "%255[^:/]:%d", host, &port) != 2) return NULL;
    redisContext *c = redisConnect(host, port);
    assert_true(c && !c->err);
    return c;
}
#endif

static void test_redis_older_layout(void **state)
{
    (void)state;
    if (strncmp(g_fixed_url, "redis://", 8) != 0 || strchr(g_fixed_url, '?')) skip();
#ifndef LF_HAVE_REDIS
    skip();
#else
    redisContext *c = redis_direct();
    if (!c) skip();
    char pre[64], id[3][LF_UUID_LEN];
    snprintf(pre, sizeof pre, "%sold", g_prefix);
    for (int i = 0; i < 3; i++)
        lf_uuid_v7(id[i]);
    /* stream "a": versions 1..3 at positions 1..3, written the old way */
    for (int i = 0; i < 3; i++) {
        redis_ok(c, "XADD {%s}:log %d-0 s a v %d i %s t Old tm 1000 d {\"k\":%d} m {}", pre, i + 1,
                 i + 1, id[i], i);
        redis_ok(c, "XADD {%s}:s:a %d-0 p %d", pre, i + 1, i + 1);
        redis_ok(c, "HSET {%s}:ids %s %d:%d:a", pre, id[i], i + 1, i + 1);
    }
    redis_ok(c, "SET {%s}:head 3", pre);
    char url[1200];
    snprintf(url, sizeof url, "%s?prefix=%s", g_fixed_url, pre);
    lf_store *s = NULL;
    char err[256];
    assert_int_equal(lf_store_open(url, &s, err, sizeof err), 0);
    assert_int_equal(version_of(s, "a"), 3);
    assert_int_equal(head_of(s), 3);

    lf_event_in e[2] = {ev("New", "{\"k\":3}"), ev("New", "{\"k\":4}")};
    lf_append_result r;
    assert_int_equal(lf_store_append(s, "a", 2, e, 2, &r), LF_ECONFLICT);
    assert_int_equal(lf_store_append(s, "a", 3, e, 2, &r), 0);
    assert_int_equal(r.first_position, 4);
    assert_int_equal(r.last_version, 5);
    assert_int_equal(version_of(s, "a"), 5);

    lf_event_list l;
    lf_event_list_init(&l);
    assert_int_equal(lf_store_read_stream(s, "a", 1, 100, &l), 0);
    assert_int_equal(l.n, 5);
    /* the old store got an id tag when first opened by this build, and
     * its new events ids of that form */
    assert_int_equal(l.ev[3].id[14], '8');
    assert_string_equal(l.ev[0].id, id[0]);
    for (size_t i = 0; i < l.n; i++) {
        assert_int_equal(l.ev[i].version, (int64_t)i + 1);
        assert_int_equal(l.ev[i].position, (int64_t)i + 1);
        assert_string_equal(l.ev[i].type, i < 3 ? "Old" : "New");
    }
    assert_string_equal(l.ev[1].id, id[1]);
    lf_event_list_clear(&l);
    /* from the middle of the old entries, and from the middle of a batch */
    assert_int_equal(lf_store_read_stream(s, "a", 3, 2, &l), 0);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.ev[0].version, 3);
    assert_int_equal(l.ev[1].version, 4);
    lf_event_list_clear(&l);
    assert_int_equal(lf_store_read_stream(s, "a", 5, 10, &l), 0);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.ev[0].position, 5);
    lf_event_list_clear(&l);
    /* read_all over entries of both layouts (one field each, then the
     * packed body) */
    assert_int_equal(lf_store_read_all(s, 0, 100, &l), 0);
    assert_int_equal(l.n, 5);
    for (size_t i = 0; i < l.n; i++) {
        char want[32];
        snprintf(want, sizeof want, "{\"k\":%zu}", i);
        assert_string_equal(l.ev[i].data, want);
        assert_string_equal(l.ev[i].meta, "{}");
        assert_string_equal(l.ev[i].stream, "a");
        assert_int_equal(l.ev[i].position, (int64_t)i + 1);
        if (i < 3)
            assert_int_equal(l.ev[i].time_ms, 1000);
        else
            assert_true(l.ev[i].time_ms > 1000);
    }
    lf_event_list_free(&l);

    /* old ids: a retry is a duplicate with the stored positions; the same
     * id elsewhere or out of order is refused */
    lf_event_in d[2] = {ev("Old", "{}"), ev("Old", "{}")};
    d[0].id = id[1];
    d[1].id = id[2];
    assert_int_equal(lf_store_append(s, "a", LF_EXPECT_ANY, d, 2, &r), 0);
    assert_true(r.duplicate);
    assert_int_equal(r.first_position, 2);
    assert_int_equal(r.last_position, 3);
    assert_int_equal(r.last_version, 3);
    assert_int_equal(lf_store_append(s, "b", LF_EXPECT_ANY, d, 1, &r), LF_EEXIST);
    d[0].id = id[2];
    d[1].id = id[1];
    assert_int_equal(lf_store_append(s, "a", LF_EXPECT_ANY, d, 2, &r), LF_EEXIST);
    assert_int_equal(head_of(s), 5);
    lf_store_close(s);
    redis_ok(c, "DEL {%s}:log {%s}:s:a {%s}:ids {%s}:head", pre, pre, pre, pre);
    redisFree(c);
#endif
}

/* ---- redis: a damaged id tag is refused -------------------------------- */
#ifdef LF_HAVE_NATS
/* This run's NATS servers and stream name, from its store URL
 * ("nats://a,nats://b/STREAM?replicas=3"). */
static void nats_parts(char *servers, size_t slen, char *stream, size_t stlen)
{
    char u[1024];
    snprintf(u, sizeof u, "%s", g_fixed_url);
    char *q = strchr(u, '?');
    if (q) *q = '\0';
    snprintf(stream, stlen, "LF");
    char *last = strrchr(u, '/');
    if (last && last > u && last[-1] != '/' && !strchr(last, ':')) {
        snprintf(stream, stlen, "%s", last + 1);
        *last = '\0';
    }
    snprintf(servers, slen, "%s", u);
}

static int64_t nats_consumers(jsCtx *js, const char *stream)
{
    jsStreamInfo *si = NULL;
    assert_int_equal(js_GetStreamInfo(&si, js, stream, NULL, NULL), NATS_OK);
    int64_t n = si->State.Consumers;
    jsStreamInfo_Destroy(si);
    return n;
}

/* Reads everything after `after` with read_all(max 7): positions strictly
 * increasing, returns the count and the last position in *after. */
static size_t read_all_by_7(lf_store *s, int64_t *after, const char *prefix)
{
    lf_event_list l;
    lf_event_list_init(&l);
    size_t n = 0;
    for (;;) {
        assert_int_equal(lf_store_read_all(s, *after, 7, &l), 0);
        if (l.n == 0) break;
        assert_true(l.n <= 7);
        for (size_t i = 0; i < l.n; i++) {
            assert_true(l.ev[i].position > *after);
            *after = l.ev[i].position;
            assert_int_equal(strncmp(l.ev[i].stream, prefix, strlen(prefix)), 0);
        }
        n += l.n;
        lf_event_list_clear(&l);
    }
    lf_event_list_free(&l);
    return n;
}

/* Appends `count` batches of 1, 5 and 100 events in turn to three streams
 * "<prefix>-0..2"; returns the events appended. */
static size_t append_mixed(lf_store *s, const char *prefix, int count)
{
    static lf_event_in evs[100];
    for (int i = 0; i < 100; i++)
        evs[i] = ev("Pulled", "{\"k\":1}");
    const size_t sizes[3] = {1, 5, 100};
    size_t n = 0;
    char st[96];
    lf_append_result r;
    for (int i = 0; i < count; i++) {
        snprintf(st, sizeof st, "%s-%d", prefix, i % 3);
        assert_int_equal(lf_store_append(s, st, LF_EXPECT_ANY, evs, sizes[i % 3], &r), 0);
        n += sizes[i % 3];
    }
    return n;
}
#endif

/* NATS: a reader that comes back reads through a pull consumer of its own
 * (docs/ARCHITECTURE.md); across messages it returns in parts, with writes
 * by another handle, and after its consumer is deleted behind its back. */
static void test_nats_pull_consumer(void **state)
{
    (void)state;
    if (strncmp(g_fixed_url, "nats://", 7) != 0) skip();
#ifndef LF_HAVE_NATS
    skip();
#else
    char servers[1024], stream[64], err[256], prefix[64];
    nats_parts(servers, sizeof servers, stream, sizeof stream);
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    assert_int_equal(natsConnection_ConnectTo(&nc, servers), NATS_OK);
    assert_int_equal(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
    lf_store *a = NULL, *b = NULL;
    assert_int_equal(lf_store_open(g_fixed_url, &a, err, sizeof err), 0);
    assert_int_equal(lf_store_open(g_fixed_url, &b, err, sizeof err), 0);
    int64_t before = nats_consumers(js, stream);
    snprintf(prefix, sizeof prefix, "%s-pull", g_prefix);
    int64_t after = head_of(a);
    size_t want = append_mixed(a, prefix, 30);
    /* b: in parts of 7 across messages of 1, 5 and 100 events */
    assert_int_equal(read_all_by_7(b, &after, prefix), want);
    assert_true(nats_consumers(js, stream) > before); /* it read through one */

    /* more from a, which b hears of only through the server */
    want = append_mixed(a, prefix, 12);
    assert_int_equal(read_all_by_7(b, &after, prefix), want);

    /* its consumers deleted behind its back: b still reads everything */
    jsConsumerNamesList *names = NULL;
    assert_int_equal(js_ConsumerNames(&names, js, stream, NULL, NULL), NATS_OK);
    for (int i = 0; i < names->Count; i++)
        js_DeleteConsumer(js, stream, names->List[i], NULL, NULL);
    jsConsumerNamesList_Destroy(names);
    want = append_mixed(a, prefix, 9);
    assert_int_equal(read_all_by_7(b, &after, prefix), want);
    assert_int_equal(after, head_of(a));

    /* closing deletes its consumers */
    lf_store_close(b);
    assert_true(nats_consumers(js, stream) <= before);
    lf_store_close(a);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
#endif
}

static void test_redis_damaged_tag(void **state)
{
    (void)state;
    if (strncmp(g_fixed_url, "redis://", 8) != 0 || strchr(g_fixed_url, '?')) skip();
#ifndef LF_HAVE_REDIS
    skip();
#else
    redisContext *c = redis_direct();
    if (!c) skip();
    char pre[64], url[1200], err[256];
    lf_store *s = NULL;
    const char *bad[] = {"bogus", "-1", "67108864"};
    for (int i = 0; i < 3; i++) {
        snprintf(pre, sizeof pre, "%stag%d", g_prefix, i);
        redis_ok(c, "HSET {%s}:meta id_tag %s", pre, bad[i]);
        snprintf(url, sizeof url, "%s?prefix=%s", g_fixed_url, pre);
        assert_int_equal(lf_store_open(url, &s, err, sizeof err), LF_ECORRUPT);
        assert_non_null(strstr(err, "id_tag is damaged"));
    }
    /* the largest tag is fine */
    snprintf(pre, sizeof pre, "%stag3", g_prefix);
    redis_ok(c, "HSET {%s}:meta id_tag 67108863", pre);
    snprintf(url, sizeof url, "%s?prefix=%s", g_fixed_url, pre);
    assert_int_equal(lf_store_open(url, &s, err, sizeof err), 0);
    lf_event_in e = ev("A", "{}");
    lf_append_result r;
    assert_int_equal(lf_store_append(s, "t", LF_EXPECT_NO_STREAM, &e, 1, &r), 0);
    lf_event_list l;
    lf_event_list_init(&l);
    assert_int_equal(lf_store_read_stream(s, "t", 1, 10, &l), 0);
    assert_int_equal(l.n, 1);
    assert_memory_equal(l.ev[0].id + 14, "8fff-bfff", 9);
    e.id = l.ev[0].id;
    assert_int_equal(lf_store_append(s, "t", LF_EXPECT_ANY, &e, 1, &r), 0);
    assert_int_equal(r.duplicate, 1);
    lf_event_list_free(&l);
    lf_store_close(s);
    redisFree(c);
#endif
}

/* ---- main --------------------------------------------------------------- */
static void rm_tree(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void)
{
    if (lf_init()) return 1;
    const char *url = getenv("LF_TEST_STORE_URL");
    const char *kind = getenv("LF_TEST_STORE");
    if (url && *url) {
        snprintf(g_fixed_url, sizeof g_fixed_url, "%s", url);
    } else if (kind && *kind && strcmp(kind, "sqlite") != 0) {
        fprintf(stderr, "LF_TEST_STORE=%s needs LF_TEST_STORE_URL (see docs/CONTRIBUTING.md)\n",
                kind);
        return 2;
    } else {
        snprintf(g_dir, sizeof g_dir, "%s/lfconf.XXXXXX",
                 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (!mkdtemp(g_dir)) {
            perror("mkdtemp");
            return 1;
        }
    }
    snprintf(g_prefix, sizeof g_prefix, "c%08x", lf_random_u32());
    printf("store conformance: %s (stream prefix %s)\n",
           g_fixed_url[0] ? g_fixed_url : "sqlite, a fresh file per test", g_prefix);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_version_conflicts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_stream_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_streams_threads_with_subscriber, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subscription_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_any_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_async, setup, teardown),
        cmocka_unit_test(test_sqlite_reopen),
        cmocka_unit_test(test_sqlite_commit_delay),
        cmocka_unit_test(test_sqlite_generated_ids),
        cmocka_unit_test(test_sqlite_format1_upgrade),
        cmocka_unit_test(test_sqlite_corrupt_and_foreign),
        cmocka_unit_test(test_redis_older_layout),
        cmocka_unit_test_setup_teardown(test_redis_generated_ids, setup, teardown),
        cmocka_unit_test(test_redis_damaged_tag),
        cmocka_unit_test(test_nats_pull_consumer),
    };
    int failed = cmocka_run_group_tests_name("store_conformance", tests, NULL, NULL);
    if (g_dir[0]) rm_tree(g_dir);
    return failed ? 1 : 0;
}
