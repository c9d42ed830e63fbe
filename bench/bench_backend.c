/*
 * bench_backend.c — 'lockerfleet bench backend --store URL': one store
 * backend's append rate next to its raw engine doing the same work, in the
 * same run, against the same server (issue 6: within 70% of raw).
 *
 * Work: N events of ~200 bytes of JSON, in batches of B events of one
 * stream, streams round robin over S; once from one appender, once from T
 * concurrent appenders (each on its own streams, own connection).
 *
 *   ours      lf_store_append with the exact expected version
 *   postgres  raw: one multi-row INSERT per batch (its own transaction),
 *             libpq, into a plain event table (--raw event, the default):
 *             lf_raw.events(position bigserial PRIMARY KEY, id uuid UNIQUE,
 *             stream, version, type, time, data text, meta text,
 *             UNIQUE(stream, version)) — the same events (the same fields,
 *             the same ids generated per event) and the keys any event
 *             table needs, without our checks, lock and ordering; or
 *             (--raw narrow, the first peer) lf_raw.events(stream text,
 *             version int, data bytea, UNIQUE(stream, version)), binary data
 *   redis     raw: the batch's B XADDs to "lfraw:<stream>", pipelined
 *             (hiredis), then the B replies; --raw event: each entry holds
 *             the event as our log entries do (i s v, and b: type, time,
 *             meta and data packed in one field);
 *             --raw indexed: the same plus one HSET per batch of its
 *             ids -> versions (an id index, which idempotent appends
 *             need: ours keeps one, the postgres peer has id UNIQUE);
 *             --raw narrow: "type DoorClosed data D"
 *   nats      raw: js_PublishAsync of the batch's B messages to a plain
 *             JetStream stream LFRAW (file storage, subject per stream) +
 *             js_PublishAsyncComplete (so each batch is acknowledged, like
 *             an append)
 *
 * Each run does: ours x1, raw x1, ours xT, raw xT, interleaved so noise
 * hits both; --runs R (default 3) and the medians and their ratios are
 * printed. With --server-pid (default: the first line of
 * $LF_TEST_SERVER_PIDFILE, which scripts/with-server.sh sets) the server's
 * CPU time (its process and children) per event is printed too, and this
 * process's: on a loaded machine those hold better than wall-clock rates.
 * Every run writes new streams (names carry the run and a tag of this
 * invocation), so versions start at 0 and nothing collides, also on a
 * server reused between invocations.
 */
#define _GNU_SOURCE
#include "bench.h"
#include "bench_util.h"
#include "cli/cli.h"
#include "store/store.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef LF_HAVE_POSTGRES
#include <libpq-fe.h>
#endif
#ifdef LF_HAVE_REDIS
#include <hiredis.h>
#endif
#ifdef LF_HAVE_NATS
#include <nats/nats.h>
#endif

#define POOL_N 1024
#define MAX_THREADS 64
#define MAX_RUNS 15

enum engine { E_POSTGRES, E_REDIS, E_NATS };

static char *g_pool[POOL_N];
static enum engine g_engine;
static const char *g_url;
static int g_raw_event = 1; /* --raw event (1) | narrow (0) | indexed (2) */
static pid_t g_server_pid;
static unsigned g_tag; /* per invocation: a reused server's streams never collide */

/* ---- raw engines: connect, prepare, append one batch ------------------- */
typedef struct {
#ifdef LF_HAVE_POSTGRES
    PGconn *pg;
#endif
#ifdef LF_HAVE_REDIS
    redisContext *rd;
#endif
#ifdef LF_HAVE_NATS
    natsConnection *nc;
    jsCtx *js;
#endif
    int dummy;
} raw_conn;

/* "scheme://[user@]host:port[/...][?...]" -> host, port. */
static int host_port(const char *url, char *host, size_t hlen, int *port)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    const char *at = strchr(p, '@');
    const char *end = p + strcspn(p, "/?,");
    if (at && at < end) p = at + 1;
    const char *colon = memchr(p, ':', (size_t)(end - p));
    if (!colon || (size_t)(colon - p) >= hlen) return -1;
    memcpy(host, p, (size_t)(colon - p));
    host[colon - p] = '\0';
    *port = atoi(colon + 1);
    return *port > 0 ? 0 : -1;
}

