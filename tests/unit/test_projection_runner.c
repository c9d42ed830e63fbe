/*
 * test_projection_runner.c — the projection runner: catch-up then live,
 * checkpoint with the rows, wait for a position, rebuild while live with
 * an equal digest, version bump rebuilds at start, a failing apply stops
 * only its projection; the end hook (sums kept in memory per batch) and
 * the revenue projection built on it; projections sharing reads of the
 * log still see every event once and in order.
 */
#include "projection/projection.h"

#include <stdint.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int count_apply(sqlite3 *db, const lf_event *ev, void *ctx)
{
    (void)ctx;
    if (strcmp(ev->type, "Tick") != 0) return 0;
    sqlite3_stmt *st = lf_projection_stmt(db, "INSERT INTO ticks(stream, n) VALUES (?, 1)"
                                              " ON CONFLICT(stream) DO UPDATE SET n = n + 1");
    if (!st) return LF_EIO;
    sqlite3_bind_text(st, 1, ev->stream, -1, SQLITE_STATIC);
    return sqlite3_step(st) == SQLITE_DONE ? 0 : LF_EIO;
}

static int fail_apply(sqlite3 *db, const lf_event *ev, void *ctx)
{
    (void)db;
    (void)ctx;
    return strcmp(ev->type, "Poison") == 0 ? LF_EINVAL : 0;
}

static const char schema[] = "CREATE TABLE ticks(stream TEXT PRIMARY KEY, n INTEGER NOT NULL);";
static const lf_projection_def counter_v1 = {"counter", 1, schema, count_apply, NULL, NULL};
static const lf_projection_def counter_v2 = {"counter", 2, schema, count_apply, NULL, NULL};
static const lf_projection_def fragile = {"fragile",  1,    "CREATE TABLE x(a);",
                                          fail_apply, NULL, NULL};

