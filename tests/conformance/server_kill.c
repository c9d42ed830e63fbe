/*
 * server_kill.c — kill -9 the store's server (or one node of a cluster)
 * while appends are in flight, for the server backends.
 *
 * Run under scripts/with-server.sh, which exports LF_TEST_STORE_URL,
 * LF_TEST_SERVER_PIDFILE (one PID per line, one line per node) and
 * LF_TEST_SERVER_RESTART (starts a killed server again; `… N` only node N).
 *
 * THREADS threads append to streams of their own (one writer per stream),
 * batches of 1..20 events with client-given ids and the exact expected
 * version. An append that fails (the server is gone, a leader election)
 * is retried with the same ids and expectation until it succeeds: if the
 * first try was stored and only its reply was lost, the retry is a
 * duplicate (idempotent ids) and reports the stored positions. Every
 * acknowledged batch is recorded.
 *
 * Each round: appends run for a while, one server/node is SIGKILLed at a
 * random moment, appends go on (a 3-node cluster keeps a quorum; a single
 * server fails them until it is back), the node is restarted, and the
 * round ends when appends have made progress again. At the end every
 * stream is read back and checked: versions 1..V contiguous with V the
 * last acknowledged version, every acknowledged batch there whole at its
 * reported positions with its ids, no id twice.
 *
 * LF_KILL_ROUNDS (default 3), LF_KILL_SEED. Exit 0 with a summary line.
 */
#define _GNU_SOURCE
#include "store/store.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define THREADS 4
#define STREAMS_PER_THREAD 4
#define MAX_BATCH 20
#define MAX_ACKS 200000

typedef struct {
    int stream; /* index */
    int n;
    int64_t first, last, last_version;
    char (*ids)[LF_UUID_LEN];
} ack;

static lf_store *g_store;
static char g_prefix[32];
static atomic_int g_stop;
static atomic_long g_acked;  /* batches acknowledged */
static atomic_long g_errors; /* failed tries (retried) */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static ack *g_acks;
static size_t g_nacks;
static int64_t g_version[THREADS * STREAMS_PER_THREAD];
static int g_fail;
static char g_last_err[300]; /* the last failed try, for the report */