static int raw_connect(raw_conn *c)
{
    memset(c, 0, sizeof *c);
    char host[256];
    int port = 0;
    switch (g_engine) {
    case E_POSTGRES: {
#ifdef LF_HAVE_POSTGRES
        char *u = lf_strdup(g_url), *q = strchr(u, '?');
        if (q) *q = '\0'; /* our ?schema= is not libpq's */
        c->pg = PQconnectdb(u);
        free(u);
        if (PQstatus(c->pg) != CONNECTION_OK) {
            fprintf(stderr, "bench backend: raw postgres: %s", PQerrorMessage(c->pg));
            return -1;
        }
        return 0;
#endif
        break;
    }
    case E_REDIS:
#ifdef LF_HAVE_REDIS
        if (host_port(g_url, host, sizeof host, &port)) break;
        c->rd = redisConnect(host, port);
        if (!c->rd || c->rd->err) {
            fprintf(stderr, "bench backend: raw redis: %s\n", c->rd ? c->rd->errstr : "oom");
            return -1;
        }
        return 0;
#endif
        break;
    case E_NATS: {
#ifdef LF_HAVE_NATS
        if (host_port(g_url, host, sizeof host, &port)) break;
        char u[300];
        snprintf(u, sizeof u, "nats://%s:%d", host, port);
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.PublishAsync.MaxPending = 4000;
        natsStatus st = natsConnection_ConnectTo(&c->nc, u);
        if (st == NATS_OK) st = natsConnection_JetStream(&c->js, c->nc, &jo);
        if (st != NATS_OK) {
            fprintf(stderr, "bench backend: raw nats: %s\n", natsStatus_GetText(st));
            return -1;
        }
        return 0;
#endif
        break;
    }
    }
    (void)host;
    (void)port;
    fprintf(stderr, "bench backend: no raw client for %s in this build\n", g_url);
    return -1;
}

static void raw_close(raw_conn *c)
{
#ifdef LF_HAVE_POSTGRES
    if (c->pg) PQfinish(c->pg);
#endif
#ifdef LF_HAVE_REDIS
    if (c->rd) redisFree(c->rd);
#endif
#ifdef LF_HAVE_NATS
    if (c->js) jsCtx_Destroy(c->js);
    if (c->nc) natsConnection_Destroy(c->nc);
#endif
    memset(c, 0, sizeof *c);
}

/* The raw namespace, created fresh. */
static int raw_setup(void)
{
    raw_conn c;
    if (raw_connect(&c)) return -1;
    int rc = 0;
    switch (g_engine) {
    case E_POSTGRES: {
#ifdef LF_HAVE_POSTGRES
        PGresult *r =
            PQexec(c.pg, g_raw_event ? "SET client_min_messages TO warning;"
                                       "DROP SCHEMA IF EXISTS lf_raw CASCADE; CREATE SCHEMA lf_raw;"
                                       "CREATE TABLE lf_raw.events(position bigserial PRIMARY KEY,"
                                       " id uuid NOT NULL UNIQUE, stream text NOT NULL,"
                                       " version bigint NOT NULL, type text NOT NULL,"
                                       " time bigint NOT NULL, data text NOT NULL,"
                                       " meta text NOT NULL, UNIQUE(stream, version))"
                                     : "SET client_min_messages TO warning;"
                                       "DROP SCHEMA IF EXISTS lf_raw CASCADE; CREATE SCHEMA lf_raw;"
                                       "CREATE TABLE lf_raw.events(stream text NOT NULL,"
                                       " version int NOT NULL, data bytea NOT NULL,"
                                       " UNIQUE(stream, version))");
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            fprintf(stderr, "bench backend: raw schema: %s", PQerrorMessage(c.pg));
            rc = -1;
        }
        PQclear(r);
#endif
        break;
    }
    case E_REDIS:
        break; /* keys lfraw:* carry the run in their names */
    case E_NATS: {
#ifdef LF_HAVE_NATS
        jsStreamConfig cfg;
        jsStreamConfig_Init(&cfg);
        const char *subj[1] = {"LFRAW.>"};
        cfg.Name = "LFRAW";
        cfg.Subjects = subj;
        cfg.SubjectsLen = 1;
        cfg.Storage = js_FileStorage;
        jsErrCode jerr = 0;
        js_DeleteStream(c.js, "LFRAW", NULL, &jerr);
        jsStreamInfo *si = NULL;
        natsStatus st = js_AddStream(&si, c.js, &cfg, NULL, &jerr);
        if (st != NATS_OK) {
            fprintf(stderr, "bench backend: raw stream: %s (%d)\n", natsStatus_GetText(st),
                    (int)jerr);
            rc = -1;
        }
        if (si) jsStreamInfo_Destroy(si);
#endif
        break;
    }
    }
    raw_close(&c);
    return rc;
}

