/*
 * bench_reserve.c — 'lockerfleet bench reserve [--units U] [--conns C]
 * [--threads T] [--seconds S] [--hub URL --admin-token T] [--store URL]'.
 *
 * Reserve+confirm throughput across many units, the C successor of
 * bench/bench_reserve.py (whose Python clients took most of the 2 cores).
 * Starts a real hub as a child process (this binary, a temp data dir, the
 * embedded SQLite store, --quiet-http) unless --hub names one, registers U
 * units with 8 lockers each (SSSMMMLL, A01 on allotment), creates a user,
 * then C keep-alive connections, driven by T threads with epoll (a thread
 * per connection cost the generator more CPU in wake-ups than its work,
 * on the hub's 2 cores), each loop: POST /v1/reservations for a random
 * size on a random unit over a random one-hour window in the next 4 weeks,
 * then POST .../confirm. Each pair is two durable appends. Prints pairs/s, 409 (unavailable)
 * answers apart, latency percentiles of a pair, and the hub's CPU per pair (from /proc/PID/stat:
 * the hub it started, or --hub-pid).
 */
#define _GNU_SOURCE /* memmem */
#include "bench_util.h"
#include "bench_reserve.h"
#include "cli/cli.h"
#include "http/client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define ADMIN "bench-admin-token-0123456789abcdef"
#define LAT_MAX 200000 /* pair latencies kept per thread */

/* One keep-alive connection of a load thread: one pair at a time. */
typedef struct {
    int fd;
    int confirming; /* the request in flight is the confirm */
    int64_t t0;     /* the pair's start */
    char in[16384];
    size_t inlen;
} conn;

typedef struct {
    const struct sockaddr_in *addr;
    const char *token;
    int64_t units, deadline_us, base_ms;
    uint64_t seed;
    conn *c;
    size_t nc;
    int64_t ok, unavailable, errors;
    int64_t *lat_us;
    size_t nlat;
} worker;

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Writes all of buf (waiting for room with poll: requests are small, so
 * it practically never waits). */
static int send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            poll(&p, 1, 1000);
            continue;
        }
        if (n <= 0) return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int send_reserve(worker *w, conn *c)
{
    char from[LF_TIME_LEN], to[LF_TIME_LEN], body[256], req[1024];
    int64_t start = w->base_ms + (int64_t)(rnd(&w->seed) % (28 * 24)) * 3600000;
    lf_time_format(start, from);
    lf_time_format(start + 3600000, to);
    int blen = snprintf(body, sizeof body,
                        "{\"unit\":\"bench-%04llu\",\"size\":\"%c\",\"from\":\"%s\",\"to\":\"%s\"}",
                        (unsigned long long)(rnd(&w->seed) % (uint64_t)w->units),
                        "SML"[rnd(&w->seed) % 3], from, to);
    int n = snprintf(req, sizeof req,
                     "POST /v1/reservations HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                     w->token, blen, body);
    c->confirming = 0;
    c->t0 = lf_mono_us();
    return send_all(c->fd, req, (size_t)n);
}

static int send_confirm(worker *w, conn *c, const char *id, size_t idlen)
{
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "POST /v1/reservations/%.*s/confirm HTTP/1.1\r\nHost: hub\r\n"
                     "Authorization: Bearer %s\r\nContent-Length: 0\r\n\r\n",
                     (int)idlen, id, w->token);
    c->confirming = 1;
    return send_all(c->fd, req, (size_t)n);
}

static void report_error(worker *w, const char *what, long status, const char *body, size_t len)
{
    if (w->errors++ < 3)
        fprintf(stderr, "%s: %ld %.*s\n", what, status, (int)(len > 200 ? 200 : len), body);
}

/* One complete answer on c (head h, body): the next request. Returns -1
 * when the connection cannot go on. */
static int on_answer(worker *w, conn *c, const lf_http_head *h, const char *body, size_t blen)
{
    int64_t now = lf_mono_us();
    if (!c->confirming) {
        const char *id = h->status == 201 ? memmem(body, blen, "\"id\":\"", 6) : NULL;
        if (id) {
            id += 6;
            const char *q = memchr(id, '"', blen - (size_t)(id - body));
            if (q && now < w->deadline_us + 30000000)
                return send_confirm(w, c, id, (size_t)(q - id));
        }
        if (h->status == 409)
            w->unavailable++;
        else
            report_error(w, "reserve", h->status, body, blen);
    } else if (h->status == 200) {
        w->ok++;
        if (w->nlat < LAT_MAX) w->lat_us[w->nlat++] = now - c->t0;
    } else {
        report_error(w, "confirm", h->status, body, blen);
    }
    if (now >= w->deadline_us) return 1; /* done: no new pair */
    return send_reserve(w, c);
}

