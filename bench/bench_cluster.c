/*
 * bench_cluster.c — 'lockerfleet bench cluster --store URL [--nodes 1,3]':
 * presence and ingestion served by 1 hub node, then by 3 nodes, on this
 * machine, against one shared store server (issue 6: 3 nodes >= 1.5x one).
 *
 * For each node count K (a fresh store namespace each: postgres
 * ?schema=, redis ?prefix=):
 *   1. starts K `lockerfleet hub --node-id nI` children (this binary) on
 *      the store; node 0's hub.secret is copied into the others' data dirs
 *      before their first start (docs/ARCHITECTURE.md, "Running several hub
 *      nodes"); waits until the 16 shards are split between the K nodes;
 *   2. ingestion: registers --pushers heartbeat units (through node 0),
 *      then one thread per unit pushes batches of --batch events
 *      (POST /v1/units/{name}/events, keep-alive) to the node owning the
 *      unit's shard (--route owner) or to node (unit index mod K)
 *      (--route spread) for --seconds; events/s = events acknowledged /
 *      elapsed; then waits until every node's projections have folded
 *      them (lag 0 on each node's /v1/projections) and prints how long
 *      that took: every node folds every event, so acknowledged events/s
 *      alone would count work left for later;
 *   3. presence: registers --units poll units whose URL points at one
 *      responder process (the bench forks it; it answers /u/NAME/ping like
 *      the simulator and counts pings in shared memory); each node pings
 *      the units of its own shards every --ping-interval; after a warm-up
 *      the pings the responder answered during --seconds give pings/s
 *      (measured once every node has caught up, so catching up is not
 *      counted as presence work).
 *      With a short interval the pinger never idles: pings/s is what the
 *      nodes can do, not units / interval (the bench says which).
 * CPU seconds of the hubs, the store server (--server-pid, default the
 * first line of $LF_TEST_SERVER_PIDFILE), the responder and this process
 * (the pushers) are printed per event and per ping: on a 2-core machine
 * the ratio is bounded by CPU, and those figures say where it went.
 */
#define _GNU_SOURCE
#include "bench.h"
#include "bench_util.h"
#include "cli/cli.h"
#include "http/client.h"
#include "http/http.h"

#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define ADMIN "bench-admin-token-0123456789abcdef"
#define MAX_NODES 8
#define MAX_COUNTS 4
#define SHARDS 16

typedef struct {
    int k;
    pid_t pid[MAX_NODES];
    char url[MAX_NODES][256];
    char dir[MAX_NODES][300];
    int owner[SHARDS]; /* shard -> node index */
} cluster;

/* ---- responder (child process) ----------------------------------------- */
static atomic_llong *g_pings; /* shared with the responder (MAP_SHARED) */

static void responder(lf_http_req *req, lf_http_resp *resp, void *app)
{
    (void)app;
    size_t n = strlen(req->path);
    if (n >= 5 && strcmp(req->path + n - 5, "/ping") == 0) atomic_fetch_add(g_pings, 1);
    static const char body[] = "{\"name\":\"u\",\"seq_head\":0,\"config_version\":0}";
    lf_http_text(resp, 200, "application/json", body, sizeof body - 1);
}

static pid_t start_responder(int *port)
{
    int fds[2];
    if (pipe(fds)) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        close(fds[0]);
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        lf_http_config hc = {.listen = "127.0.0.1:0",
                             .conn_limit = 16384,
                             .quiet = 1,
                             .pool_threads = 2,
                             .log_component = "responder"};
        lf_http_server *s = lf_http_start(&hc, responder, NULL);
        int p = s ? lf_http_port(s) : -1;
        if (write(fds[1], &p, sizeof p) != sizeof p) _exit(1);
        close(fds[1]);
        for (;;)
            pause();
    }
    close(fds[1]);
    *port = -1;
    if (read(fds[0], port, sizeof *port) != sizeof *port || *port <= 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        pid = -1;
    }
    close(fds[0]);
    return pid;
}