#ifdef LF_HAVE_POSTGRES
/* --raw event: the same events as ours (id, stream, version, type, time,
 * data, meta; ids generated here like the backend does) in one multi-row
 * INSERT, text parameters. */
static int raw_pg_event_batch(raw_conn *c, const char *st, int64_t v0, int64_t k0, int n)
{
    enum { COLS = 7 };
    lf_buf sql;
    lf_buf_init(&sql, 0);
    lf_buf_printf(&sql,
                  "INSERT INTO lf_raw.events(id, stream, version, type, time, data, meta) VALUES ");
    const char **vals = lf_xcalloc((size_t)n * COLS, sizeof *vals);
    char(*ids)[LF_UUID_LEN] = lf_xcalloc((size_t)n, LF_UUID_LEN);
    char(*vers)[24] = lf_xcalloc((size_t)n, 24);
    char tm[24];
    snprintf(tm, sizeof tm, "%lld", (long long)lf_now_ms());
    for (int i = 0; i < n; i++) {
        int b = COLS * i;
        lf_buf_printf(&sql, "%s($%d,$%d,$%d,$%d,$%d,$%d,$%d)", i ? "," : "", b + 1, b + 2, b + 3,
                      b + 4, b + 5, b + 6, b + 7);
        lf_uuid_v7(ids[i]);
        snprintf(vers[i], 24, "%lld", (long long)(v0 + 1 + i));
        vals[b] = ids[i];
        vals[b + 1] = st;
        vals[b + 2] = vers[i];
        vals[b + 3] = "DoorClosed";
        vals[b + 4] = tm;
        vals[b + 5] = g_pool[(k0 + i) % POOL_N];
        vals[b + 6] = "{}";
    }
    PGresult *r = PQexecParams(c->pg, sql.data, n * COLS, NULL, vals, NULL, NULL, 0);
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -1;
    if (rc) fprintf(stderr, "bench backend: raw insert: %s", PQerrorMessage(c->pg));
    PQclear(r);
    free(vals);
    free(ids);
    free(vers);
    lf_buf_free(&sql);
    return rc;
}
#endif

