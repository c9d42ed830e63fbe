/*
 * bench_reserve.c — 'lockerfleet bench reserve [--units U] [--conns C]
 * [--seconds S] [--hub URL --admin-token T] [--store URL]'.
 *
 * Reserve+confirm throughput across many units, the C successor of
 * bench/bench_reserve.py (whose Python clients took most of the 2 cores).
 * Starts a real hub as a child process (this binary, a temp data dir, the
 * embedded SQLite store, --quiet-http) unless --hub names one, registers U
 * units with 8 lockers each (SSSMMMLL, A01 on allotment), creates a user,
 * then C threads, each on one keep-alive connection, loop: POST
 * /v1/reservations for a random size on a random unit over a random
 * one-hour window in the next 4 weeks, then POST .../confirm. Each pair is
 * two durable appends. Prints pairs/s, 409 (unavailable) answers apart,
 * latency percentiles of a pair, and the hub's CPU per pair (from
 * /proc/PID/stat: the hub it started, or --hub-pid).
 */
#include "bench_util.h"
#include "bench_reserve.h"
#include "cli/cli.h"
#include "http/client.h"

#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define ADMIN "bench-admin-token-0123456789abcdef"
#define LAT_MAX 200000 /* pair latencies kept per thread */

typedef struct {
    const char *url;
    const char *token;
    int64_t units, deadline_us;
    uint64_t seed;
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

static void *reserve_main(void *arg)
{
    worker *w = arg;
    char *res_url = lf_asprintf("%s/v1/reservations", w->url);
    lf_http_opts o = {.bearer = w->token, .timeout_ms = 30000};
    int64_t base = (lf_now_ms() / 3600000 + 2) * 3600000;
    while (lf_mono_us() < w->deadline_us) {
        char from[LF_TIME_LEN], to[LF_TIME_LEN], body[256];
        int64_t start = base + (int64_t)(rnd(&w->seed) % (28 * 24)) * 3600000;
        lf_time_format(start, from);
        lf_time_format(start + 3600000, to);
        snprintf(body, sizeof body,
                 "{\"unit\":\"bench-%04llu\",\"size\":\"%c\",\"from\":\"%s\",\"to\":\"%s\"}",
                 (unsigned long long)(rnd(&w->seed) % (uint64_t)w->units), "SML"[rnd(&w->seed) % 3],
                 from, to);
        int64_t t0 = lf_mono_us();
        lf_http_result r;
        int rc = lf_http_call("POST", res_url, body, &o, &r);
        if (rc == 0 && r.status == 409) {
            w->unavailable++;
            lf_http_result_free(&r);
            continue;
        }
        json_t *j =
            rc == 0 && r.status == 201 ? json_loadb(r.body.data, r.body.len, 0, NULL) : NULL;
        const char *id = json_string_value(json_object_get(j, "id"));
        if (!id) {
            if (w->errors++ < 3)
                fprintf(stderr, "reserve: %s %ld %.*s\n", lf_strerror(rc), r.status,
                        (int)(r.body.len > 200 ? 200 : r.body.len), r.body.data ? r.body.data : "");
            json_decref(j);
            lf_http_result_free(&r);
            continue;
        }
        char *cu = lf_asprintf("%s/%s/confirm", res_url, id);
        json_decref(j);
        lf_http_result_free(&r);
        rc = lf_http_call("POST", cu, NULL, &o, &r);
        free(cu);
        if (rc == 0 && r.status == 200) {
            w->ok++;
            if (w->nlat < LAT_MAX) w->lat_us[w->nlat++] = lf_mono_us() - t0;
        } else if (w->errors++ < 3) {
            fprintf(stderr, "confirm: %s %ld %.*s\n", lf_strerror(rc), r.status,
                    (int)(r.body.len > 200 ? 200 : r.body.len), r.body.data ? r.body.data : "");
        }
        lf_http_result_free(&r);
    }
    free(res_url);
    return NULL;
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
    int64_t units = 1000, conns = 64, seconds = 10, hub_pid = 0;
    const char *hub = NULL, *admin_token = ADMIN, *store = NULL, *http_threads = NULL;
    const lf_opt opts[] = {
        {"units", LF_OPT_INT, &units, "units to spread reservations over (default 1000)"},
        {"conns", LF_OPT_INT, &conns,
         "client threads, one keep-alive connection each (default 64)"},
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
    if (units < 1 || units > 10000 || conns < 1 || conns > 1024 || seconds < 1) return 2;
    lf_init();
    lf_http_client_global_init();
    char dir[] = "/tmp/lf-bench-reserve-XXXXXX";
    char url[256], token[128] = "";
    pid_t pid = 0;
    int ret = 1;
    worker *w = lf_xcalloc((size_t)conns, sizeof *w);
    pthread_t *th = lf_xcalloc((size_t)conns, sizeof *th);
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
    if (setup(url, admin_token, units, token, sizeof token)) goto out;
    printf("reserve: registered %lld units in %.1f s; hub %s (pid %d), %lld connections, %lld s\n",
           (long long)units, (double)(lf_mono_us() - t0) / 1e6, url, (int)pid, (long long)conns,
           (long long)seconds);
    fflush(stdout); /* the pid, for perf record -p while it runs */
    double hub0 = pid > 0 ? lf_bench_proc_cpu_s(pid) : 0, gen0 = lf_bench_self_cpu_s();
    t0 = lf_mono_us();
    for (int64_t i = 0; i < conns; i++) {
        w[i].url = url;
        w[i].token = token;
        w[i].units = units;
        w[i].deadline_us = t0 + seconds * 1000000;
        w[i].seed = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1) ^ (uint64_t)t0;
        w[i].lat_us = lf_xmalloc(LAT_MAX * sizeof *w[i].lat_us);
        pthread_create(&th[i], NULL, reserve_main, &w[i]);
    }
    for (int64_t i = 0; i < conns; i++)
        pthread_join(th[i], NULL);
    double s = (double)(lf_mono_us() - t0) / 1e6;
    double hub_cpu = pid > 0 ? lf_bench_proc_cpu_s(pid) - hub0 : 0,
           gen_cpu = lf_bench_self_cpu_s() - gen0;
    int64_t ok = 0, un = 0, er = 0;
    size_t nlat = 0;
    for (int64_t i = 0; i < conns; i++) {
        ok += w[i].ok;
        un += w[i].unavailable;
        er += w[i].errors;
        nlat += w[i].nlat;
    }
    int64_t *lat = lf_xmalloc((nlat + 1) * sizeof *lat);
    nlat = 0;
    for (int64_t i = 0; i < conns; i++) {
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
    for (int64_t i = 0; i < conns; i++)
        free(w[i].lat_us);
    free(w);
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
