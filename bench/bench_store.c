/*
 * bench_store.c — 'lockerfleet bench store': the event store against its
 * peers, in the same run, on the same disk (ratios hold on a noisy
 * machine; absolute figures do not).
 *
 * Every write is durable: the store runs WAL + synchronous=FULL, and so
 * does the "naive" peer, a plain SQLite INSERT loop on the schema a first
 * attempt would use (stream TEXT, version INT, data, UNIQUE(stream,
 * version)). Redis (pipelined XADD, appendfsync everysec: NOT fsynced per
 * write) is shown beside it when redis-server and hiredis are there.
 *
 * Phases (N = --events, S = --streams):
 *   store append, batches of 100 of one stream, round robin over S: N events
 *   naive loop, same batches: N; naive loop, batches mixing streams: N/4
 *   one appender with --window batches in flight (lf_store_append_async),
 *   each counted when durable: N/2
 *   store at batch 1, 10, 1000; naive at batch 1 (= one fsync per append)
 *   group commit: 8 threads batch 1; 8 threads batch 100; 16 threads batch
 *   10 (each thread on its own streams)
 *   read-all of the whole store vs a raw scan of the naive table
 *   subscription catch-up from 0
 */
#define _GNU_SOURCE
#include "bench.h"
#include "bench_util.h"
#include "cli/cli.h"
#include "store/store.h"

#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef LF_HAVE_REDIS
#include <hiredis/hiredis.h>
#endif

#define DATA_POOL 4096

static char *g_data[DATA_POOL]; /* ~200-byte JSON objects, reused cyclically */

static double secs_since(int64_t t0_us)
{
    return (double)(lf_mono_us() - t0_us) / 1e6;
}

static void stream_name(char *buf, size_t len, int64_t i)
{
    snprintf(buf, len, "unit-%05lld", (long long)i);
}

static void report(const char *what, int64_t events, double secs)
{
    printf("  %-52s %9lld ev %7.2f s %11.0f ev/s\n", what, (long long)events, secs,
           secs > 0 ? (double)events / secs : 0.0);
    fflush(stdout);
}

static void ratio(const char *what, double a, double b, const char *target)
{
    printf("  => %-50s %6.2fx  %s\n", what, b > 0 ? a / b : 0.0, target);
    fflush(stdout);
}

/* ---- the store ---------------------------------------------------------- */
typedef struct {
    lf_store *s;
    int64_t *versions; /* per stream, owned by the caller */
    int64_t nstreams;
} store_ctx;

/* Appends `events` events in batches of `batch`, each batch one stream's,
 * streams round robin from *next_stream, exact expected versions.
 * Returns events/s (0 on failure). */
static double store_appends(store_ctx *c, int64_t events, int batch, int64_t *next_stream,
                            int with_ids, const char *label)
{
    lf_event_in *e = lf_xcalloc((size_t)batch, sizeof *e);
    char(*ids)[LF_UUID_LEN] = with_ids ? lf_xcalloc((size_t)batch, LF_UUID_LEN) : NULL;
    int64_t t0 = lf_mono_us(), done = 0, k = 0;
    char st[32];
    while (done < events) {
        int64_t si = (*next_stream)++ % c->nstreams;
        stream_name(st, sizeof st, si);
        for (int i = 0; i < batch; i++) {
            e[i] = (lf_event_in){.type = "DoorClosed", .data = g_data[(k++) % DATA_POOL]};
            if (ids) { /* as a unit agent makes them (src/unit/unit.c) */
                lf_uuid_v7(ids[i]);
                e[i].id = ids[i];
            }
        }
        int64_t v = c->versions[si];
        lf_append_result r;
        int rc = lf_store_append(c->s, st, v ? v : LF_EXPECT_NO_STREAM, e, (size_t)batch, &r);
        if (rc) {
            fprintf(stderr, "bench: append failed: %s %s\n", lf_strerror(rc), lf_err_get());
            free(e);
            free(ids);
            return 0;
        }
        c->versions[si] = r.last_version;
        done += batch;
    }
    double secs = secs_since(t0);
    free(e);
    free(ids);
    report(label, done, secs);
    return (double)done / secs;
}