/* ---- hubs -------------------------------------------------------------- */
static json_t *get_json(const char *url, const char *path)
{
    char *u = lf_asprintf("%s%s", url, path);
    lf_http_opts o = {.bearer = ADMIN, .timeout_ms = 10000};
    lf_http_result r;
    json_t *j = NULL;
    if (lf_http_call("GET", u, NULL, &o, &r) == 0 && r.status == 200)
        j = json_loadb(r.body.data, r.body.len, 0, NULL);
    lf_http_result_free(&r);
    free(u);
    return j;
}

/* Every node's projections have folded the whole log: GET /v1/projections
 * on each shows lag 0 everywhere. Returns the seconds it took, or -1 after
 * timeout_s. (With several nodes every node folds every event, so after an
 * ingestion phase the others may still be catching up; a presence phase
 * measured meanwhile would count that work as presence.) */
static double wait_caught_up(const cluster *c, int timeout_s)
{
    int64_t t0 = lf_mono_ms();
    while (lf_mono_ms() - t0 < (int64_t)timeout_s * 1000) {
        int behind = 0;
        for (int i = 0; i < c->k && !behind; i++) {
            json_t *pj = get_json(c->url[i], "/v1/projections");
            if (!json_is_array(pj)) behind = 1;
            size_t j;
            json_t *x;
            json_array_foreach(pj, j, x)
            {
                if (json_integer_value(json_object_get(x, "lag")) != 0) behind = 1;
            }
            json_decref(pj);
        }
        if (!behind) return (double)(lf_mono_ms() - t0) / 1000.0;
        lf_sleep_ms(100);
    }
    return -1;
}

static int copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = a ? fopen(to, "wb") : NULL;
    int rc = a && b ? 0 : -1;
    char buf[4096];
    size_t n;
    while (rc == 0 && (n = fread(buf, 1, sizeof buf, a)) > 0)
        if (fwrite(buf, 1, n, b) != n) rc = -1;
    if (a) fclose(a);
    if (b && fclose(b)) rc = -1;
    return rc;
}

/* Waits until node 0 sees the K nodes holding all 16 shards, each at least
 * one, with the same split on 4 looks in a row (1 s: the nodes hand
 * extras back when others join); fills c->owner. */
static int wait_split(cluster *c)
{
    int prev[SHARDS], same = 0;
    memset(prev, -1, sizeof prev);
    for (int tries = 0; tries < 240; tries++) {
        json_t *j = get_json(c->url[0], "/v1/cluster");
        int held = 0, nodes = 0, each[MAX_NODES] = {0}, own[SHARDS];
        memset(own, -1, sizeof own);
        size_t i;
        json_t *n;
        json_array_foreach(json_object_get(j, "nodes"), i, n)
        {
            const char *id = json_string_value(json_object_get(n, "id"));
            int idx = id && id[0] == 'n' ? atoi(id + 1) : -1;
            if (idx < 0 || idx >= c->k) continue;
            nodes++;
            size_t m;
            json_t *s;
            json_array_foreach(json_object_get(n, "shards"), m, s)
            {
                const char *h = json_string_value(s);
                int v = h && h[0] ? (int)strtol(h, NULL, 16) : -1;
                if (v >= 0 && v < SHARDS && own[v] < 0) {
                    own[v] = idx;
                    each[idx]++;
                    held++;
                }
            }
        }
        json_decref(j);
        int ok = nodes == c->k && held == SHARDS;
        for (int k = 0; ok && k < c->k; k++)
            ok = each[k] > 0;
        same = ok && memcmp(own, prev, sizeof own) == 0 ? same + 1 : 0;
        memcpy(prev, own, sizeof own);
        if (same >= 3) {
            memcpy(c->owner, own, sizeof own);
            return 0;
        }
        lf_sleep_ms(250);
    }
    return -1;
}