/* Reads what arrived on c and answers each complete response. Returns 1
 * when c is finished (deadline), -1 on a failure, else 0. */
static int on_readable(worker *w, conn *c)
{
    for (;;) {
        ssize_t n = recv(c->fd, c->in + c->inlen, sizeof c->in - c->inlen, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
        if (n <= 0) return -1;
        c->inlen += (size_t)n;
        lf_http_head h;
        long hl = lf_http_parse_head(c->in, c->inlen, lf_now_ms(), &h);
        if (hl < 0) return -1;
        if (hl == 0 || h.content_length < 0) {
            if (c->inlen == sizeof c->in) return -1;
            continue;
        }
        size_t total = (size_t)hl + (size_t)h.content_length;
        if (total > sizeof c->in) return -1;
        if (c->inlen < total) continue;
        int rc = on_answer(w, c, &h, c->in + hl, (size_t)h.content_length);
        memmove(c->in, c->in + total, c->inlen - total);
        c->inlen -= total;
        if (rc) return rc;
    }
}

static const char *c_unanswered(const conn *c)
{
    return c->confirming ? "confirm" : "reserve";
}

/* A load thread: its connections, each looping reserve → confirm, driven
 * by one epoll loop (a thread per connection costs the generator more CPU
 * in wake-ups than the work, on the same 2 cores as the hub). */
static void *load_main(void *arg)
{
    worker *w = arg;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    size_t live = 0;
    for (size_t i = 0; i < w->nc; i++) {
        conn *c = &w->c[i];
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (c->fd < 0 || connect(c->fd, (const struct sockaddr *)w->addr, sizeof *w->addr) != 0) {
            report_error(w, "connect", 0, strerror(errno), strlen(strerror(errno)));
            if (c->fd >= 0) close(c->fd);
            c->fd = -1;
            continue;
        }
        fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
        if (send_reserve(w, c) == 0) live++;
    }
    while (live > 0) {
        struct epoll_event evs[64];
        int n = epoll_wait(ep, evs, 64, 1000);
        if (n < 0 && errno != EINTR) break;
        if (n == 0 && lf_mono_us() > w->deadline_us + 10000000) break; /* answers stopped */
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            int rc = on_readable(w, c);
            if (rc < 0) report_error(w, "connection", 0, "lost", 4);
            if (rc) {
                close(c->fd);
                c->fd = -1;
                live--;
            }
        }
    }
    for (size_t i = 0; i < w->nc; i++)
        if (w->c[i].fd >= 0) {
            report_error(w, c_unanswered(&w->c[i]), 0, "no answer within 10 s", 21);
            close(w->c[i].fd);
        }
    close(ep);
    return NULL;
}