/* One appender, pipelined: the same batches as store_appends, but up to
 * `window` of them in flight (lf_store_append_async); each is counted
 * only when its callback says it is durable. */
typedef struct pipe_state pipe_state;
typedef struct {
    pipe_state *p;
    lf_event_in *e;
    int64_t si;
    char st[32];
} pipe_slot;

struct pipe_state {
    store_ctx *c;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    pipe_slot **free_slots;
    int nfree, failed;
    int64_t acked;
};

static void pipe_done(void *ctx, int rc, const lf_append_result *res, const char *err)
{
    pipe_slot *sl = ctx;
    pipe_state *p = sl->p;
    pthread_mutex_lock(&p->mu);
    if (rc) {
        if (!p->failed)
            fprintf(stderr, "bench: async append failed: %s %s\n", lf_strerror(rc), err);
        p->failed = 1;
    } else {
        p->c->versions[sl->si] = res->last_version;
        p->acked += res->last_position - res->first_position + 1;
    }
    p->free_slots[p->nfree++] = sl;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->mu);
}

static double store_pipelined(store_ctx *c, int64_t events, int batch, int window,
                              int64_t *next_stream, const char *label)
{
    pipe_state p = {.c = c};
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cond, NULL);
    pipe_slot *slots = lf_xcalloc((size_t)window, sizeof *slots);
    p.free_slots = lf_xcalloc((size_t)window, sizeof *p.free_slots);
    for (int i = 0; i < window; i++) {
        slots[i].p = &p;
        slots[i].e = lf_xcalloc((size_t)batch, sizeof(lf_event_in));
        p.free_slots[p.nfree++] = &slots[i];
    }
    int64_t t0 = lf_mono_us(), sent = 0, k = 0;
    pthread_mutex_lock(&p.mu);
    while (sent < events && !p.failed) {
        while (p.nfree == 0)
            pthread_cond_wait(&p.cond, &p.mu);
        pipe_slot *sl = p.free_slots[--p.nfree];
        /* A stream comes back only after `nstreams` batches (> window), so
         * its last version is known when it is used again. */
        sl->si = (*next_stream)++ % c->nstreams;
        int64_t v = c->versions[sl->si];
        pthread_mutex_unlock(&p.mu);
        stream_name(sl->st, sizeof sl->st, sl->si);
        for (int i = 0; i < batch; i++)
            sl->e[i] = (lf_event_in){.type = "DoorClosed", .data = g_data[(k++) % DATA_POOL]};
        int rc = lf_store_append_async(c->s, sl->st, v ? v : LF_EXPECT_NO_STREAM, sl->e,
                                       (size_t)batch, pipe_done, sl);
        pthread_mutex_lock(&p.mu);
        if (rc) {
            fprintf(stderr, "bench: async append refused: %s %s\n", lf_strerror(rc), lf_err_get());
            p.failed = 1;
            p.free_slots[p.nfree++] = sl;
            break;
        }
        sent += batch;
    }
    while (p.nfree < window)
        pthread_cond_wait(&p.cond, &p.mu);
    pthread_mutex_unlock(&p.mu);
    double secs = secs_since(t0);
    for (int i = 0; i < window; i++)
        free(slots[i].e);
    free(slots);
    free(p.free_slots);
    pthread_mutex_destroy(&p.mu);
    pthread_cond_destroy(&p.cond);
    if (p.failed || p.acked != sent) return 0;
    report(label, p.acked, secs);
    return (double)p.acked / secs;
}

typedef struct {
    store_ctx *c;
    int thread, nthreads, batch;
    int64_t appends;
    int failed;
} gc_arg;