static void stop_cluster(cluster *c)
{
    for (int i = 0; i < c->k; i++)
        if (c->pid[i] > 0) kill(c->pid[i], SIGTERM);
    for (int i = 0; i < c->k; i++) {
        if (c->pid[i] > 0) waitpid(c->pid[i], NULL, 0);
        c->pid[i] = 0;
        if (c->dir[i][0]) {
            char *rm = lf_asprintf("rm -rf '%s'", c->dir[i]);
            if (system(rm) != 0) fprintf(stderr, "bench cluster: could not remove %s\n", c->dir[i]);
            free(rm);
        }
    }
}

static int start_cluster(cluster *c, int k, const char *store, const char *ping_interval)
{
    memset(c, 0, sizeof *c);
    c->k = k;
    for (int i = 0; i < k; i++) {
        snprintf(c->dir[i], sizeof c->dir[i], "/tmp/lf-bench-cluster-XXXXXX");
        if (!mkdtemp(c->dir[i])) {
            c->dir[i][0] = '\0';
            return -1;
        }
        char id[16];
        snprintf(id, sizeof id, "n%d", i);
        const char *extra[] = {"--node-id",
                               id,
                               "--log-level",
                               "warn",
                               "--quiet-http",
                               "--ping-interval",
                               ping_interval,
                               "--ping-timeout",
                               "5",
                               "--pull-interval",
                               "3600",
                               "--lease-renew",
                               "1",
                               "--ingest-inflight",
                               "128",
                               NULL};
        if (i > 0) {
            char *from = lf_asprintf("%s/hub.secret", c->dir[0]);
            char *to = lf_asprintf("%s/hub.secret", c->dir[i]);
            int rc = copy_file(from, to);
            free(from);
            free(to);
            if (rc) {
                fprintf(stderr, "bench cluster: cannot copy hub.secret\n");
                return -1;
            }
        }
        c->pid[i] = lf_bench_start_hub(c->dir[i], store, ADMIN, extra, c->url[i], sizeof c->url[i]);
        if (c->pid[i] <= 0 || !c->url[i][0]) {
            fprintf(stderr, "bench cluster: node %d did not start\n", i);
            return -1;
        }
    }
    if (wait_split(c)) {
        fprintf(stderr, "bench cluster: the shards were not split between %d nodes in 60 s\n", k);
        return -1;
    }
    return 0;
}

static double hubs_cpu(const cluster *c)
{
    double t = 0;
    for (int i = 0; i < c->k; i++)
        t += lf_bench_proc_cpu_s(c->pid[i]);
    return t;
}

/* ---- registration -------------------------------------------------------- */
typedef struct {
    char name[32];
    char token[80];
    int shard;
} unit;

typedef struct {
    const cluster *c;
    unit *u;
    size_t from, to;
    const char *presence;
    int resp_port;
    int failed;
} reg_job;

static void *reg_main(void *arg)
{
    reg_job *j = arg;
    for (size_t i = j->from; i < j->to && !j->failed; i++) {
        unit *x = &j->u[i];
        char url[128];
        if (j->resp_port > 0)
            snprintf(url, sizeof url, "http://127.0.0.1:%d/u/%s", j->resp_port, x->name);
        if (lf_bench_register_unit(j->c->url[0], ADMIN, "bench cluster", x->name, j->presence,
                                   j->resp_port > 0 ? url : NULL, x->token, sizeof x->token,
                                   &x->shard, 30000))
            j->failed = 1;
        else
            x->shard %= SHARDS;
    }
    return NULL;
}

/* Registers n units named PREFIX-%05d through node 0, 8 threads. */
static int register_units(const cluster *c, unit *u, size_t n, const char *prefix,
                          const char *presence, int resp_port)
{
    for (size_t i = 0; i < n; i++)
        snprintf(u[i].name, sizeof u[i].name, "%s-%05zu", prefix, i);
    enum { T = 8 };
    pthread_t th[T];
    reg_job jobs[T];
    for (int t = 0; t < T; t++) {
        jobs[t] = (reg_job){.c = c,
                            .u = u,
                            .from = n * (size_t)t / T,
                            .to = n * (size_t)(t + 1) / T,
                            .presence = presence,
                            .resp_port = resp_port};
        pthread_create(&th[t], NULL, reg_main, &jobs[t]);
    }
    int failed = 0;
    for (int t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
        failed |= jobs[t].failed;
    }
    return failed ? -1 : 0;
}

