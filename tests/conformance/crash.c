/*
 * crash.c — kill -9 test for any store backend.
 *
 * A child process appends batches from several threads in a loop and,
 * after each append returns 0, reports (batch id, stream, first/last
 * position, last version, size) to the parent over a pipe. The parent
 * SIGKILLs the child at a random moment, then reopens the store and checks:
 *   - every acknowledged batch is there, whole, at the reported positions;
 *   - no batch is partly there (each batch's events are all-or-nothing:
 *     consecutive versions of one stream, increasing positions);
 *   - positions are contiguous from the first to the head (1..head for a
 *     fresh sqlite file);
 *   - every stream's versions are contiguous 1..version.
 * Several rounds; every round re-checks the whole history.
 *
 * Store from the environment, as in conformance.c: LF_TEST_STORE_URL, or
 * LF_TEST_STORE=sqlite (a fresh temp file). Knobs: LF_CRASH_ROUNDS (8),
 * LF_CRASH_SEED, LF_TEST_ALLOW_GAPS=1 (only strictly increasing positions
 * are required, for backends documented to leave permanent gaps).
 * Exit 0 with a summary line, 1 on any failure.
 */
#define _GNU_SOURCE
#include "store/store.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHILD_THREADS 4
#define STREAMS 40
#define MAX_BATCH 60

typedef struct {
    int64_t batch; /* round * 1e9 + thread * 1e8 + k */
    int64_t first, last, last_version;
    int32_t stream, n;
} ack;

static char g_url[1100];
static char g_prefix[32];
static int g_fail;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "crash: FAIL: " __VA_ARGS__);                                          \
            fputc('\n', stderr);                                                                   \
            g_fail = 1;                                                                            \
        }                                                                                          \
    } while (0)

/* ---- the child ----------------------------------------------------------- */
typedef struct {
    lf_store *s;
    int fd, round, thread;
    unsigned seed;
} child_arg;

static void *child_thread(void *p)
{
    child_arg *a = p;
    lf_event_in e[MAX_BATCH];
    static __thread char data[MAX_BATCH][160];
    for (int64_t k = 0;; k++) {
        int st = (int)(rand_r(&a->seed) % STREAMS);
        int n = 1 + (int)(rand_r(&a->seed) % MAX_BATCH);
        if (rand_r(&a->seed) % 4 == 0) n = 1;
        int64_t batch = (int64_t)a->round * 1000000000 + (int64_t)a->thread * 100000000 + k;
        char stream[96];
        snprintf(stream, sizeof stream, "%s-s%d", g_prefix, st);
        for (int i = 0; i < n; i++) {
            snprintf(data[i], sizeof data[i],
                     "{\"b\":%lld,\"i\":%d,\"n\":%d,\"pad\":\"crash-test-padding-0123456789\"}",
                     (long long)batch, i, n);
            e[i] = (lf_event_in){.type = "Crash", .data = data[i]};
        }
        lf_append_result r;
        int rc = lf_store_append(a->s, stream, LF_EXPECT_ANY, e, (size_t)n, &r);
        if (rc) {
            fprintf(stderr, "crash child: append failed: %s %s\n", lf_strerror(rc), lf_err_get());
            _exit(3);
        }
        ack m = {.batch = batch,
                 .first = r.first_position,
                 .last = r.last_position,
                 .last_version = r.last_version,
                 .stream = st,
                 .n = n};
        /* sizeof(ack) < PIPE_BUF: writes from threads do not interleave. */
        if (write(a->fd, &m, sizeof m) != (ssize_t)sizeof m) _exit(4);
    }
    return NULL;
}