struct fx {
    char dir[64];
    lf_store *st;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/lf-proj-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char url[128], err[256];
    snprintf(url, sizeof url, "sqlite:%s/events.db", f->dir);
    assert_int_equal(lf_store_open(url, &f->st, err, sizeof err), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    lf_store_close(f->st);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static int64_t append_ticks(lf_store *st, const char *stream, int n)
{
    lf_append_result r = {0};
    for (int i = 0; i < n; i++) {
        lf_event_in ev = {.type = "Tick", .data = "{}"};
        assert_int_equal(lf_store_append(st, stream, LF_EXPECT_ANY, &ev, 1, &r), 0);
    }
    return r.last_position;
}

static int64_t ticks(lf_projections *p, const char *stream)
{
    sqlite3 *db = lf_projection_reader(p, "counter");
    assert_non_null(db);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT n FROM ticks WHERE stream = ?", -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, stream, -1, SQLITE_STATIC);
    int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    lf_projection_reader_put(p, "counter", db);
    return n;
}

static json_t *status_of(lf_projections *p, const char *name)
{
    json_t *all = lf_projections_status(p), *v, *out = NULL;
    size_t i;
    json_array_foreach(all, i, v) if (strcmp(json_string_value(json_object_get(v, "name")), name) ==
                                      0) out = json_incref(v);
    json_decref(all);
    return out;
}

static int64_t status_int(lf_projections *p, const char *name, const char *key)
{
    json_t *s = status_of(p, name);
    int64_t v = json_integer_value(json_object_get(s, key));
    json_decref(s);
    return v;
}

static void test_catch_up_then_live(void **state)
{
    struct fx *f = *state;
    append_ticks(f->st, "a", 100);
    const lf_projection_def *defs[] = {&counter_v1};
    lf_projections *p = lf_projections_start(f->st, f->dir, defs, 1);
    assert_non_null(p);
    assert_int_equal(lf_projections_wait(p, "counter", 100, 20000), 0);
    assert_int_equal(ticks(p, "a"), 100);
    int64_t last = append_ticks(f->st, "b", 7);
    assert_int_equal(lf_projections_wait(p, "counter", last, 20000), 0);
    assert_int_equal(ticks(p, "b"), 7);
    assert_int_equal(lf_projections_wait(p, "counter", last + 1, 100), LF_ETIMEDOUT);
    assert_int_equal(lf_projections_wait(p, "nope", 1, 100), LF_ENOTFOUND);
    lf_projections_stop(p);
    /* Restart: resumes from the checkpoint, no event applied twice. */
    last = append_ticks(f->st, "a", 5);
    p = lf_projections_start(f->st, f->dir, defs, 1);
    assert_int_equal(lf_projections_wait(p, "counter", last, 20000), 0);
    assert_int_equal(ticks(p, "a"), 105);
    lf_projections_stop(p);
}

/* Order and exactly-once as a projection sees them (one per thread). */
struct seen {
    int64_t last, n, bad;
};

static int seen_apply(sqlite3 *db, const lf_event *ev, void *ctx)
{
    (void)db;
    struct seen *s = ctx;
    if (ev->position != s->last + 1) s->bad++; /* the sqlite store has no gaps */
    s->last = ev->position;
    s->n++;
    return 0;
}

static void *append_live(void *arg)
{
    lf_store *st = arg;
    for (int b = 0; b < 60; b++) {
        lf_event_in ev[50];
        for (int i = 0; i < 50; i++)
            ev[i] = (lf_event_in){.type = "Tick", .data = "{}"};
        assert_int_equal(lf_store_append(st, "live", LF_EXPECT_ANY, ev, 50, NULL), 0);
    }
    return NULL;
}

/* Three projections share their reads of the log (the runner's feed), in
 * catch-up and live: each still sees every event once, in order. */
static void test_shared_feed(void **state)
{
    struct fx *f = *state;
    int64_t first = append_ticks(f->st, "warm", 1);
    struct seen s[3] = {{0}};
    for (int i = 0; i < 3; i++)
        s[i].last = first - 1;
    const lf_projection_def d[3] = {{"one", 1, schema, seen_apply, &s[0], NULL},
                                    {"two", 1, schema, seen_apply, &s[1], NULL},
                                    {"three", 1, schema, seen_apply, &s[2], NULL}};
    const lf_projection_def *defs[] = {&d[0], &d[1], &d[2]};
    lf_event_in ev[1000];
    for (int i = 0; i < 1000; i++)
        ev[i] = (lf_event_in){.type = "Tick", .data = "{\"k\":1}"};
    /* "one" first runs alone over part of the backlog: the others then
     * start behind it and it resumes in the middle of their reads. */
    for (int b = 0; b < 5; b++)
        assert_int_equal(lf_store_append(f->st, "backlog", LF_EXPECT_ANY, ev, 999, NULL), 0);
    lf_projections *p = lf_projections_start(f->st, f->dir, defs, 1);
    assert_non_null(p);
    assert_int_equal(lf_projections_wait(p, "one", first + 5 * 999, 20000), 0);
    lf_projections_stop(p);
    for (int b = 0; b < 4; b++)
        assert_int_equal(lf_store_append(f->st, "backlog", LF_EXPECT_ANY, ev, 1000, NULL), 0);
    p = lf_projections_start(f->st, f->dir, defs, 3);
    assert_non_null(p);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, append_live, f->st), 0);
    pthread_join(th, NULL);
    int64_t head = 0;
    assert_int_equal(lf_store_head(f->st, &head), 0);
    assert_int_equal(head, first + 5 * 999 + 4000 + 3000);
    for (int i = 0; i < 3; i++)
        assert_int_equal(lf_projections_wait(p, d[i].name, head, 20000), 0);
    int64_t reads = 0, hits = 0;
    lf_projections_feed_stats(p, &reads, &hits);
    lf_projections_stop(p);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(s[i].bad, 0);
        assert_int_equal(s[i].n, head - first + 1);
        assert_int_equal(s[i].last, head);
    }
    /* The backlog is 5 batches for "two" and "three": read once, taken by
     * the other. */
    assert_true(hits >= 5);
}

static int follow_handler(const lf_event *ev, void *ctx)
{
    struct seen *s = ctx;
    if (ev->position != s->last + 1) s->bad++;
    s->last = ev->position;
    s->n++;
    return s->n == 40; /* stop after 40 events */
}