/* ---- pushers ------------------------------------------------------------- */
typedef struct {
    unit *u;
    char *url;
    int64_t batch, seq, acked, retries, deadline_us;
    int failed, warm;
} pusher;

static char *make_body(int64_t first_seq, int64_t n)
{
    lf_buf body;
    lf_buf_init(&body, 0);
    char t[LF_TIME_LEN];
    lf_time_format(lf_now_ms(), t);
    lf_buf_printf(&body, "{\"events\":[");
    for (int64_t i = 0; i < n; i++) {
        char id[LF_UUID_LEN];
        lf_uuid_v7(id); /* as the unit agent makes them */
        lf_buf_printf(&body,
                      "%s{\"seq\":%lld,\"id\":\"%s\",\"type\":\"DoorOpened\",\"time\":\"%s\","
                      "\"data\":{\"locker\":\"A01\",\"reason\":\"rental\"}}",
                      i ? "," : "", (long long)(first_seq + i), id, t);
    }
    lf_buf_printf(&body, "]}");
    lf_buf_append(&body, "", 1);
    return body.data;
}

static void *push_main(void *arg)
{
    pusher *p = arg;
    /* warm-up (untimed): one event, retried while the owner has not yet
     * read the unit's registration from the log (404) */
    if (p->warm) {
        char *body = make_body(p->seq + 1, 1);
        for (int tries = 0; tries < 400; tries++) {
            lf_http_result r;
            lf_http_opts o = {.bearer = p->u->token, .timeout_ms = 60000};
            int rc = lf_http_call("POST", p->url, body, &o, &r);
            long st = rc == 0 ? r.status : 0;
            lf_http_result_free(&r);
            if (st == 200) {
                p->seq++;
                break;
            }
            lf_sleep_ms(50);
        }
        free(body);
        return NULL;
    }
    while (!p->failed && lf_mono_us() < p->deadline_us) {
        char *body = make_body(p->seq + 1, p->batch);
        for (;;) {
            lf_http_result r;
            lf_http_opts o = {.bearer = p->u->token, .timeout_ms = 60000};
            int rc = lf_http_call("POST", p->url, body, &o, &r);
            if (rc == 0 && r.status == 200) {
                p->seq += p->batch;
                p->acked += p->batch;
                lf_http_result_free(&r);
                break;
            }
            if (rc == 0 && (r.status == 429 || r.status == 503)) {
                p->retries++;
                lf_http_result_free(&r);
                lf_sleep_ms(5);
                continue;
            }
            fprintf(stderr, "bench cluster: push %s: %s %ld %.*s\n", p->u->name, lf_strerror(rc),
                    r.status, (int)(r.body.len > 200 ? 200 : r.body.len),
                    r.body.data ? r.body.data : "");
            lf_http_result_free(&r);
            p->failed = 1;
            break;
        }
        free(body);
    }
    return NULL;
}

static int run_pushers(pusher *ps, size_t n)
{
    pthread_t *th = lf_xcalloc(n, sizeof *th);
    for (size_t i = 0; i < n; i++)
        pthread_create(&th[i], NULL, push_main, &ps[i]);
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        failed |= ps[i].failed;
    }
    free(th);
    return failed;
}

/* ---- one node count ------------------------------------------------------ */
typedef struct {
    double ev_s, ev_hub_us, ev_srv_us, ev_gen_us;
    double ping_s, ping_hub_us, ping_srv_us, ping_resp_us;
    double ev_all_s; /* events / (phase + time until every node folded them) */
    int64_t retries;
} result;