/* Appends events k0.. (n of them) as versions v0+1.. of stream st. */
static int raw_batch(raw_conn *c, const char *st, int64_t v0, int64_t k0, int n)
{
    switch (g_engine) {
    case E_POSTGRES: {
#ifdef LF_HAVE_POSTGRES
        if (g_raw_event) return raw_pg_event_batch(c, st, v0, k0, n);
        lf_buf sql;
        lf_buf_init(&sql, 0);
        lf_buf_printf(&sql, "INSERT INTO lf_raw.events(stream, version, data) VALUES ");
        const char **vals = lf_xcalloc((size_t)n * 3, sizeof *vals);
        int *lens = lf_xcalloc((size_t)n * 3, sizeof *lens);
        int *fmts = lf_xcalloc((size_t)n * 3, sizeof *fmts);
        char(*vers)[24] = lf_xcalloc((size_t)n, 24);
        for (int i = 0; i < n; i++) {
            lf_buf_printf(&sql, "%s($%d,$%d,$%d)", i ? "," : "", 3 * i + 1, 3 * i + 2, 3 * i + 3);
            snprintf(vers[i], 24, "%lld", (long long)(v0 + 1 + i));
            const char *d = g_pool[(k0 + i) % POOL_N];
            vals[3 * i] = st;
            vals[3 * i + 1] = vers[i];
            vals[3 * i + 2] = d;
            lens[3 * i + 2] = (int)strlen(d);
            fmts[3 * i + 2] = 1; /* binary bytea: no escaping at all */
        }
        PGresult *r = PQexecParams(c->pg, sql.data, n * 3, NULL, vals, lens, fmts, 0);
        int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -1;
        if (rc) fprintf(stderr, "bench backend: raw insert: %s", PQerrorMessage(c->pg));
        PQclear(r);
        free(vals);
        free(lens);
        free(fmts);
        free(vers);
        lf_buf_free(&sql);
        return rc;
#endif
        break;
    }
    case E_REDIS: {
#ifdef LF_HAVE_REDIS
        char key[96], tm[24];
        snprintf(key, sizeof key, "lfraw:%s", st);
        snprintf(tm, sizeof tm, "%lld", (long long)lf_now_ms());
        /* --raw indexed: the batch's ids -> versions in one HSET, as an id
         * index for idempotent appends (ours keeps id -> position). */
        char(*ids)[LF_UUID_LEN] = lf_xcalloc((size_t)n, LF_UUID_LEN);
        char(*vers)[24] = lf_xcalloc((size_t)n, 24);
        for (int i = 0; i < n; i++) {
            if (!g_raw_event) {
                redisAppendCommand(c->rd, "XADD %s * type DoorClosed data %s", key,
                                   g_pool[(k0 + i) % POOL_N]);
                continue;
            }
            lf_uuid_v7(ids[i]);
            snprintf(vers[i], 24, "%lld", (long long)(v0 + 1 + i));
            /* our log entry's shape: i s v, and b = TYPE NUL TIME NUL META NUL
             * DATA (store_redis.c pack_body) */
            const char *d = g_pool[(k0 + i) % POOL_N];
            size_t tl = strlen(tm), dl = strlen(d);
            char *b = lf_xmalloc(11 + tl + 1 + 3 + dl);
            memcpy(b, "DoorClosed", 11);
            memcpy(b + 11, tm, tl + 1);
            memcpy(b + 11 + tl + 1, "{}", 3);
            memcpy(b + 11 + tl + 1 + 3, d, dl);
            redisAppendCommand(c->rd, "XADD %s * i %s s %s v %s b %b", key, ids[i], st, vers[i], b,
                               11 + tl + 1 + 3 + dl);
            free(b);
        }
        int replies = n;
        if (g_raw_event == 2) {
            size_t hn = 2 + 2 * (size_t)n;
            const char **hv = lf_xcalloc(hn, sizeof *hv);
            size_t *hl = lf_xcalloc(hn, sizeof *hl);
            hv[0] = "HSET";
            hl[0] = 4;
            hv[1] = "lfraw:ids";
            hl[1] = 9;
            for (int i = 0; i < n; i++) {
                hv[2 + 2 * i] = ids[i];
                hl[2 + 2 * i] = strlen(ids[i]);
                hv[3 + 2 * i] = vers[i];
                hl[3 + 2 * i] = strlen(vers[i]);
            }
            redisAppendCommandArgv(c->rd, (int)hn, hv, hl);
            free(hv);
            free(hl);
            replies++;
        }
        free(ids);
        free(vers);
        int rc = 0;
        for (int i = 0; i < replies; i++) {
            redisReply *rep = NULL;
            if (redisGetReply(c->rd, (void **)&rep) != REDIS_OK || !rep ||
                rep->type == REDIS_REPLY_ERROR) {
                fprintf(stderr, "bench backend: raw XADD: %s\n", rep ? rep->str : c->rd->errstr);
                rc = -1;
            }
            if (rep) freeReplyObject(rep);
            if (c->rd->err) return -1;
        }
        (void)v0;
        return rc;
#endif
        break;
    }
    case E_NATS: {
#ifdef LF_HAVE_NATS
        char subj[128];
        snprintf(subj, sizeof subj, "LFRAW.%s", st);
        for (int i = 0; i < n; i++) {
            const char *d = g_pool[(k0 + i) % POOL_N];
            natsStatus s = js_PublishAsync(c->js, subj, d, (int)strlen(d), NULL);
            if (s != NATS_OK) {
                fprintf(stderr, "bench backend: raw publish: %s\n", natsStatus_GetText(s));
                return -1;
            }
        }
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MaxWait = 30000;
        natsStatus s = js_PublishAsyncComplete(c->js, &po);
        if (s != NATS_OK) {
            fprintf(stderr, "bench backend: raw publish complete: %s\n", natsStatus_GetText(s));
            return -1;
        }
        (void)v0;
        return 0;
#endif
        break;
    }
    }
    (void)c;
    (void)st;
    (void)v0;
    (void)k0;
    (void)n;
    return -1;
}