/* The hub tells the runner what its appends published; events another
 * writer appends (no such call) still reach projections and followers. */
static void test_published_gate_and_followers(void **state)
{
    struct fx *f = *state;
    struct seen s = {0}, fs = {0}, fs2 = {0};
    const lf_projection_def d = {"gated", 1, schema, seen_apply, &s, NULL};
    const lf_projection_def *defs[] = {&d};
    lf_projections *p = lf_projections_start(f->st, f->dir, defs, 1);
    assert_non_null(p);
    lf_projection_follower *fo = lf_projections_follow(p, 0, follow_handler, &fs);
    lf_projection_follower *fo2 = lf_projections_follow(p, 10, follow_handler, &fs2);
    fs2.last = 10;
    assert_non_null(fo);
    assert_non_null(fo2);
    assert_null(lf_projections_follow(p, -1, follow_handler, &fs));
    int64_t last = append_ticks(f->st, "own", 20);
    lf_projections_published(p, last);
    assert_int_equal(lf_projections_wait(p, "gated", last, 20000), 0);
    last = append_ticks(f->st, "foreign", 30); /* never published */
    assert_int_equal(lf_projections_wait(p, "gated", last, 20000), 0);
    assert_int_equal(s.n, 50);
    assert_int_equal(s.bad, 0);
    for (int i = 0; i < 400 && (lf_projection_follower_position(fo) < 40 ||
                                lf_projection_follower_position(fo2) < 50);
         i++)
        usleep(50000);
    /* fo stopped itself at its 40th event; fo2 started after 10 */
    assert_int_equal(lf_projection_follower_position(fo), 40);
    assert_int_equal(fs.n, 40);
    assert_int_equal(fs.bad, 0);
    assert_int_equal(lf_projection_follower_position(fo2), 50);
    assert_int_equal(fs2.n, 40);
    assert_int_equal(fs2.bad, 0);
    lf_projection_follower_stop(fo);
    lf_projection_follower_stop(fo2);
    lf_projection_follower_stop(NULL);
    lf_projections_stop(p);
}

/* Under a steady stream of appends a live projection pauses between
 * batches (LIVE_COALESCE_MS, 25 ms); a reader waiting for its own write
 * must not sit out that pause: lf_projections_wait ends it, also when the
 * reader only looks (timeout 0, pool mode) and polls again. */
struct stream_arg {
    lf_store *st;
    lf_projections *p;
    volatile int stop;
};

static void *steady_appends(void *arg)
{
    struct stream_arg *a = arg;
    while (!a->stop) {
        lf_projections_published(a->p, append_ticks(a->st, "steady", 1));
        usleep(1000);
    }
    return NULL;
}

static int cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

static void test_reader_ends_pause(void **state)
{
    struct fx *f = *state;
    const lf_projection_def *defs[] = {&counter_v1};
    lf_projections *p = lf_projections_start(f->st, f->dir, defs, 1);
    assert_non_null(p);
    struct stream_arg a = {f->st, p, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, steady_appends, &a), 0);
    usleep(200000); /* the live thread is busy: it pauses between batches */
    enum { N = 21 };
    int64_t waited[2][N];
    for (int mode = 0; mode < 2; mode++)
        for (int i = 0; i < N; i++) {
            int64_t pos = append_ticks(f->st, "mine", 1);
            lf_projections_published(p, pos);
            int64_t t0 = lf_mono_us();
            if (mode == 0) {
                assert_int_equal(lf_projections_wait(p, "counter", pos, 20000), 0);
            } else {
                while (lf_projections_wait(p, "counter", pos, 0) == LF_ETIMEDOUT)
                    usleep(500); /* pool mode: look, defer, look again */
                assert_true(lf_mono_us() - t0 < 20000000);
            }
            waited[mode][i] = lf_mono_us() - t0;
            usleep(3000);
        }
    a.stop = 1;
    pthread_join(th, NULL);
    for (int mode = 0; mode < 2; mode++) {
        qsort(waited[mode], N, sizeof waited[mode][0], cmp_i64);
        /* without the wake-up the median is about half the pause (12 ms) */
        printf("reader waited (%s): median %.1f ms, max %.1f ms\n", mode ? "polling" : "blocking",
               (double)waited[mode][N / 2] / 1000.0, (double)waited[mode][N - 1] / 1000.0);
        assert_true(waited[mode][N / 2] < 8000);
    }
    lf_projections_stop(p);
}