static void *gc_main(void *p)
{
    gc_arg *a = p;
    lf_event_in e[100];
    char st[32];
    int64_t k = a->thread;
    for (int64_t j = 0; j < a->appends; j++) {
        /* Own streams: thread t uses t, t + T, t + 2T, ... */
        int64_t si = (a->thread + (j % 64) * a->nthreads) % a->c->nstreams;
        stream_name(st, sizeof st, si);
        for (int i = 0; i < a->batch; i++)
            e[i] = (lf_event_in){.type = "DoorClosed", .data = g_data[(k++) % DATA_POOL]};
        int64_t v = a->c->versions[si];
        lf_append_result r;
        if (lf_store_append(a->c->s, st, v ? v : LF_EXPECT_NO_STREAM, e, (size_t)a->batch, &r)) {
            a->failed = 1;
            return NULL;
        }
        a->c->versions[si] = r.last_version;
    }
    return NULL;
}

static double store_group_commit(store_ctx *c, int nthreads, int batch, int64_t appends_each,
                                 const char *label)
{
    pthread_t th[64];
    gc_arg a[64];
    int64_t t0 = lf_mono_us();
    for (int i = 0; i < nthreads; i++) {
        a[i] = (gc_arg){
            .c = c, .thread = i, .nthreads = nthreads, .batch = batch, .appends = appends_each};
        pthread_create(&th[i], NULL, gc_main, &a[i]);
    }
    int failed = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(th[i], NULL);
        failed |= a[i].failed;
    }
    double secs = secs_since(t0);
    if (failed) {
        fprintf(stderr, "bench: a group-commit append failed: %s\n", lf_err_get());
        return 0;
    }
    int64_t events = (int64_t)nthreads * appends_each * batch;
    report(label, events, secs);
    return (double)events / secs;
}

static double store_read_all(lf_store *s, int64_t *count, const char *label)
{
    lf_event_list l;
    lf_event_list_init(&l);
    int64_t after = 0, n = 0;
    size_t bytes = 0;
    int64_t t0 = lf_mono_us();
    for (;;) {
        if (lf_store_read_all(s, after, 1000, &l)) {
            fprintf(stderr, "bench: read_all: %s\n", lf_err_get());
            break;
        }
        if (l.n == 0) break;
        for (size_t i = 0; i < l.n; i++)
            bytes += strlen(l.ev[i].data);
        n += (int64_t)l.n;
        after = l.ev[l.n - 1].position;
        lf_event_list_free(&l);
    }
    double secs = secs_since(t0);
    lf_event_list_free(&l);
    report(label, n, secs);
    *count = n;
    return bytes ? (double)n / secs : 0;
}

typedef struct {
    atomic_llong n;
} sub_count;

static int count_handler(const lf_event *e, void *ctx)
{
    (void)e;
    atomic_fetch_add(&((sub_count *)ctx)->n, 1);
    return 0;
}

static double store_catch_up(lf_store *s)
{
    int64_t head = 0;
    lf_store_head(s, &head);
    sub_count sc = {0};
    int64_t t0 = lf_mono_us();
    lf_subscription *sub = lf_store_subscribe(s, 0, 1000, count_handler, &sc);
    if (!sub) return 0;
    while (lf_subscription_position(sub) < head)
        lf_sleep_ms(1);
    double secs = secs_since(t0);
    lf_subscription_stop(sub);
    report("store subscription catch-up from 0", atomic_load(&sc.n), secs);
    return (double)atomic_load(&sc.n) / secs;
}

/* ---- the naive SQLite loop --------------------------------------------- */
static sqlite3 *naive_open(const char *path)
{
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK) return NULL;
    sqlite3_exec(db,
                 "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                 "CREATE TABLE IF NOT EXISTS events(stream TEXT NOT NULL, version INTEGER NOT "
                 "NULL, data TEXT NOT NULL, UNIQUE(stream, version));",
                 NULL, NULL, NULL);
    return db;
}

/* Inserts `events` rows in transactions of `batch`; one stream per batch
 * (round robin) or, if mixed, every row a random stream's. */