/* "http://HOST:PORT" (an IPv4 address, as a started hub's) into addr. */
static int parse_addr(const char *url, struct sockaddr_in *addr)
{
    char host[64];
    int port = 0;
    memset(addr, 0, sizeof *addr);
    if (sscanf(url, "http://%63[0-9.]:%d", host, &port) != 2 || port < 1 || port > 65535 ||
        inet_pton(AF_INET, host, &addr->sin_addr) != 1) {
        fprintf(stderr, "bench reserve: want a hub URL http://IPV4:PORT, not '%s'\n", url);
        return -1;
    }
    addr->sin_family = AF_INET;
    addr->sin_port = htons((uint16_t)port);
    return 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Registers the units (201, or 409 when --hub already has them) and a user;
 * the user's token into token. */
static int setup(const char *url, const char *admin_token, int64_t units, char *token,
                 size_t tokenlen)
{
    lf_http_opts admin = {.bearer = admin_token, .timeout_ms = 30000};
    char *ru = lf_asprintf("%s/v1/units", url);
    int ret = 0;
    for (int64_t u = 0; u < units && !ret; u++) {
        char *reg = lf_asprintf(
            "{\"name\":\"bench-%04lld\",\"display_name\":\"bench %lld\",\"presence\":\"heartbeat\","
            "\"lockers\":[{\"id\":\"A00\",\"size\":\"S\"},{\"id\":\"A01\",\"size\":\"S\"},"
            "{\"id\":\"A02\",\"size\":\"S\"},{\"id\":\"A03\",\"size\":\"M\"},{\"id\":\"A04\","
            "\"size\":\"M\"},{\"id\":\"A05\",\"size\":\"M\"},{\"id\":\"A06\",\"size\":\"L\"},"
            "{\"id\":\"A07\",\"size\":\"L\"}],\"allotment\":[\"A01\"]}",
            (long long)u, (long long)u);
        lf_http_result r;
        int c = lf_http_call("POST", ru, reg, &admin, &r);
        if (c || (r.status != 201 && r.status != 409)) {
            fprintf(stderr, "bench reserve: registering bench-%04lld: %s %ld %.*s\n", (long long)u,
                    lf_strerror(c), r.status, (int)(r.body.len > 200 ? 200 : r.body.len),
                    r.body.data ? r.body.data : "");
            ret = 1;
        }
        lf_http_result_free(&r);
        free(reg);
    }
    free(ru);
    if (ret) return ret;
    char *uu = lf_asprintf("%s/v1/users", url);
    char body[128];
    snprintf(body, sizeof body, "{\"name\":\"bench-%lld\"}", (long long)lf_now_ms());
    lf_http_result r;
    int c = lf_http_call("POST", uu, body, &admin, &r);
    json_t *j = c == 0 && r.status == 201 ? json_loadb(r.body.data, r.body.len, 0, NULL) : NULL;
    const char *t = json_string_value(json_object_get(j, "token"));
    if (t)
        snprintf(token, tokenlen, "%s", t);
    else {
        fprintf(stderr, "bench reserve: creating a user: %s %ld\n", lf_strerror(c), r.status);
        ret = 1;
    }
    json_decref(j);
    lf_http_result_free(&r);
    free(uu);
    return ret;
}

int lf_bench_reserve(int argc, char **argv)
{
    int64_t units = 1000, conns = 64, seconds = 10, hub_pid = 0, threads = 1;
    const char *hub = NULL, *admin_token = ADMIN, *store = NULL, *http_threads = NULL;
    const lf_opt opts[] = {
        {"units", LF_OPT_INT, &units, "units to spread reservations over (default 1000)"},
        {"conns", LF_OPT_INT, &conns,
         "keep-alive connections, one pair at a time each (default 64)"},
        {"threads", LF_OPT_INT, &threads,
         "load threads polling the connections with epoll (default 1)"},
        {"seconds", LF_OPT_INT, &seconds, "how long to run (default 10)"},
        {"hub", LF_OPT_STR, &hub, "use this hub (URL) instead of starting one"},
        {"admin-token", LF_OPT_STR, &admin_token, "admin token of --hub"},
        {"hub-pid", LF_OPT_INT, &hub_pid, "pid of --hub, to report its CPU per pair"},
        {"store", LF_OPT_STR, &store, "store URL for the started hub (default its sqlite file)"},
        {"http-threads", LF_OPT_STR, &http_threads,
         "--http-threads of the started hub (default: the hub's default)"},
        {0},
    };
    int rc = lf_opts_parse("lockerfleet bench reserve [options]", opts, argc, argv, NULL, 0, NULL);
    if (rc) return rc == 1 ? 0 : 2;
    if (units < 1 || units > 10000 || conns < 1 || conns > 1024 || seconds < 1 || threads < 1 ||
        threads > conns) {
        fprintf(stderr, "bench reserve: want 1 <= units <= 10000, 1 <= threads <= conns <= 1024, "
                        "seconds >= 1\n");
        return 2;
    }
    lf_init();
    lf_http_client_global_init();
    char dir[] = "/tmp/lf-bench-reserve-XXXXXX";
    char url[256], token[128] = "";
    pid_t pid = 0;
    int ret = 1;
    worker *w = lf_xcalloc((size_t)threads, sizeof *w);
    pthread_t *th = lf_xcalloc((size_t)threads, sizeof *th);
    conn *cs = lf_xcalloc((size_t)conns, sizeof *cs);
    struct sockaddr_in addr;
    if (hub) {
        snprintf(url, sizeof url, "%s", hub);
        pid = (pid_t)hub_pid;
    } else {
        if (!mkdtemp(dir)) goto out;
        const char *extra[] = {"--log-level", "error", "--quiet-http", NULL, NULL, NULL};
        if (http_threads) {
            extra[3] = "--http-threads";
            extra[4] = http_threads;
        }
        pid = lf_bench_start_hub(dir, store, ADMIN, extra, url, sizeof url);
        if (pid <= 0 || !url[0]) {
            fprintf(stderr, "bench reserve: the hub did not start\n");
            goto out;
        }
    }
    int64_t t0 = lf_mono_us();
    if (parse_addr(url, &addr)) goto out;
    if (setup(url, admin_token, units, token, sizeof token)) goto out;
    printf("reserve: registered %lld units in %.1f s; hub %s (pid %d), %lld connections, %lld s\n",
           (long long)units, (double)(lf_mono_us() - t0) / 1e6, url, (int)pid, (long long)conns,
           (long long)seconds);
    fflush(stdout); /* the pid, for perf record -p while it runs */
    double hub0 = pid > 0 ? lf_bench_proc_cpu_s(pid) : 0, gen0 = lf_bench_self_cpu_s();
    t0 = lf_mono_us();
    for (int64_t i = 0, first = 0; i < threads; i++) {
        int64_t n = conns / threads + (i < conns % threads);
        w[i].addr = &addr;
        w[i].token = token;
        w[i].units = units;
        w[i].deadline_us = t0 + seconds * 1000000;
        w[i].base_ms = (lf_now_ms() / 3600000 + 2) * 3600000;
        w[i].seed = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1) ^ (uint64_t)t0;
        w[i].lat_us = lf_xmalloc(LAT_MAX * sizeof *w[i].lat_us);
        w[i].c = cs + first;
        w[i].nc = (size_t)n;
        first += n;
        pthread_create(&th[i], NULL, load_main, &w[i]);
    }
    for (int64_t i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    double s = (double)(lf_mono_us() - t0) / 1e6;
    double hub_cpu = pid > 0 ? lf_bench_proc_cpu_s(pid) - hub0 : 0,
           gen_cpu = lf_bench_self_cpu_s() - gen0;
    int64_t ok = 0, un = 0, er = 0;
    size_t nlat = 0;
    for (int64_t i = 0; i < threads; i++) {
        ok += w[i].ok;
        un += w[i].unavailable;
        er += w[i].errors;
        nlat += w[i].nlat;
    }
    int64_t *lat = lf_xmalloc((nlat + 1) * sizeof *lat);
    nlat = 0;
    for (int64_t i = 0; i < threads; i++) {
        memcpy(lat + nlat, w[i].lat_us, w[i].nlat * sizeof *lat);
        nlat += w[i].nlat;
    }
    qsort(lat, nlat, sizeof *lat, cmp_i64);
#define PCT(p) (nlat ? (double)lat[(size_t)((double)(nlat - 1) * (p))] / 1000.0 : 0.0)
    printf("reserve: %lld pairs in %.2f s = %.0f pairs/s (unavailable %lld, errors %lld); "
           "pair latency ms p50 %.2f p90 %.2f p99 %.2f max %.2f\n",
           (long long)ok, s, (double)ok / s, (long long)un, (long long)er, PCT(0.5), PCT(0.9),
           PCT(0.99), PCT(1.0));
    free(lat);
    if (ok > 0)
        printf("reserve: cpu hub %.2f s = %.1f us/pair, load generator %.2f s = %.1f us/pair;"
               " cpu-bound ceiling on %ld cores: hub alone %.0f pairs/s, hub+generator %.0f"
               " pairs/s\n",
               hub_cpu, hub_cpu * 1e6 / (double)ok, gen_cpu, gen_cpu * 1e6 / (double)ok,
               sysconf(_SC_NPROCESSORS_ONLN),
               hub_cpu > 0 ? (double)ok * (double)sysconf(_SC_NPROCESSORS_ONLN) / hub_cpu : 0.0,
               hub_cpu + gen_cpu > 0
                   ? (double)ok * (double)sysconf(_SC_NPROCESSORS_ONLN) / (hub_cpu + gen_cpu)
                   : 0.0);
    ret = er ? 1 : 0;
out:
    for (int64_t i = 0; i < threads; i++)
        free(w[i].lat_us);
    free(w);
    free(cs);
    free(th);
    if (pid > 0 && !hub) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
    if (!hub) {
        char *rm = lf_asprintf("rm -rf '%s'", dir);
        if (system(rm) != 0) fprintf(stderr, "bench reserve: could not remove %s\n", dir);
        free(rm);
    }
    return ret;
}