static void test_rebuild_while_live(void **state)
{
    struct fx *f = *state;
    append_ticks(f->st, "a", 300);
    const lf_projection_def *defs[] = {&counter_v1};
    lf_projections *p = lf_projections_start(f->st, f->dir, defs, 1);
    assert_int_equal(lf_projections_wait(p, "counter", 300, 20000), 0);
    char before[65], after[65];
    assert_int_equal(lf_projection_digest(p, "counter", before), 0);
    assert_int_equal(status_int(p, "counter", "generation"), 1);
    assert_int_equal(lf_projections_rebuild(p, "counter"), 0);
    assert_int_equal(lf_projections_rebuild(p, "nope"), LF_ENOTFOUND);
    /* Appends during the rebuild must land in the swapped-in file too. */
    int64_t last = append_ticks(f->st, "c", 50);
    for (int i = 0; i < 400 && status_int(p, "counter", "generation") < 2; i++)
        lf_sleep_ms(50);
    assert_int_equal(status_int(p, "counter", "generation"), 2);
    assert_int_equal(lf_projections_wait(p, "counter", last, 20000), 0);
    assert_int_equal(ticks(p, "a"), 300);
    assert_int_equal(ticks(p, "c"), 50);
    lf_projections_stop(p);
    /* A rebuilt-from-scratch copy (offline) has the same digest. */
    p = lf_projections_start(f->st, f->dir, defs, 1);
    assert_int_equal(lf_projections_wait(p, "counter", last, 20000), 0);
    assert_int_equal(lf_projection_digest(p, "counter", before), 0);
    lf_projections_stop(p);
    assert_int_equal(lf_projection_rebuild_offline(f->st, f->dir, &counter_v1), 0);
    p = lf_projections_start(f->st, f->dir, defs, 1);
    assert_int_equal(lf_projection_digest(p, "counter", after), 0);
    assert_string_equal(before, after);
    assert_int_equal(status_int(p, "counter", "generation"), 3);
    lf_projections_stop(p);
}

static void test_version_bump_rebuilds(void **state)
{
    struct fx *f = *state;
    int64_t last = append_ticks(f->st, "a", 40);
    const lf_projection_def *v1[] = {&counter_v1}, *v2[] = {&counter_v2};
    lf_projections *p = lf_projections_start(f->st, f->dir, v1, 1);
    assert_int_equal(lf_projections_wait(p, "counter", last, 20000), 0);
    lf_projections_stop(p);
    p = lf_projections_start(f->st, f->dir, v2, 1);
    assert_non_null(p);
    for (int i = 0; i < 400 && status_int(p, "counter", "generation") < 2; i++)
        lf_sleep_ms(50);
    assert_int_equal(status_int(p, "counter", "generation"), 2);
    assert_int_equal(lf_projections_wait(p, "counter", last, 20000), 0);
    assert_int_equal(ticks(p, "a"), 40);
    lf_projections_stop(p);
}

static void test_failure_is_contained(void **state)
{
    struct fx *f = *state;
    append_ticks(f->st, "a", 3);
    lf_event_in poison = {.type = "Poison", .data = "{}"};
    assert_int_equal(lf_store_append(f->st, "z", LF_EXPECT_ANY, &poison, 1, NULL), 0);
    int64_t last = append_ticks(f->st, "a", 3);
    const lf_projection_def *defs[] = {&counter_v1, &fragile};
    lf_projections *p = lf_projections_start(f->st, f->dir, defs, 2);
    assert_int_equal(lf_projections_wait(p, "counter", last, 20000), 0);
    assert_int_equal(ticks(p, "a"), 6);
    json_t *s = NULL;
    for (int i = 0; i < 200; i++) {
        json_decref(s);
        s = status_of(p, "fragile");
        if (strcmp(json_string_value(json_object_get(s, "state")), "failed") == 0) break;
        lf_sleep_ms(50);
    }
    assert_string_equal(json_string_value(json_object_get(s, "state")), "failed");
    assert_int_equal(json_integer_value(json_object_get(s, "position")), 3);
    assert_non_null(strstr(json_string_value(json_object_get(s, "error")), "Poison"));
    json_decref(s);
    lf_projections_stop(p);
}