/* ---- one appender (thread) -------------------------------------------- */
typedef struct {
    lf_store *s; /* NULL: raw */
    int run, thread, nthreads, batch;
    char tag; /* 's' single, 'c' concurrent phase: stream names differ */
    int64_t events, nstreams;
    int failed;
} worker;

static void *worker_main(void *p)
{
    worker *w = p;
    raw_conn c;
    if (!w->s && raw_connect(&c)) {
        w->failed = 1;
        return NULL;
    }
    /* This thread's streams: t, t+T, t+2T, ... below S. */
    int64_t mine = (w->nstreams - w->thread + w->nthreads - 1) / w->nthreads;
    if (mine < 1) mine = 1;
    int64_t *ver = lf_xcalloc((size_t)mine, sizeof *ver);
    lf_event_in *e = lf_xcalloc((size_t)w->batch, sizeof *e);
    char st[64];
    int64_t done = 0, k = w->thread * 7919, j = 0;
    while (done < w->events && !w->failed) {
        int64_t li = j++ % mine, si = w->thread + li * w->nthreads;
        snprintf(st, sizeof st, "%x-r%d%c-unit-%05lld", g_tag, w->run, w->tag, (long long)si);
        int n = (int)(w->events - done < w->batch ? w->events - done : w->batch);
        if (w->s) {
            for (int i = 0; i < n; i++)
                e[i] = (lf_event_in){.type = "DoorClosed", .data = g_pool[(k + i) % POOL_N]};
            lf_append_result r;
            int rc = lf_store_append(w->s, st, ver[li] ? ver[li] : LF_EXPECT_NO_STREAM, e,
                                     (size_t)n, &r);
            if (rc) {
                fprintf(stderr, "bench backend: append: %s %s\n", lf_strerror(rc), lf_err_get());
                w->failed = 1;
            }
        } else if (raw_batch(&c, st, ver[li], k, n)) {
            w->failed = 1;
        }
        ver[li] += n;
        k += n;
        done += n;
    }
    free(e);
    free(ver);
    if (!w->s) raw_close(&c);
    return NULL;
}

/* Events/s of nthreads appenders doing `events` in all; 0 on failure.
 * cpu[0], cpu[1]: server and client CPU µs per event (-1: unknown);
 * cpu[2]: the server process alone, without its children (-1: unknown). */