static int run_count(int k, const char *base_url, const char *tag, pid_t server_pid, pid_t resp_pid,
                     int resp_port, int64_t units, int64_t pushers, int64_t batch, int64_t seconds,
                     const char *ping_interval, int spread, result *res)
{
    char ns[64];
    snprintf(ns, sizeof ns, "lfcl_%s_%d", tag, k);
    const char *param = strncmp(base_url, "redis://", 8) == 0 ? "prefix" : "schema";
    char *store = lf_asprintf("%s%c%s=%s", base_url, strchr(base_url, '?') ? '&' : '?', param, ns);
    cluster c;
    unit *pu = lf_xcalloc((size_t)pushers, sizeof *pu);
    unit *uu = lf_xcalloc((size_t)units, sizeof *uu);
    pusher *ps = lf_xcalloc((size_t)pushers, sizeof *ps);
    int rc = -1;
    memset(res, 0, sizeof *res);
    if (start_cluster(&c, k, store, ping_interval)) goto out;
    printf("  %d node(s) up, shards:", k);
    for (int s = 0; s < SHARDS; s++)
        printf(" %x:n%d", s, c.owner[s]);
    printf("\n");
    fflush(stdout);

    /* ingestion */
    if (register_units(&c, pu, (size_t)pushers, "ci", "heartbeat", 0)) goto out;
    for (int64_t i = 0; i < pushers; i++) {
        int node = spread ? (int)(i % k) : c.owner[pu[i].shard];
        ps[i] = (pusher){.u = &pu[i], .batch = batch, .warm = 1};
        ps[i].url = lf_asprintf("%s/v1/units/%s/events", c.url[node], pu[i].name);
    }
    run_pushers(ps, (size_t)pushers); /* warm-up: every node knows its units */
    double h0 = hubs_cpu(&c), s0 = server_pid > 0 ? lf_bench_tree_cpu_s(server_pid) : -1,
           g0 = lf_bench_self_cpu_s();
    int64_t t0 = lf_mono_us();
    for (int64_t i = 0; i < pushers; i++) {
        ps[i].warm = 0;
        ps[i].deadline_us = t0 + seconds * 1000000;
    }
    if (run_pushers(ps, (size_t)pushers)) goto out;
    double el = (double)(lf_mono_us() - t0) / 1e6;
    int64_t ev = 0;
    for (int64_t i = 0; i < pushers; i++) {
        ev += ps[i].acked;
        res->retries += ps[i].retries;
    }
    if (ev == 0) goto out;
    res->ev_s = (double)ev / el;
    res->ev_hub_us = (hubs_cpu(&c) - h0) * 1e6 / (double)ev;
    res->ev_srv_us =
        server_pid > 0 ? (lf_bench_tree_cpu_s(server_pid) - s0) * 1e6 / (double)ev : -1;
    res->ev_gen_us = (lf_bench_self_cpu_s() - g0) * 1e6 / (double)ev;
    printf("  %d node(s) ingestion: %lld events in %.2f s = %.0f events/s (%lld 429/503 "
           "retries); CPU us/event: hubs %.1f, store server %.1f, pushers %.1f\n",
           k, (long long)ev, el, res->ev_s, (long long)res->retries, res->ev_hub_us, res->ev_srv_us,
           res->ev_gen_us);
    fflush(stdout);
    double cu = wait_caught_up(&c, 300);
    res->ev_all_s = cu < 0 ? 0 : (double)ev / (el + cu);
    if (cu < 0)
        printf("  %d node(s): projections not caught up 300 s after the phase\n", k);
    else
        printf("  %d node(s): every node's projections caught up %.1f s after the phase\n", k, cu);
    fflush(stdout);

    /* presence */
    if (register_units(&c, uu, (size_t)units, "cp", "poll", resp_port)) goto out;
    double iv = atof(ping_interval);
    /* warm-up: 3 full rounds were answered (the first pings open
     * connections), the owners have written every UnitCameOnline (the log
     * stopped growing for 2 s: /healthz "position") and 2 s more; at most
     * 120 s */
    long long w0 = atomic_load(g_pings);
    int64_t until = lf_mono_ms() + 120000, last = -1, stable_since = lf_mono_ms();
    while (lf_mono_ms() < until) {
        json_t *hz = get_json(c.url[0], "/healthz");
        int64_t pos = (int64_t)json_integer_value(json_object_get(hz, "position"));
        json_decref(hz);
        if (pos != last) {
            last = pos;
            stable_since = lf_mono_ms();
        }
        if (atomic_load(g_pings) - w0 >= 3 * units && lf_mono_ms() - stable_since >= 2000) break;
        lf_sleep_ms(250);
    }
    wait_caught_up(&c, 120); /* the others follow node 0's log too */
    lf_sleep_ms(2000);
    long long p0 = atomic_load(g_pings);
    h0 = hubs_cpu(&c);
    s0 = server_pid > 0 ? lf_bench_tree_cpu_s(server_pid) : -1;
    double r0 = lf_bench_proc_cpu_s(resp_pid);
    t0 = lf_mono_us();
    lf_sleep_ms(seconds * 1000);
    el = (double)(lf_mono_us() - t0) / 1e6;
    long long pings = atomic_load(g_pings) - p0;
    if (pings <= 0) {
        fprintf(stderr, "bench cluster: no pings answered\n");
        goto out;
    }
    res->ping_s = (double)pings / el;
    res->ping_hub_us = (hubs_cpu(&c) - h0) * 1e6 / (double)pings;
    res->ping_srv_us =
        server_pid > 0 ? (lf_bench_tree_cpu_s(server_pid) - s0) * 1e6 / (double)pings : -1;
    res->ping_resp_us = (lf_bench_proc_cpu_s(resp_pid) - r0) * 1e6 / (double)pings;
    double demand = iv > 0 ? (double)units / iv : 0;
    printf("  %d node(s) presence: %lld pings in %.2f s = %.0f pings/s (%s: %lld units every "
           "%s s = %.0f/s); CPU us/ping: hubs %.1f, store server %.1f, responder %.1f\n",
           k, pings, el, res->ping_s,
           res->ping_s < 0.9 * demand ? "saturated, below the demand" : "the whole demand",
           (long long)units, ping_interval, demand, res->ping_hub_us, res->ping_srv_us,
           res->ping_resp_us);
    fflush(stdout);
    rc = 0;
out:
    stop_cluster(&c);
    for (int64_t i = 0; i < pushers; i++)
        free(ps[i].url);
    free(ps);
    free(pu);
    free(uu);
    free(store);
    return rc;
}