/* A projection that counts Ticks in memory and writes the count in end():
 * a Poison event fails its batch, whose buffered count must be dropped. */
static __thread int64_t buffered;

static int buffer_apply(sqlite3 *db, const lf_event *ev, void *ctx)
{
    (void)db;
    (void)ctx;
    if (strcmp(ev->type, "Poison") == 0) return LF_EINVAL;
    if (strcmp(ev->type, "Tick") == 0) buffered++;
    return 0;
}

static int buffer_end(sqlite3 *db, void *ctx, int commit)
{
    (void)ctx;
    int64_t n = buffered;
    buffered = 0;
    if (!commit || n == 0) return 0;
    sqlite3_stmt *st = lf_projection_stmt(db, "INSERT INTO ticks(stream, n) VALUES ('all', ?)"
                                              " ON CONFLICT(stream) DO UPDATE SET n = n + ?1");
    if (!st) return LF_EIO;
    sqlite3_bind_int64(st, 1, n);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : LF_EIO;
    sqlite3_reset(st);
    return rc;
}

static const lf_projection_def buffering = {"counter", 1, schema, buffer_apply, NULL, buffer_end};

static void test_end_hook(void **state)
{
    struct fx *f = *state;
    int64_t last = append_ticks(f->st, "a", 250);
    const lf_projection_def *defs[] = {&buffering};
    lf_projections *p = lf_projections_start(f->st, f->dir, defs, 1);
    assert_non_null(p);
    assert_int_equal(lf_projections_wait(p, "counter", last, 20000), 0);
    assert_int_equal(ticks(p, "all"), 250);
    /* live batches, then a poison one: the events before it count once */
    last = append_ticks(f->st, "b", 3);
    assert_int_equal(lf_projections_wait(p, "counter", last, 20000), 0);
    assert_int_equal(ticks(p, "all"), 253);
    lf_event_in evs[4] = {{.type = "Tick", .data = "{}"},
                          {.type = "Tick", .data = "{}"},
                          {.type = "Poison", .data = "{}"},
                          {.type = "Tick", .data = "{}"}};
    lf_append_result r;
    assert_int_equal(lf_store_append(f->st, "z", LF_EXPECT_ANY, evs, 4, &r), 0);
    json_t *s = NULL;
    for (int i = 0; i < 200; i++) {
        json_decref(s);
        s = status_of(p, "counter");
        if (strcmp(json_string_value(json_object_get(s, "state")), "failed") == 0) break;
        lf_sleep_ms(50);
    }
    assert_string_equal(json_string_value(json_object_get(s, "state")), "failed");
    assert_int_equal(json_integer_value(json_object_get(s, "position")), r.last_position - 2);
    json_decref(s);
    assert_int_equal(ticks(p, "all"), 255);
    lf_projections_stop(p);
}

static int64_t revenue_cell(lf_projections *p, const char *unit, const char *day, const char *col)
{
    sqlite3 *db = lf_projection_reader(p, "revenue");
    assert_non_null(db);
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT %s FROM revenue WHERE unit = ? AND day = ?", col);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, unit, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, day, -1, SQLITE_STATIC);
    int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    lf_projection_reader_put(p, "revenue", db);
    return v;
}

static int64_t append_one(lf_store *st, const char *stream, const char *type, const char *data,
                          int64_t time_ms)
{
    lf_event_in ev = {.type = type, .data = data, .time_ms = time_ms};
    lf_append_result r;
    assert_int_equal(lf_store_append(st, stream, LF_EXPECT_ANY, &ev, 1, &r), 0);
    return r.last_position;
}