static double naive_loop(const char *path, int64_t events, int batch, int64_t nstreams, int mixed,
                         const char *label)
{
    sqlite3 *db = naive_open(path);
    if (!db) return 0;
    int64_t *ver = lf_xcalloc((size_t)nstreams, sizeof *ver);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "INSERT INTO events(stream, version, data) VALUES(?,?,?)", -1, &st,
                       NULL);
    /* Continue versions where an earlier phase on this file left them. */
    sqlite3_stmt *q;
    sqlite3_prepare_v2(db, "SELECT stream, max(version) FROM events GROUP BY stream", -1, &q, NULL);
    while (sqlite3_step(q) == SQLITE_ROW) {
        const char *nm = (const char *)sqlite3_column_text(q, 0);
        int64_t si = atoll(nm + 5);
        if (si >= 0 && si < nstreams) ver[si] = sqlite3_column_int64(q, 1);
    }
    sqlite3_finalize(q);
    char name[32];
    uint32_t rnd = 12345;
    int64_t t0 = lf_mono_us(), done = 0, next = 0, k = 0;
    int ok = 1;
    while (done < events && ok) {
        sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
        int64_t si = next++ % nstreams;
        for (int i = 0; i < batch; i++) {
            if (mixed) {
                rnd = rnd * 1664525u + 1013904223u;
                si = (int64_t)(rnd >> 8) % nstreams;
            }
            stream_name(name, sizeof name, si);
            sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(st, 2, ++ver[si]);
            sqlite3_bind_text(st, 3, g_data[(k++) % DATA_POOL], -1, SQLITE_STATIC);
            if (sqlite3_step(st) != SQLITE_DONE) ok = 0;
            sqlite3_reset(st);
        }
        if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) ok = 0;
        done += batch;
    }
    double secs = secs_since(t0);
    if (!ok) fprintf(stderr, "bench: naive insert failed: %s\n", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    sqlite3_close(db);
    free(ver);
    report(label, done, secs);
    return ok ? (double)done / secs : 0;
}

static double naive_scan(const char *path)
{
    sqlite3 *db;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) return 0;
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "SELECT rowid, stream, version, data FROM events ORDER BY rowid", -1,
                       &st, NULL);
    int64_t n = 0;
    size_t bytes = 0;
    int64_t t0 = lf_mono_us();
    while (sqlite3_step(st) == SQLITE_ROW) {
        bytes += (size_t)sqlite3_column_bytes(st, 1) + (size_t)sqlite3_column_bytes(st, 3);
        bytes += (size_t)sqlite3_column_int64(st, 2) & 1;
        n++;
    }
    double secs = secs_since(t0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    report("naive raw scan (sqlite3_step, no copies)", n, secs);
    return bytes ? (double)n / secs : 0;
}

/* ---- Redis (optional) ---------------------------------------------------- */
#ifdef LF_HAVE_REDIS
static int free_port(void)
{
    return 20000 + (int)lf_random_uniform(30000);
}

static double redis_xadd(const char *dir, int64_t events, int batch, int64_t nstreams)
{
    char rdir[600];
    snprintf(rdir, sizeof rdir, "%s/redis", dir);
    mkdir(rdir, 0700);
    int port = free_port();
    pid_t pid = fork();
    if (pid == 0) {
        char portbuf[16];
        snprintf(portbuf, sizeof portbuf, "%d", port);
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) dup2(fd, 1);
        execlp("redis-server", "redis-server", "--port", portbuf, "--bind", "127.0.0.1", "--dir",
               rdir, "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
               (char *)NULL);
        _exit(127);
    }
    redisContext *rc = NULL;
    for (int i = 0; i < 100 && !rc; i++) {
        lf_sleep_ms(50);
        redisContext *t = redisConnect("127.0.0.1", port);
        if (t && !t->err)
            rc = t;
        else if (t)
            redisFree(t);
    }
    double rate = 0;
    if (!rc) {
        fprintf(stderr, "bench: redis-server did not answer on port %d; skipped\n", port);
        goto out;
    }
    char st[32];
    int64_t t0 = lf_mono_us(), done = 0, k = 0, next = 0;
    while (done < events) {
        stream_name(st, sizeof st, next++ % nstreams);
        for (int i = 0; i < batch; i++)
            redisAppendCommand(rc, "XADD %s * type DoorClosed data %s", st,
                               g_data[(k++) % DATA_POOL]);
        for (int i = 0; i < batch; i++) {
            void *reply = NULL;
            if (redisGetReply(rc, &reply) != REDIS_OK) {
                fprintf(stderr, "bench: redis: %s\n", rc->errstr);
                goto out;
            }
            freeReplyObject(reply);
        }
        done += batch;
    }
    {
        double secs = secs_since(t0);
        report("redis XADD pipelined x100 (AOF everysec, no fsync/op)", done, secs);
        rate = (double)done / secs;
    }