int lf_bench_cluster(int argc, char **argv)
{
    const char *url = NULL, *nodes = "1,3", *ping_interval = "0.25", *route = "owner";
    int64_t units = 4000, pushers = 48, batch = 100, seconds = 10, server_pid = 0;
    const lf_opt opts[] = {
        {"store", LF_OPT_STR, &url, "shared store URL: postgres:// or redis:// (required)"},
        {"nodes", LF_OPT_STR, &nodes, "node counts to run, in order (default 1,3)"},
        {"units", LF_OPT_INT, &units, "poll units for presence (default 4000)"},
        {"pushers", LF_OPT_INT, &pushers, "pushing units, one thread each (default 48)"},
        {"batch", LF_OPT_INT, &batch, "events per pushed batch (default 100)"},
        {"seconds", LF_OPT_INT, &seconds, "measured seconds per phase (default 10)"},
        {"ping-interval", LF_OPT_STR, &ping_interval, "the hubs' --ping-interval (default 0.25)"},
        {"route", LF_OPT_STR, &route,
         "owner: each unit pushes to its shard's node; spread: to node (i mod K)"},
        {"server-pid", LF_OPT_INT, &server_pid,
         "store server PID for CPU figures (default: $LF_TEST_SERVER_PIDFILE's first line)"},
        {0},
    };
    int rc = lf_opts_parse("lockerfleet bench cluster --store URL [options]", opts, argc, argv,
                           NULL, 0, NULL);
    if (rc) return rc == 1 ? 0 : 2;
    int counts[MAX_COUNTS], ncounts = 0;
    for (const char *p = nodes; *p && ncounts < MAX_COUNTS;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > MAX_NODES) {
            ncounts = 0;
            break;
        }
        counts[ncounts++] = (int)v;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') {
            ncounts = 0;
            break;
        }
    }
    if (!url || (strncmp(url, "postgres", 8) != 0 && strncmp(url, "redis://", 8) != 0) ||
        ncounts == 0 || units < 1 || pushers < 1 || pushers > 1000 || batch < 1 || batch > 1000 ||
        seconds < 1 || atof(ping_interval) <= 0 ||
        (strcmp(route, "owner") != 0 && strcmp(route, "spread") != 0)) {
        fprintf(stderr, "lockerfleet bench cluster: want --store postgres://… or redis://…, "
                        "--nodes like 1,3 (1..8 each), --pushers 1..1000, --batch 1..1000, "
                        "--ping-interval > 0, --route owner|spread\n");
        return 2;
    }
    server_pid = lf_bench_server_pid(server_pid);
    lf_init();
    lf_http_client_global_init();
    g_pings =
        mmap(NULL, sizeof *g_pings, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (g_pings == MAP_FAILED) return 1;
    atomic_init(g_pings, 0);
    int port = -1;
    pid_t resp = start_responder(&port);
    if (resp <= 0) {
        fprintf(stderr, "bench cluster: the responder did not start\n");
        return 1;
    }
    char tag[16];
    snprintf(tag, sizeof tag, "%06x", lf_random_u32() & 0xffffff);
    printf("lockerfleet bench cluster: %s, %lld poll units (ping interval %s s), %lld pushing "
           "units x batch %lld (route %s), %lld s per phase, %ld cpus, responder pid %d\n",
           url, (long long)units, ping_interval, (long long)pushers, (long long)batch, route,
           (long long)seconds, sysconf(_SC_NPROCESSORS_ONLN), (int)resp);
    fflush(stdout);
    result res[MAX_COUNTS];
    int failed = 0;
    for (int i = 0; i < ncounts && !failed; i++)
        failed =
            run_count(counts[i], url, tag, (pid_t)server_pid, resp, port, units, pushers, batch,
                      seconds, ping_interval, strcmp(route, "spread") == 0, &res[i]) != 0;
    kill(resp, SIGKILL);
    waitpid(resp, NULL, 0);
    munmap(g_pings, sizeof *g_pings);
    if (failed) {
        fprintf(stderr, "lockerfleet bench cluster: a phase failed\n");
        return 1;
    }
    printf("  %-6s %14s %14s %14s %14s %14s\n", "nodes", "events/s", "folded ev/s", "hub us/event",
           "pings/s", "hub us/ping");
    for (int i = 0; i < ncounts; i++)
        printf("  %-6d %14.0f %14.0f %14.1f %14.0f %14.1f\n", counts[i], res[i].ev_s,
               res[i].ev_all_s, res[i].ev_hub_us, res[i].ping_s, res[i].ping_hub_us);
    printf("  (events/s: acknowledged during the phase; folded: the same events over the phase\n"
           "   plus the time until every node's projections had folded them)\n");
    for (int i = 1; i < ncounts; i++)
        printf("  ratio %d nodes / %d: ingestion %.2f acknowledged, %.2f folded; presence %.2f "
               "(target >= 1.5)\n",
               counts[i], counts[0], res[i].ev_s / res[0].ev_s,
               res[0].ev_all_s > 0 ? res[i].ev_all_s / res[0].ev_all_s : 0,
               res[i].ping_s / res[0].ping_s);
    return 0;
}