static void child_main(int fd, int round, unsigned seed)
{
    lf_store *s;
    char err[512];
    int rc = lf_store_open(g_url, &s, err, sizeof err);
    if (rc) {
        fprintf(stderr, "crash child: open: %s\n", err);
        _exit(2);
    }
    pthread_t th[CHILD_THREADS];
    child_arg a[CHILD_THREADS];
    for (int i = 0; i < CHILD_THREADS; i++) {
        a[i] = (child_arg){.s = s, .fd = fd, .round = round, .thread = i, .seed = seed * 31 + i};
        pthread_create(&th[i], NULL, child_thread, &a[i]);
    }
    for (int i = 0; i < CHILD_THREADS; i++)
        pthread_join(th[i], NULL); /* never: killed */
    _exit(0);
}

/* ---- the parent's check ---------------------------------------------------- */
typedef struct {
    int64_t batch;
    int stream, n, seen;
    int64_t first_pos, last_pos, first_ver, last_ver;
    int bad;
} batch_seen;

typedef struct {
    batch_seen *v;
    size_t n, cap;
} batch_table;

static batch_seen *batch_get(batch_table *t, int64_t id)
{
    /* Open addressing on the batch id. */
    if (t->n * 2 >= t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 4096;
        batch_seen *nv = calloc(nc, sizeof *nv);
        for (size_t i = 0; i < nc; i++)
            nv[i].batch = -1;
        for (size_t i = 0; i < t->cap; i++)
            if (t->v[i].batch >= 0) {
                size_t h = (size_t)(t->v[i].batch * 0x9E3779B97F4A7C15ull) & (nc - 1);
                while (nv[h].batch >= 0)
                    h = (h + 1) & (nc - 1);
                nv[h] = t->v[i];
            }
        free(t->v);
        t->v = nv;
        t->cap = nc;
    }
    size_t h = (size_t)(id * 0x9E3779B97F4A7C15ull) & (t->cap - 1);
    while (t->v[h].batch >= 0 && t->v[h].batch != id)
        h = (h + 1) & (t->cap - 1);
    if (t->v[h].batch < 0) {
        memset(&t->v[h], 0, sizeof t->v[h]);
        t->v[h].batch = id;
        t->v[h].stream = -1;
        t->n++;
    }
    return &t->v[h];
}

