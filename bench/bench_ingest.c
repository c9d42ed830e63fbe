/*
 * bench_ingest.c — 'lockerfleet bench ingest [--units U] [--batches B]
 * [--batch N] [--store URL]'.
 *
 * Starts a real hub as a child process (this binary, 'hub', a temp data
 * dir, the embedded SQLite store: every acknowledged batch is durable),
 * registers U units, then U threads push B batches of N events each over
 * HTTP (POST /v1/units/{name}/events, keep-alive), like U units pushing at
 * once. Bodies are built before the clock starts. Reports events/s from
 * the first send to the last acknowledgement, and checks every unit's
 * acked_seq. 429 answers are retried after Retry-After, as units do.
 * Then waits for every projection to reach the log head and reports the
 * hub's CPU time per event twice: up to the last ack, and including the
 * projections' catch-up (the whole cost of ingesting an event).
 */
#include "bench_util.h"
#include "bench_ingest.h"
#include "cli/cli.h"
#include "http/client.h"

#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define ADMIN "bench-admin-token-0123456789abcdef"

typedef struct {
    char name[32];
    char token[80];
    char *url;
    char **bodies;
    int64_t nbatches, batch, acked, retries;
    int failed;
} worker;

static void *push_main(void *arg)
{
    worker *w = arg;
    for (int64_t b = 0; b < w->nbatches && !w->failed;) {
        lf_http_result r;
        lf_http_opts o = {.bearer = w->token, .timeout_ms = 60000};
        int rc = lf_http_call("POST", w->url, w->bodies[b], &o, &r);
        if (rc == 0 && r.status == 200) {
            json_t *j = json_loadb(r.body.data, r.body.len, 0, NULL);
            w->acked = json_integer_value(json_object_get(j, "acked_seq"));
            json_decref(j);
            b++;
        } else if (rc == 0 && (r.status == 429 || r.status == 503)) {
            w->retries++;
            lf_sleep_ms(5); /* a bench: retry soon, not after a whole second */
        } else {
            fprintf(stderr, "%s: batch %lld: %s %ld %.*s\n", w->name, (long long)b, lf_strerror(rc),
                    r.status, (int)(r.body.len > 200 ? 200 : r.body.len),
                    r.body.data ? r.body.data : "");
            w->failed = 1;
        }
        lf_http_result_free(&r);
    }
    return NULL;
}