static void test_revenue(void **state)
{
    struct fx *f = *state;
    const int64_t d1 = 1790000000000LL; /* 2026-09-21T14:13:20Z */
    const int64_t d0 = d1 - 86400000LL;
    const char *u1 = "unitlog-u1";
    for (int i = 0; i < 3; i++)
        append_one(f->st, u1, "PaymentSucceeded", "{\"rental_id\":\"r\",\"amount_cents\":100}", d1);
    append_one(f->st, u1, "PaymentSucceeded", "{\"amount_cents\":-40,\"x\":[1,{\"y\":\"}\"}]}", d1);
    append_one(f->st, u1, "PaymentSucceeded", "{\"amount_cents\":7}", d0);
    /* not counted: a real, absent, only nested, a string; another type */
    append_one(f->st, u1, "PaymentSucceeded", "{\"amount_cents\":1.5}", d1);
    append_one(f->st, u1, "PaymentSucceeded", "{\"currency\":\"EUR\"}", d1);
    append_one(f->st, u1, "PaymentSucceeded", "{\"m\":{\"amount_cents\":5}}", d1);
    append_one(f->st, u1, "PaymentSucceeded", "{\"s\":\"amount_cents\",\"amount_cents\":\"9\"}",
               d1);
    append_one(f->st, u1, "PaymentStarted", "{\"amount_cents\":1000}", d1);
    /* an escaped key: decided by jansson, counted */
    append_one(f->st, u1, "PaymentSucceeded", "{\"amount\\u005fcents\":3}", d1);
    append_one(f->st, "bookings-u1", "ReservationConfirmed", "{\"amount_cents\":900}", d1);
    append_one(f->st, "bookings-u1", "RefundIssued", "{\"amount_cents\":300}", d1);
    int64_t last = append_one(f->st, "unitlog-u2", "PaymentSucceeded", "{\"amount_cents\":50}", d1);
    const lf_projection_def *defs[] = {&lf_proj_revenue};
    lf_projections *p = lf_projections_start(f->st, f->dir, defs, 1);
    assert_non_null(p);
    assert_int_equal(lf_projections_wait(p, "revenue", last, 20000), 0);
    assert_int_equal(revenue_cell(p, "u1", "2026-09-21", "walkup_cents"), 263);
    assert_int_equal(revenue_cell(p, "u1", "2026-09-21", "walkup_count"), 5);
    assert_int_equal(revenue_cell(p, "u1", "2026-09-20", "walkup_cents"), 7);
    assert_int_equal(revenue_cell(p, "u1", "2026-09-20", "walkup_count"), 1);
    assert_int_equal(revenue_cell(p, "u1", "2026-09-21", "reservation_cents"), 900);
    assert_int_equal(revenue_cell(p, "u1", "2026-09-21", "reservation_count"), 1);
    assert_int_equal(revenue_cell(p, "u1", "2026-09-21", "refund_cents"), 300);
    assert_int_equal(revenue_cell(p, "u2", "2026-09-21", "walkup_cents"), 50);
    /* live: the same rows grow */
    last = append_one(f->st, "unitlog-u2", "PaymentSucceeded", "{\"amount_cents\":25}", d1);
    assert_int_equal(lf_projections_wait(p, "revenue", last, 20000), 0);
    assert_int_equal(revenue_cell(p, "u2", "2026-09-21", "walkup_cents"), 75);
    assert_int_equal(revenue_cell(p, "u2", "2026-09-21", "walkup_count"), 2);
    char live[65], rebuilt[65];
    assert_int_equal(lf_projection_digest(p, "revenue", live), 0);
    lf_projections_stop(p);
    /* a rebuild (one batch) gives the same tables as the live batches */
    assert_int_equal(lf_projection_rebuild_offline(f->st, f->dir, &lf_proj_revenue), 0);
    p = lf_projections_start(f->st, f->dir, defs, 1);
    assert_int_equal(lf_projection_digest(p, "revenue", rebuilt), 0);
    assert_string_equal(live, rebuilt);
    lf_projections_stop(p);
}

int main(void)
{
    lf_init();
    lf_log_set_level(LF_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_catch_up_then_live, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_feed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_published_gate_and_followers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebuild_while_live, setup, teardown),
        cmocka_unit_test_setup_teardown(test_version_bump_rebuilds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_is_contained, setup, teardown),
        cmocka_unit_test_setup_teardown(test_end_hook, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revenue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reader_ends_pause, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