/* Scans the store from `after` and checks everything against the acks. */
static int verify(int64_t after, const ack *acks, size_t nacks, int allow_gaps, int64_t *events_out,
                  int64_t *head_out)
{
    lf_store *s;
    char err[512];
    int rc = lf_store_open(g_url, &s, err, sizeof err);
    if (rc) {
        CHECK(0, "reopen after kill: %s: %s", lf_strerror(rc), err);
        return -1;
    }
    int64_t head = 0;
    rc = lf_store_head(s, &head);
    CHECK(rc == 0, "head: %s", lf_err_get());
    batch_table bt = {0};
    lf_event_list l;
    lf_event_list_init(&l);
    int64_t prev = after, events = 0, pfx = (int64_t)strlen(g_prefix);
    for (;;) {
        lf_event_list_free(&l);
        rc = lf_store_read_all(s, prev, 5000, &l);
        if (rc) {
            CHECK(0, "read_all after %lld: %s %s", (long long)prev, lf_strerror(rc), lf_err_get());
            break;
        }
        if (l.n == 0) break;
        for (size_t i = 0; i < l.n; i++) {
            const lf_event *e = &l.ev[i];
            if (allow_gaps)
                CHECK(e->position > prev, "position %lld after %lld", (long long)e->position,
                      (long long)prev);
            else
                CHECK(e->position == prev + 1, "gap: position %lld after %lld",
                      (long long)e->position, (long long)prev);
            prev = e->position;
            if (strncmp(e->stream, g_prefix, (size_t)pfx) != 0 || e->stream[pfx] != '-') continue;
            events++;
            json_t *j = json_loads(e->data, 0, NULL);
            json_int_t b = json_integer_value(json_object_get(j, "b"));
            int idx = (int)json_integer_value(json_object_get(j, "i"));
            int n = (int)json_integer_value(json_object_get(j, "n"));
            json_decref(j);
            int st = atoi(e->stream + pfx + 2);
            batch_seen *bs = batch_get(&bt, (int64_t)b);
            if (bs->seen == 0) {
                bs->stream = st;
                bs->n = n;
                bs->first_pos = e->position;
                bs->first_ver = e->version;
            } else if (bs->stream != st || bs->n != n || idx != bs->seen ||
                       e->version != bs->last_ver + 1 || e->position <= bs->last_pos) {
                bs->bad = 1;
            }
            if (bs->seen == 0 && idx != 0) bs->bad = 1;
            bs->seen++;
            bs->last_pos = e->position;
            bs->last_ver = e->version;
        }
    }
    lf_event_list_free(&l);
    CHECK(prev == head, "read_all ended at %lld but head is %lld", (long long)prev,
          (long long)head);
    if (after == 0 && !allow_gaps && head > 0)
        CHECK(events > 0 || head == 0, "no events of this run in 1..%lld", (long long)head);

    /* All or nothing for every batch found. */
    size_t partial = 0;
    for (size_t i = 0; i < bt.cap; i++) {
        batch_seen *bs = &bt.v[i];
        if (bs->batch < 0) continue;
        if (bs->bad || bs->seen != bs->n) {
            if (partial++ < 5)
                CHECK(0, "batch %lld partly there or torn: %d of %d events%s", (long long)bs->batch,
                      bs->seen, bs->n, bs->bad ? ", out of order" : "");
            else
                g_fail = 1;
        }
    }
    /* Every acknowledged batch is there, at the reported positions. */
    size_t lost = 0;
    for (size_t i = 0; i < nacks; i++) {
        const ack *a = &acks[i];
        batch_seen *bs = batch_get(&bt, a->batch);
        if (bs->seen != a->n || bs->first_pos != a->first || bs->last_pos != a->last ||
            bs->last_ver != a->last_version || bs->stream != a->stream) {
            if (lost++ < 5)
                CHECK(0,
                      "acknowledged batch %lld (%d events at %lld..%lld, v%lld) is missing or "
                      "differs: %d events at %lld..%lld",
                      (long long)a->batch, a->n, (long long)a->first, (long long)a->last,
                      (long long)a->last_version, bs->seen, (long long)bs->first_pos,
                      (long long)bs->last_pos);
            else
                g_fail = 1;
        }
    }
    /* Every stream's versions are contiguous 1..version. */
    for (int st = 0; st < STREAMS; st++) {
        char stream[96];
        snprintf(stream, sizeof stream, "%s-s%d", g_prefix, st);
        int64_t v = 0, want = 1;
        CHECK(lf_store_stream_version(s, stream, &v) == 0, "stream_version: %s", lf_err_get());
        for (;;) {
            lf_event_list_init(&l);
            if (lf_store_read_stream(s, stream, want, 5000, &l)) {
                CHECK(0, "read_stream %s: %s", stream, lf_err_get());
                break;
            }
            if (l.n == 0) break;
            for (size_t i = 0; i < l.n; i++, want++)
                CHECK(l.ev[i].version == want, "stream %s: version %lld where %lld expected",
                      stream, (long long)l.ev[i].version, (long long)want);
            lf_event_list_free(&l);
        }
        lf_event_list_free(&l);
        CHECK(want - 1 == v, "stream %s: read %lld versions but stream_version says %lld", stream,
              (long long)(want - 1), (long long)v);
    }
    free(bt.v);
    lf_store_close(s);
    *events_out = events;
    *head_out = head;
    return 0;
}