out:
    if (rc) redisFree(rc);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    return rate;
}
#endif

/* ---- the benchmark -------------------------------------------------------- */
static int rm_tree(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

int lf_bench_store(int argc, char **argv)
{
    int64_t events = 2000000, nstreams = 10000, delay_us = -1, window = 16;
    const char *dir_opt = NULL;
    bool keep = false, no_redis = false;
    const lf_opt opts[] = {
        {"events", LF_OPT_INT, &events, "events in the main batch-100 phase (default 2000000)"},
        {"streams", LF_OPT_INT, &nstreams, "streams the events spread over (default 10000)"},
        {"dir", LF_OPT_STR, &dir_opt, "directory for the files (default: a temp dir under /tmp)"},
        {"keep", LF_OPT_FLAG, &keep, "keep the files afterwards"},
        {"no-redis", LF_OPT_FLAG, &no_redis, "skip the Redis comparison"},
        {"window", LF_OPT_INT, &window, "batches one async appender keeps in flight (default 16)"},
        {"commit-delay-us", LF_OPT_INT, &delay_us,
         "the store's group commit delay cap (sqlite:PATH?commit_delay_us=N; default: the "
         "store's)"},
        {NULL, 0, NULL, NULL},
    };
    int rc = lf_opts_parse("lockerfleet bench store [--events N] [--streams N] [--dir D]", opts,
                           argc, argv, NULL, 0, NULL);
    if (rc) return rc == 1 ? 0 : 2;
    if (events < 10000 || nstreams < 100 || nstreams > 10000000 || window < 1 ||
        window > nstreams / 2) {
        fprintf(stderr, "lockerfleet bench store: want --events >= 10000, --streams >= 100, "
                        "1 <= --window <= streams / 2\n");
        return 2;
    }
    char dir[512];
    if (dir_opt) {
        snprintf(dir, sizeof dir, "%s/lfbench.XXXXXX", dir_opt);
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/lfbench.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    }
    if (!mkdtemp(dir)) {
        perror("lockerfleet bench store: mkdtemp");
        return 1;
    }
    lf_bench_event_data(g_data, DATA_POOL);
    char url[600], naive1[600], naive2[600], naive3[600];
    if (delay_us >= 0)
        snprintf(url, sizeof url, "sqlite:%s/store.db?commit_delay_us=%lld", dir,
                 (long long)delay_us);
    else
        snprintf(url, sizeof url, "sqlite:%s/store.db", dir);
    snprintf(naive1, sizeof naive1, "%s/naive-one-stream.db", dir);
    snprintf(naive2, sizeof naive2, "%s/naive-mixed.db", dir);
    snprintf(naive3, sizeof naive3, "%s/naive-batch1.db", dir);
    printf("lockerfleet bench store: %lld events of %d bytes over %lld streams, in %s\n"
           "  sqlite %s, %ld cpus; every append durable (WAL, synchronous=FULL)\n",
           (long long)events, LF_BENCH_DATA_LEN, (long long)nstreams, dir, sqlite3_libversion(),
           sysconf(_SC_NPROCESSORS_ONLN));

    lf_store *s = NULL;
    char err[512];
    if ((rc = lf_store_open(url, &s, err, sizeof err))) {
        fprintf(stderr, "lockerfleet bench store: %s\n", err);
        return 1;
    }
    store_ctx c = {
        .s = s, .versions = lf_xcalloc((size_t)nstreams, sizeof(int64_t)), .nstreams = nstreams};
    int64_t next = 0;
    int failed = 0;

    printf("\nappends (durable):\n");
    double st100 =
        store_appends(&c, events, 100, &next, 0, "store, batch 100, one stream per batch");
    double nv100 = naive_loop(naive1, events, 100, nstreams, 0,
                              "naive sqlite, batch 100, one stream per batch");
    char plabel[96];
    snprintf(plabel, sizeof plabel, "store, batch 100, one appender, %lld in flight (async)",
             (long long)window);
    double stp = store_pipelined(&c, events / 2, 100, (int)window, &next, plabel);
    double nvmix =
        naive_loop(naive2, events / 4, 100, nstreams, 1, "naive sqlite, batch 100, mixed streams");
    double stid = store_appends(&c, events / 4, 100, &next, 1,
                                "store, batch 100, client-given v7 ids (indexed)");
    double st1000 = store_appends(&c, events / 4, 1000, &next, 0, "store, batch 1000");
    double st10 = store_appends(&c, events / 20, 10, &next, 0, "store, batch 10");
    double st1 = store_appends(&c, 2000, 1, &next, 0, "store, batch 1, one thread");
    double nv1 = naive_loop(naive3, 2000, 1, nstreams, 0, "naive sqlite, batch 1 (1 fsync/append)");
    double gc1 = store_group_commit(&c, 8, 1, 1000, "store, batch 1, 8 threads (group commit)");
    double gc100 = store_group_commit(&c, 8, 100, events / 4 / 800,
                                      "store, batch 100, 8 threads, own streams (group)");
    double gc10 = store_group_commit(&c, 16, 10, events / 160 / 10,
                                     "store, batch 10, 16 threads, own streams (group)");
    failed |= !gc100 || !st100 || !stp || !stid || !nv100 || !nvmix || !st1000 || !st10 || !st1 ||
              !nv1 || !gc1 || !gc10;
    double redis = 0;
#ifdef LF_HAVE_REDIS
    if (!no_redis && system("command -v redis-server >/dev/null 2>&1") == 0)
        redis = redis_xadd(dir, events / 2, 100, nstreams);
    else if (!no_redis)
        printf("  (redis-server not on PATH: Redis skipped)\n");
#else
    if (!no_redis) printf("  (built without hiredis: Redis skipped)\n");
#endif

    printf("\nreads:\n");
    int64_t nread = 0;
    store_read_all(s, &nread, "store read_all, first pass (pages of 1000)");
    double ra = store_read_all(s, &nread, "store read_all, second pass");
    double scan = naive_scan(naive1);
    double cu = store_catch_up(s);
    lf_store_close(s);
    int64_t t0 = lf_mono_us();
    if (lf_store_open(url, &s, err, sizeof err) == 0) {
        printf("  reopen of the %lld-event store: %.0f ms\n", (long long)nread,
               secs_since(t0) * 1000);
        lf_store_close(s);
    }

    printf("\nratios (same run):\n");
    ratio("store batch 100 / naive batch 100 (one stream)", st100, nv100,
          "(both wait one fsync per batch)");
    ratio("store one appender, async / naive batch 100 (one stream)", stp, nv100, "(target >= 2)");
    ratio("store 8 threads batch 100 / naive batch 100 (one stream)", gc100, nv100,
          "(target >= 2)");
    ratio("store batch 100, client ids / naive batch 100 (one stream)", stid, nv100, "");
    ratio("store batch 100 / naive batch 100 (mixed streams)", st100, nvmix, "");
    ratio("store 16 threads batch 10 / naive mixed batch 100", gc10, nvmix, "");
    ratio("store 8 threads batch 1 / naive batch 1 (1 fsync)", gc1, nv1, "(target >= 5)");
    ratio("store 8 threads batch 1 / store 1 thread batch 1", gc1, st1, "");
    ratio("store read_all / naive raw scan", ra, scan, "(target >= 0.8)");
    ratio("store catch-up / naive raw scan", cu, scan, "");
    if (redis > 0) ratio("store batch 100 / redis XADD pipelined", st100, redis, "");

    free(c.versions);
    for (int i = 0; i < DATA_POOL; i++)
        free(g_data[i]);
    if (!keep)
        rm_tree(dir);
    else
        printf("\nfiles kept in %s\n", dir);
    return failed ? 1 : 0;
}