int lf_bench_ingest(int argc, char **argv)
{
    int64_t units = 100, batches = 10, batch = 500;
    const char *store = NULL;
    const lf_opt opts[] = {
        {"units", LF_OPT_INT, &units, "concurrent units (default 100)"},
        {"batches", LF_OPT_INT, &batches, "batches per unit (default 10)"},
        {"batch", LF_OPT_INT, &batch, "events per batch (default 500, max 1000)"},
        {"store", LF_OPT_STR, &store, "store URL for the hub (default its sqlite file)"},
        {0},
    };
    int rc = lf_opts_parse("lockerfleet bench ingest [options]", opts, argc, argv, NULL, 0, NULL);
    if (rc) return rc == 1 ? 0 : 2;
    if (units < 1 || units > 1000 || batches < 1 || batch < 1 || batch > 1000) return 2;
    lf_init();
    lf_http_client_global_init();
    char dir[] = "/tmp/lf-bench-ingest-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char url[256];
    static const char *const extra[] = {"--log-level", "warn", "--ingest-inflight", "128", NULL};
    pid_t pid = lf_bench_start_hub(dir, store, ADMIN, extra, url, sizeof url);
    int ret = 1;
    worker *w = lf_xcalloc((size_t)units, sizeof *w);
    pthread_t *th = lf_xcalloc((size_t)units, sizeof *th);
    if (pid <= 0 || !url[0]) {
        fprintf(stderr, "bench ingest: the hub did not start\n");
        goto out;
    }
    for (int64_t u = 0; u < units; u++) {
        worker *x = &w[u];
        snprintf(x->name, sizeof x->name, "bench-%04lld", (long long)u);
        if (lf_bench_register_unit(url, ADMIN, "bench ingest", x->name, "heartbeat", NULL, x->token,
                                   sizeof x->token, NULL, 0))
            goto out;
        x->url = lf_asprintf("%s/v1/units/%s/events", url, x->name);
        x->nbatches = batches;
        x->batch = batch;
        x->bodies = lf_xcalloc((size_t)batches, sizeof *x->bodies);
        char t[LF_TIME_LEN];
        lf_time_format(lf_now_ms(), t);
        for (int64_t b = 0; b < batches; b++) {
            lf_buf body;
            lf_buf_init(&body, 0);
            lf_buf_printf(&body, "{\"events\":[");
            for (int64_t i = 0; i < batch; i++) {
                char id[LF_UUID_LEN];
                lf_uuid_v7(id); /* as the unit agent makes them (src/unit/unit.c) */
                int64_t seq = b * batch + i + 1;
                lf_buf_printf(&body,
                              "%s{\"seq\":%lld,\"id\":\"%s\",\"type\":\"DoorOpened\",\"time\":"
                              "\"%s\",\"data\":{\"locker\":\"A01\",\"reason\":\"rental\"}}",
                              i ? "," : "", (long long)seq, id, t);
            }
            lf_buf_printf(&body, "]}");
            lf_buf_append(&body, "", 1);
            x->bodies[b] = body.data;
        }
    }
    int64_t total = units * batches * batch;
    printf("ingest: %lld units x %lld batches x %lld events = %lld events, hub %s (pid %d)\n",
           (long long)units, (long long)batches, (long long)batch, (long long)total, url, (int)pid);
    fflush(stdout); /* the pid, for perf record -p while it runs */
    double hub0 = lf_bench_proc_cpu_s(pid), gen0 = lf_bench_self_cpu_s();
    int64_t t0 = lf_mono_us();
    for (int64_t u = 0; u < units; u++)
        pthread_create(&th[u], NULL, push_main, &w[u]);
    for (int64_t u = 0; u < units; u++)
        pthread_join(th[u], NULL);
    double s = (double)(lf_mono_us() - t0) / 1e6;
    double hub_cpu = lf_bench_proc_cpu_s(pid) - hub0, gen_cpu = lf_bench_self_cpu_s() - gen0;
    /* The log's followers (projections above all) may still be behind the
     * last ack: their catch-up is part of the cost of an ingested event. */
    int64_t t_acked = lf_mono_us(), head = 0;
    int wrc = lf_bench_wait_projections(url, ADMIN, 300000, &head);
    double catchup_s = (double)(lf_mono_us() - t_acked) / 1e6;
    double hub_cpu_all = lf_bench_proc_cpu_s(pid) - hub0;
    int64_t retries = 0;
    ret = 0;
    for (int64_t u = 0; u < units; u++) {
        retries += w[u].retries;
        if (w[u].failed || w[u].acked != batches * batch) ret = 1;
    }
    printf("ingest: %lld events in %.3f s = %.0f events/s (%lld 429/503 retries)%s\n",
           (long long)total, s, (double)total / s, (long long)retries,
           ret ? " -- SOME UNITS FAILED" : ", every unit acked in full");
    /* CPU per event: what the 2 cores could do if nothing else ran. */
    printf(
        "ingest: cpu hub %.2f s = %.2f us/event, load generator %.2f s = %.2f us/event;"
        " cpu-bound ceiling on %ld cores: hub alone %.0f events/s, hub+generator %.0f events/s\n",
        hub_cpu, hub_cpu * 1e6 / (double)total, gen_cpu, gen_cpu * 1e6 / (double)total,
        sysconf(_SC_NPROCESSORS_ONLN),
        hub_cpu > 0 ? (double)total * (double)sysconf(_SC_NPROCESSORS_ONLN) / hub_cpu : 0.0,
        hub_cpu + gen_cpu > 0
            ? (double)total * (double)sysconf(_SC_NPROCESSORS_ONLN) / (hub_cpu + gen_cpu)
            : 0.0);
    if (wrc)
        printf("ingest: projections did not reach the head (%lld): %s\n", (long long)head,
               wrc > 0 ? "timeout" : "error");
    else
        printf("ingest: projections caught up with head %lld %.3f s after the last ack; cpu hub"
               " including their catch-up %.2f s = %.2f us/event\n",
               (long long)head, catchup_s, hub_cpu_all, hub_cpu_all * 1e6 / (double)total);
    if (wrc) ret = 1;
out:
    for (int64_t u = 0; u < units; u++) {
        for (int64_t b = 0; w[u].bodies && b < batches; b++)
            free(w[u].bodies[b]);
        free(w[u].bodies);
        free(w[u].url);
    }
    free(w);
    free(th);
    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
    char *rm = lf_asprintf("rm -rf '%s'", dir);
    if (system(rm) != 0) fprintf(stderr, "bench ingest: could not remove %s\n", dir);
    free(rm);
    return ret;
}