static double phase(lf_store *s, int run, char tag, int nthreads, int batch, int64_t events,
                    int64_t nstreams, double cpu[3])
{
    pthread_t th[MAX_THREADS];
    worker w[MAX_THREADS];
    double sc0 = g_server_pid > 0 ? lf_bench_tree_cpu_s(g_server_pid) : -1;
    double sp0 = g_server_pid > 0 ? lf_bench_proc_cpu_s(g_server_pid) : -1;
    double cc0 = lf_bench_self_cpu_s();
    int64_t t0 = lf_mono_us();
    for (int i = 0; i < nthreads; i++) {
        w[i] = (worker){.s = s,
                        .run = run,
                        .tag = tag,
                        .thread = i,
                        .nthreads = nthreads,
                        .batch = batch,
                        .events = events / nthreads + (i < events % nthreads),
                        .nstreams = nstreams};
        pthread_create(&th[i], NULL, worker_main, &w[i]);
    }
    int failed = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(th[i], NULL);
        failed |= w[i].failed;
    }
    double secs = (double)(lf_mono_us() - t0) / 1e6;
    double sc1 = g_server_pid > 0 ? lf_bench_tree_cpu_s(g_server_pid) : -1;
    double sp1 = g_server_pid > 0 ? lf_bench_proc_cpu_s(g_server_pid) : -1;
    cpu[0] = sc0 >= 0 && sc1 >= 0 ? (sc1 - sc0) * 1e6 / (double)events : -1;
    cpu[2] = sp0 >= 0 && sp1 >= 0 ? (sp1 - sp0) * 1e6 / (double)events : -1;
    cpu[1] = (lf_bench_self_cpu_s() - cc0) * 1e6 / (double)events;
    return failed || secs <= 0 ? 0 : (double)events / secs;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, int n)
{
    double t[MAX_RUNS];
    memcpy(t, v, (size_t)n * sizeof *t);
    qsort(t, (size_t)n, sizeof *t, cmp_d);
    return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

static const char *raw_what(void)
{
    switch (g_engine) {
    case E_POSTGRES:
        return g_raw_event
                   ? "multi-row INSERT of the same events (id, stream, version, type, time, "
                     "data, meta) into a plain event table, 1 txn/batch"
                   : "narrow: multi-row INSERT (stream, version, data bytea), 1 txn/batch";
    case E_REDIS:
        return g_raw_event == 2 ? "indexed: pipelined XADD of the same events (i s v b, as our "
                                  "entries) + one HSET id -> version per batch"
               : g_raw_event    ? "pipelined XADD of the same events (i s v b, as our entries)"
                                : "narrow: pipelined XADD type DoorClosed data D";
    case E_NATS:
        return "js_PublishAsync + Complete/batch";
    }
    return "";
}

int lf_bench_backend(int argc, char **argv)
{
    const char *url = NULL, *raw = "event";
    int64_t server_pid = 0;
    int64_t events = 20000, batch = 100, nstreams = 1000, threads = 8, runs = 3;
    const lf_opt opts[] = {
        {"store", LF_OPT_STR, &url, "store URL: postgres://, redis:// or nats:// (required)"},
        {"events", LF_OPT_INT, &events, "events per phase (default 20000)"},
        {"batch", LF_OPT_INT, &batch, "events per append / raw batch (default 100)"},
        {"streams", LF_OPT_INT, &nstreams, "streams the batches go round robin over (1000)"},
        {"threads", LF_OPT_INT, &threads, "concurrent appenders in the second phase (8)"},
        {"runs", LF_OPT_INT, &runs, "runs; medians are reported (default 3)"},
        {"raw", LF_OPT_STR, &raw,
         "raw peer: event (the same events, default), narrow (stream, version, data only) or "
         "indexed (redis: event plus an id index, one HSET per batch; others: event)"},
        {"server-pid", LF_OPT_INT, &server_pid,
         "server PID for CPU per event (default: $LF_TEST_SERVER_PIDFILE's first line)"},
        {NULL, 0, NULL, NULL},
    };
    int rc = lf_opts_parse(
        "lockerfleet bench backend --store URL [--events N] [--batch B] "
        "[--streams S] [--threads T] [--runs R] [--raw event|narrow|indexed] [--server-pid PID]",
        opts, argc, argv, NULL, 0, NULL);
    if (rc) return rc == 1 ? 0 : 2;
    if (!url || events < 1 || batch < 1 || batch > 10000 || nstreams < 1 || threads < 1 ||
        threads > MAX_THREADS || runs < 1 || runs > MAX_RUNS) {
        fprintf(stderr,
                "lockerfleet bench backend: want --store URL, --batch 1..10000, "
                "--threads 1..%d, --runs 1..%d\n",
                MAX_THREADS, MAX_RUNS);
        return 2;
    }
    if (strncmp(url, "postgres", 8) == 0)
        g_engine = E_POSTGRES;
    else if (strncmp(url, "redis://", 8) == 0)
        g_engine = E_REDIS;
    else if (strncmp(url, "nats://", 7) == 0)
        g_engine = E_NATS;
    else {
        fprintf(stderr, "lockerfleet bench backend: postgres://, redis:// or nats:// only\n");
        return 2;
    }
    if (strcmp(raw, "event") == 0)
        g_raw_event = 1;
    else if (strcmp(raw, "narrow") == 0)
        g_raw_event = 0;
    else if (strcmp(raw, "indexed") == 0)
        g_raw_event = 2;
    else {
        fprintf(stderr, "lockerfleet bench backend: --raw event, narrow or indexed\n");
        return 2;
    }
    g_server_pid = lf_bench_server_pid(server_pid);
    g_url = url;
    g_tag = (unsigned)(lf_now_ms() & 0xffffffff) ^ (unsigned)getpid();
    lf_bench_event_data(g_pool, POOL_N);
    lf_store *s = NULL;
    char err[512];
    if ((rc = lf_store_open(url, &s, err, sizeof err))) {
        fprintf(stderr, "lockerfleet bench backend: %s\n", err);
        return 1;
    }
    if (raw_setup()) {
        lf_store_close(s);
        return 1;
    }
    printf("lockerfleet bench backend: %s (%s), %lld events of %d B per phase, batch %lld, "
           "%lld streams, %lld threads, %lld runs, %ld cpus\n",
           lf_store_backend(s), url, (long long)events, LF_BENCH_DATA_LEN, (long long)batch,
           (long long)nstreams, (long long)threads, (long long)runs, sysconf(_SC_NPROCESSORS_ONLN));
    printf("  raw engine: %s\n", raw_what());
    printf("  %-4s %14s %14s %14s %14s\n", "run", "ours x1", "raw x1", "ours xT", "raw xT");
    double r[4][MAX_RUNS], cs[4][MAX_RUNS], cc[4][MAX_RUNS], cp[4][MAX_RUNS], cpu[3];
    int failed = 0;
    for (int i = 0; i < runs && !failed; i++) {
        for (int k = 0; k < 4; k++) {
            r[k][i] = phase(k % 2 ? NULL : s, i, k < 2 ? 's' : 'c', k < 2 ? 1 : (int)threads,
                            (int)batch, events, nstreams, cpu);
            cs[k][i] = cpu[0];
            cc[k][i] = cpu[1];
            cp[k][i] = cpu[2];
        }
        printf("  %-4d %14.0f %14.0f %14.0f %14.0f   ev/s\n", i + 1, r[0][i], r[1][i], r[2][i],
               r[3][i]);
        fflush(stdout);
        for (int k = 0; k < 4; k++)
            failed |= r[k][i] == 0;
    }
    lf_store_close(s);
    if (failed) {
        fprintf(stderr, "lockerfleet bench backend: a phase failed\n");
        return 1;
    }
    double m[4];
    for (int k = 0; k < 4; k++)
        m[k] = median(r[k], (int)runs);
    printf("  %-4s %14.0f %14.0f %14.0f %14.0f   ev/s (median of %lld)\n", "med", m[0], m[1], m[2],
           m[3], (long long)runs);
    for (int k = 0; k < 4; k++)
        m[k] = median(cs[k], (int)runs);
    if (m[0] >= 0)
        printf("  %-4s %14.1f %14.1f %14.1f %14.1f   server CPU us/event (median)\n", "srv", m[0],
               m[1], m[2], m[3]);
    /* Without children: a redis AOF rewrite (a fork, its CPU counted when
     * reaped) lands in whichever phase it happens to, and swamps the line
     * above; postgres's own work is in its children, so read both. */
    for (int k = 0; k < 4; k++)
        m[k] = median(cp[k], (int)runs);
    if (m[0] >= 0)
        printf("  %-4s %14.1f %14.1f %14.1f %14.1f   server process alone (no children) us/event\n",
               "srv1", m[0], m[1], m[2], m[3]);
    for (int k = 0; k < 4; k++)
        m[k] = median(cc[k], (int)runs);
    printf("  %-4s %14.1f %14.1f %14.1f %14.1f   client CPU us/event (median; this process)\n",
           "cli", m[0], m[1], m[2], m[3]);
    for (int k = 0; k < 4; k++)
        m[k] = median(r[k], (int)runs);
    printf("  ratio ours/raw, 1 appender:  %.2f  (target >= 0.70) %s\n", m[0] / m[1],
           m[0] / m[1] >= 0.7 ? "ok" : "BELOW");
    printf("  ratio ours/raw, %lld appenders: %.2f  (target >= 0.70) %s\n", (long long)threads,
           m[2] / m[3], m[2] / m[3] >= 0.7 ? "ok" : "BELOW");
    return 0;
}