static void stream_name(char *buf, size_t len, int i)
{
    snprintf(buf, len, "%s-kill-%d", g_prefix, i);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void *appender(void *p)
{
    int t = (int)(intptr_t)p;
    unsigned seed = (unsigned)t * 7919u + (unsigned)time(NULL);
    char data[MAX_BATCH][64];
    lf_event_in e[MAX_BATCH];
    for (int k = 0; !atomic_load(&g_stop); k++) {
        int si = t * STREAMS_PER_THREAD + k % STREAMS_PER_THREAD;
        char st[64];
        stream_name(st, sizeof st, si);
        int n = 1 + (int)(rand_r(&seed) % MAX_BATCH);
        char(*ids)[LF_UUID_LEN] = calloc((size_t)n, LF_UUID_LEN);
        for (int i = 0; i < n; i++) {
            lf_uuid_v4(ids[i]);
            snprintf(data[i], sizeof data[i], "{\"t\":%d,\"k\":%d,\"i\":%d}", t, k, i);
            e[i] = (lf_event_in){.id = ids[i], .type = "KillTest", .data = data[i]};
        }
        int64_t v = g_version[si]; /* only this thread writes it */
        lf_append_result r;
        int rc;
        for (;;) {
            rc = lf_store_append(g_store, st, v ? v : LF_EXPECT_NO_STREAM, e, (size_t)n, &r);
            if (rc == 0 || rc == LF_EINVAL || rc == LF_ECLOSED) break;
            if (rc == LF_ECONFLICT || rc == LF_EEXIST) break; /* never with one writer */
            atomic_fetch_add(&g_errors, 1);
            pthread_mutex_lock(&g_mu);
            snprintf(g_last_err, sizeof g_last_err, "%s: %s", lf_strerror(rc), lf_err_get());
            pthread_mutex_unlock(&g_mu);
            sleep_ms(50);
        }
        if (rc) {
            fprintf(stderr, "server_kill: FAIL: thread %d: append to %s at version %lld: %s (%s)\n",
                    t, st, (long long)v, lf_strerror(rc), lf_err_get());
            pthread_mutex_lock(&g_mu);
            g_fail = 1;
            pthread_mutex_unlock(&g_mu);
            free(ids);
            break;
        }
        g_version[si] = r.last_version;
        pthread_mutex_lock(&g_mu);
        if (g_nacks < MAX_ACKS)
            g_acks[g_nacks++] = (ack){.stream = si,
                                      .n = n,
                                      .first = r.first_position,
                                      .last = r.last_position,
                                      .last_version = r.last_version,
                                      .ids = ids};
        else
            free(ids);
        pthread_mutex_unlock(&g_mu);
        atomic_fetch_add(&g_acked, 1);
    }
    return NULL;
}

/* PIDs of the server nodes, from LF_TEST_SERVER_PIDFILE. */
static int read_pids(long *pids, int max)
{
    const char *f = getenv("LF_TEST_SERVER_PIDFILE");
    FILE *fp = f ? fopen(f, "r") : NULL;
    if (!fp) return 0;
    int n = 0;
    while (n < max && fscanf(fp, "%ld", &pids[n]) == 1)
        n++;
    fclose(fp);
    return n;
}

/* Waits until `more` batches were acknowledged after now, up to secs. */
static int progress(long more, int secs)
{
    long start = atomic_load(&g_acked);
    for (int i = 0; i < secs * 20; i++) {
        if (atomic_load(&g_acked) - start >= more) return 1;
        if (g_fail) return 0;
        sleep_ms(50);
    }
    return 0;
}

static int verify(void)
{
    int bad = 0;
    int nstreams = THREADS * STREAMS_PER_THREAD;
    int64_t events = 0;
    lf_event_list *all = calloc((size_t)nstreams, sizeof *all);
    for (int si = 0; si < nstreams; si++) {
        char st[64];
        stream_name(st, sizeof st, si);
        lf_event_list_init(&all[si]);
        for (int64_t from = 1;;) {
            size_t before = all[si].n;
            int rc = lf_store_read_stream(g_store, st, from, 1000, &all[si]);
            if (rc) {
                fprintf(stderr, "server_kill: FAIL: reading %s: %s\n", st, lf_err_get());
                bad = 1;
                break;
            }
            if (all[si].n == before) break;
            from = all[si].ev[all[si].n - 1].version + 1;
        }
        lf_event_list *l = &all[si];
        for (size_t i = 0; i < l->n; i++)
            if (l->ev[i].version != (int64_t)i + 1) {
                fprintf(stderr, "server_kill: FAIL: %s: event %zu has version %lld\n", st, i,
                        (long long)l->ev[i].version);
                bad = 1;
                break;
            }
        if ((int64_t)l->n != g_version[si]) {
            fprintf(stderr, "server_kill: FAIL: %s holds %zu events, %lld acknowledged\n", st, l->n,
                    (long long)g_version[si]);
            bad = 1;
        }
        events += (int64_t)l->n;
    }
    for (size_t a = 0; a < g_nacks && !bad; a++) {
        const ack *k = &g_acks[a];
        lf_event_list *l = &all[k->stream];
        int64_t v0 = k->last_version - k->n + 1;
        if (v0 < 1 || k->last_version > (int64_t)l->n) {
            fprintf(stderr, "server_kill: FAIL: acknowledged versions %lld..%lld missing\n",
                    (long long)v0, (long long)k->last_version);
            bad = 1;
            break;
        }
        for (int i = 0; i < k->n; i++) {
            const lf_event *e = &l->ev[v0 - 1 + i];
            if (strcmp(e->id, k->ids[i]) != 0 || e->position != k->first + i) {
                fprintf(stderr,
                        "server_kill: FAIL: %s version %lld: id %s at %lld, acknowledged %s at "
                        "%lld\n",
                        e->stream, (long long)e->version, e->id, (long long)e->position, k->ids[i],
                        (long long)(k->first + i));
                bad = 1;
                break;
            }
        }
        if (k->last != k->first + k->n - 1) bad = 1;
    }
    for (int si = 0; si < nstreams; si++)
        lf_event_list_free(&all[si]);
    free(all);
    if (!bad)
        printf("server_kill: %zu acknowledged batches, %lld events read back whole and in "
               "order\n",
               g_nacks, (long long)events);
    return bad;
}

int main(void)
{
    const char *url = getenv("LF_TEST_STORE_URL");
    const char *restart = getenv("LF_TEST_SERVER_RESTART");
    if (!url || !restart || !getenv("LF_TEST_SERVER_PIDFILE")) {
        fprintf(stderr, "server_kill: run under scripts/with-server.sh BACKEND\n");
        return 2;
    }
    if (lf_init() != 0) return 1;
    lf_log_set_level(LF_LOG_ERROR);
    int rounds = getenv("LF_KILL_ROUNDS") ? atoi(getenv("LF_KILL_ROUNDS")) : 3;
    unsigned seed = getenv("LF_KILL_SEED") ? (unsigned)strtoul(getenv("LF_KILL_SEED"), NULL, 10)
                                           : (unsigned)time(NULL) ^ (unsigned)getpid();
    unsigned seed0 = seed;
    snprintf(g_prefix, sizeof g_prefix, "k%08x", seed);
    char err[512];
    if (lf_store_open(url, &g_store, err, sizeof err)) {
        fprintf(stderr, "server_kill: %s\n", err);
        return 1;
    }
    printf("server_kill: %s, %d rounds, seed %u (LF_KILL_SEED)\n", url, rounds, seed);
    fflush(stdout);
    g_acks = calloc(MAX_ACKS, sizeof *g_acks);
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++)
        pthread_create(&th[t], NULL, appender, (void *)(intptr_t)t);
    for (int r = 1; r <= rounds && !g_fail; r++) {
        if (!progress(20, 60)) {
            fprintf(stderr, "server_kill: FAIL: round %d: appends make no progress\n", r);
            g_fail = 1;
            break;
        }
        sleep_ms(100 + (int)(rand_r(&seed) % 900));
        long pids[8];
        int np = read_pids(pids, 8);
        if (np < 1) {
            fprintf(stderr, "server_kill: FAIL: no server PID\n");
            g_fail = 1;
            break;
        }
        int node = (int)(rand_r(&seed) % (unsigned)np);
        long before = atomic_load(&g_acked);
        kill((pid_t)pids[node], SIGKILL);
        sleep_ms(2000);
        long during = atomic_load(&g_acked) - before;
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "%s %d >/dev/null 2>&1", restart, node + 1);
        int src = system(cmd);
        if (src != 0) {
            fprintf(stderr, "server_kill: FAIL: restart of node %d: status %d\n", node + 1, src);
            g_fail = 1;
            break;
        }
        int ok = progress(20, 60);
        printf("round %d: killed node %d of %d mid-append; %ld batches acknowledged in the 2 s "
               "without it; after its restart appends %s (%ld tries retried so far)\n",
               r, node + 1, np, during, ok ? "resumed" : "did NOT resume", atomic_load(&g_errors));
        fflush(stdout);
        if (!ok) {
            pthread_mutex_lock(&g_mu);
            fprintf(stderr, "server_kill: FAIL: last failed try: %s\n", g_last_err);
            pthread_mutex_unlock(&g_mu);
            g_fail = 1;
        }
    }
    atomic_store(&g_stop, 1);
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    if (!g_fail && verify()) g_fail = 1;
    for (size_t a = 0; a < g_nacks; a++)
        free(g_acks[a].ids);
    free(g_acks);
    lf_store_close(g_store);
    if (g_fail) {
        fprintf(stderr, "server_kill: FAILED (LF_KILL_SEED=%u)\n", seed0);
        return 1;
    }
    printf("server_kill passed\n");
    return 0;
}