static void rm_tree(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void)
{
    if (lf_init()) return 1;
    char dir[256] = "";
    const char *url = getenv("LF_TEST_STORE_URL");
    const char *kind = getenv("LF_TEST_STORE");
    if (url && *url) {
        snprintf(g_url, sizeof g_url, "%s", url);
    } else if (kind && *kind && strcmp(kind, "sqlite") != 0) {
        fprintf(stderr, "LF_TEST_STORE=%s needs LF_TEST_STORE_URL\n", kind);
        return 2;
    } else {
        snprintf(dir, sizeof dir, "%s/lfcrash.XXXXXX",
                 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            return 1;
        }
        snprintf(g_url, sizeof g_url, "sqlite:%s/events.db", dir);
    }
    int rounds = getenv("LF_CRASH_ROUNDS") ? atoi(getenv("LF_CRASH_ROUNDS")) : 8;
    unsigned seed = getenv("LF_CRASH_SEED") ? (unsigned)strtoul(getenv("LF_CRASH_SEED"), NULL, 10)
                                            : lf_random_u32();
    int allow_gaps = getenv("LF_TEST_ALLOW_GAPS") && atoi(getenv("LF_TEST_ALLOW_GAPS"));
    snprintf(g_prefix, sizeof g_prefix, "k%08x", lf_random_u32());
    srand(seed);
    printf("crash test: %s, %d rounds, seed %u (LF_CRASH_SEED), prefix %s\n", g_url, rounds, seed,
           g_prefix);

    /* Where this run's events start (a shared server store is not empty). */
    int64_t start = 0;
    {
        lf_store *s;
        char err[512];
        int rc = lf_store_open(g_url, &s, err, sizeof err);
        if (rc) {
            fprintf(stderr, "crash: cannot open %s: %s\n", g_url, err);
            return 1;
        }
        lf_store_head(s, &start);
        lf_store_close(s);
    }

    ack *acks = NULL;
    size_t nacks = 0, cap = 0;
    int64_t events = 0, head = 0;
    for (int round = 0; round < rounds && !g_fail; round++) {
        int fds[2];
        if (pipe(fds)) {
            perror("pipe");
            return 1;
        }
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            close(fds[0]);
            child_main(fds[1], round + 1, seed + (unsigned)round);
        }
        close(fds[1]);
        /* Wait for the child's first acknowledged append (it has opened the
         * store and is appending), then kill it at a random moment after,
         * often in the middle of a commit. */
        size_t before = nacks;
        if (nacks == cap) {
            cap = cap ? cap * 2 : 4096;
            acks = realloc(acks, cap * sizeof *acks);
        }
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        if (poll(&pfd, 1, 60000) == 1 &&
            read(fds[0], &acks[nacks], sizeof *acks) == (ssize_t)sizeof *acks)
            nacks++;
        int delay = 20 + rand() % 500;
        lf_sleep_ms(delay);
        kill(pid, SIGKILL);
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        for (;;) {
            if (nacks == cap) {
                cap = cap ? cap * 2 : 4096;
                acks = realloc(acks, cap * sizeof *acks);
            }
            ssize_t r = read(fds[0], &acks[nacks], sizeof *acks);
            if (r == (ssize_t)sizeof *acks)
                nacks++;
            else if (r < 0 && errno == EINTR)
                continue;
            else
                break;
        }
        close(fds[0]);
        if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
            CHECK(0, "round %d: the child ended by itself (status %d) before the kill", round + 1,
                  status);
            break;
        }
        int64_t round_events = 0;
        for (size_t i = before; i < nacks; i++)
            round_events += acks[i].n;
        verify(start, acks, nacks, allow_gaps, &events, &head);
        printf("round %d: killed %d ms after the first ack, %zu batches (%lld events) "
               "acknowledged; store: "
               "%lld events of this run, head %lld: %s\n",
               round + 1, delay, nacks - before, (long long)round_events, (long long)events,
               (long long)head, g_fail ? "FAILED" : "ok");
        if (nacks == before) CHECK(0, "round %d: nothing was acknowledged", round + 1);
    }
    if (!g_fail && nacks == 0) CHECK(0, "no append was ever acknowledged");
    printf("crash test %s: %d rounds, %zu acknowledged batches, %lld events checked, head %lld\n",
           g_fail ? "FAILED" : "passed", rounds, nacks, (long long)events, (long long)head);
    free(acks);
    if (dir[0] && !g_fail)
        rm_tree(dir);
    else if (dir[0])
        printf("store kept for inspection: %s\n", dir);
    return g_fail ? 1 : 0;
}
