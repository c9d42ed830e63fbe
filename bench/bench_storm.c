/*
 * bench_storm.c — 'lockerfleet bench storm --units N --backlog B'
 * (DESIGN §8, issue 5 item 5: the reconnect storm).
 *
 * Starts a real hub as a child process (this binary, 'hub', a temp data
 * dir, the embedded SQLite store unless --store), registers N units, then
 * every unit "comes back" at the same instant with B buffered events and
 * pushes them as a unit agent does: batches of up to --batch events
 * (POST /v1/units/{name}/events), in seq order, resending from acked_seq,
 * resuming from expected_seq on a gap, and honouring 429/503 Retry-After
 * with full jitter. --clients threads carry the N units (each thread
 * round-robins over its units, one batch at a time, so all units are in
 * the storm together); each thread keeps one keep-alive connection.
 *
 * Reports:
 *   stored     time from the storm's start until every unit's last event
 *              is acknowledged (acked_seq == B for all units);
 *   caught up  time until every projection has reached the log head as it
 *              was at that moment (GET /v1/projections);
 *   exactly once: the hub's lockerfleet_unit_events_ingested_total equals
 *              N*B, and --verify units (spread over the fleet) are read
 *              back: versions 1..B in order, each id the one sent;
 *   the hub's peak RSS (VmHWM, /proc/PID/status) and the 429s.
 *
 * Event ids are derived from (run nonce, unit index, seq), so a read-back
 * can check them without keeping 10M ids in memory; bodies are built on
 * the fly (the client's CPU competes with the hub's: reported too).
 */
#include "bench_util.h"
#include "bench_storm.h"
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

#define ADMIN "bench-storm-admin-token-0123456789abcdef"

typedef struct {
    char name[32];
    char token[80];
    int64_t acked;
    int64_t not_before_ms; /* mono; Retry-After */
} sunit;

typedef struct {
    const char *hub;
    sunit *units;
    int64_t nunits, backlog, batch, nclients;
    unsigned nonce;
    int64_t start_ms;
    atomic_llong r429, r503, gaps, sent_batches;
    atomic_int failed, go;
} storm;

typedef struct {
    storm *s;
    int64_t idx;
} client;

static void event_id(unsigned nonce, int64_t unit, int64_t seq, char out[LF_UUID_LEN])
{
    snprintf(out, LF_UUID_LEN, "%08x-%04x-4%03x-8%03x-%012llx", (unsigned)unit, nonce & 0xffff,
             (unsigned)((seq >> 48) & 0xfff), (unsigned)((seq >> 36) & 0xfff),
             (unsigned long long)(seq & 0xffffffffffffull));
}

static const char *const types[] = {"DoorOpened", "DoorClosed", "PaymentStarted",
                                    "PaymentSucceeded"};

static char *batch_body(const storm *s, int64_t unit, int64_t first, int64_t n, const char *t)
{
    lf_buf b;
    lf_buf_init(&b, (size_t)n * 200 + 32);
    lf_buf_printf(&b, "{\"events\":[");
    for (int64_t i = 0; i < n; i++) {
        int64_t seq = first + i;
        char id[LF_UUID_LEN];
        event_id(s->nonce, unit, seq, id);
        int k = (int)(seq % 4);
        if (k < 2)
            lf_buf_printf(&b,
                          "%s{\"seq\":%lld,\"id\":\"%s\",\"type\":\"%s\",\"time\":\"%s\","
                          "\"data\":{\"locker\":\"A01\",\"reason\":\"rental\"}}",
                          i ? "," : "", (long long)seq, id, types[k], t);
        else
            lf_buf_printf(&b,
                          "%s{\"seq\":%lld,\"id\":\"%s\",\"type\":\"%s\",\"time\":\"%s\","
                          "\"data\":{\"rental_id\":\"r-%lld-%lld\",\"amount_cents\":200,"
                          "\"currency\":\"EUR\"}}",
                          i ? "," : "", (long long)seq, id, types[k], t, (long long)unit,
                          (long long)(seq / 4));
    }
    lf_buf_printf(&b, "]}");
    lf_buf_append(&b, "", 1);
    return b.data;
}

static int64_t retry_after_ms(const lf_http_result *r)
{
    (void)r;
    return 1000; /* the hub sends Retry-After: 1 */
}

static void *client_main(void *arg)
{
    client *c = arg;
    storm *s = c->s;
    char t[LF_TIME_LEN];
    while (!atomic_load(&s->go))
        lf_sleep_ms(1);
    for (;;) {
        int64_t now = lf_mono_ms(), next_due = INT64_MAX;
        int pending = 0, sent = 0;
        for (int64_t u = c->idx; u < s->nunits && !atomic_load(&s->failed); u += s->nclients) {
            sunit *x = &s->units[u];
            if (x->acked >= s->backlog) continue;
            pending = 1;
            if (x->not_before_ms > now) {
                if (x->not_before_ms < next_due) next_due = x->not_before_ms;
                continue;
            }
            int64_t first = x->acked + 1;
            int64_t n = s->backlog - x->acked < s->batch ? s->backlog - x->acked : s->batch;
            lf_time_format(lf_now_ms(), t);
            char *body = batch_body(s, u, first, n, t);
            char *url = lf_asprintf("%s/v1/units/%s/events", s->hub, x->name);
            lf_http_opts o = {.bearer = x->token, .timeout_ms = 120000};
            lf_http_result r;
            int rc = lf_http_call("POST", url, body, &o, &r);
            atomic_fetch_add(&s->sent_batches, 1);
            sent = 1;
            if (rc == 0 && r.status == 200) {
                json_t *j = json_loadb(r.body.data, r.body.len, 0, NULL);
                x->acked = json_integer_value(json_object_get(j, "acked_seq"));
                json_decref(j);
            } else if (rc == 0 && r.status == 409) {
                json_t *j = json_loadb(r.body.data, r.body.len, 0, NULL);
                json_t *e = json_object_get(j, "expected_seq");
                if (json_is_integer(e)) {
                    x->acked = json_integer_value(e) - 1;
                    atomic_fetch_add(&s->gaps, 1);
                } else {
                    fprintf(stderr, "storm: %s: 409 %.*s\n", x->name,
                            (int)(r.body.len > 200 ? 200 : r.body.len), r.body.data);
                    atomic_store(&s->failed, 1);
                }
                json_decref(j);
            } else if (rc == 0 && (r.status == 429 || r.status == 503)) {
                atomic_fetch_add(r.status == 429 ? &s->r429 : &s->r503, 1);
                /* Retry-After, with full jitter on top, as units do */
                int64_t ra = retry_after_ms(&r);
                x->not_before_ms = lf_mono_ms() + ra + (int64_t)lf_random_uniform((uint32_t)ra);
            } else {
                fprintf(stderr, "storm: %s: %s %ld\n", x->name, lf_strerror(rc), r.status);
                x->not_before_ms = lf_mono_ms() + 1000; /* a transport error: retry */
            }
            lf_http_result_free(&r);
            free(body);
            free(url);
            now = lf_mono_ms();
        }
        if (!pending || atomic_load(&s->failed)) break;
        if (!sent && next_due != INT64_MAX) {
            int64_t wait = next_due - lf_mono_ms();
            if (wait > 0) lf_sleep_ms(wait > 50 ? 50 : wait);
        }
    }
    return NULL;
}

typedef struct {
    storm *s;
    int64_t idx;
    int ok;
} reg_arg;

static void *register_main(void *arg)
{
    reg_arg *a = arg;
    storm *s = a->s;
    a->ok = 1;
    for (int64_t u = a->idx; u < s->nunits; u += s->nclients) {
        sunit *x = &s->units[u];
        if (lf_bench_register_unit(s->hub, ADMIN, "bench storm", x->name, "heartbeat", NULL,
                                   x->token, sizeof x->token, NULL, 60000)) {
            a->ok = 0;
            break;
        }
    }
    return NULL;
}

/* kB value of a "Key:   N kB" line of /proc/PID/status; -1 if absent. */
static long proc_status_kb(pid_t pid, const char *key)
{
    char path[64], line[256];
    long v = -1;
    size_t kl = strlen(key);
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            v = strtol(line + kl + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* Sum of every sample of a metric family in the Prometheus text. */
static double metric_sum(const char *text, const char *name)
{
    double sum = 0;
    size_t nl = strlen(name);
    for (const char *p = text; p && *p;) {
        const char *e = strchr(p, '\n');
        if (strncmp(p, name, nl) == 0 && (p[nl] == '{' || p[nl] == ' ')) {
            const char *sp = memchr(p, ' ', e ? (size_t)(e - p) : strlen(p));
            if (p[nl] == '{') {
                const char *close = memchr(p, '}', e ? (size_t)(e - p) : strlen(p));
                sp = close ? strchr(close, ' ') : NULL;
            }
            if (sp) sum += strtod(sp + 1, NULL);
        }
        p = e ? e + 1 : NULL;
    }
    return sum;
}

static int get_json(const char *url, json_t **out)
{
    lf_http_opts o = {.bearer = ADMIN, .timeout_ms = 60000};
    lf_http_result r;
    int rc = lf_http_call("GET", url, NULL, &o, &r);
    *out = rc == 0 && r.status == 200 ? json_loadb(r.body.data, r.body.len, 0, NULL) : NULL;
    lf_http_result_free(&r);
    return *out ? 0 : -1;
}

/* 1 when every projection is at or past pos and idle, 0 if not, -1 error. */
static int projections_at(const char *hub, int64_t pos, int64_t *min_pos)
{
    json_t *j = NULL, *arr, *p;
    size_t i;
    char *url = lf_asprintf("%s/v1/projections", hub);
    int ret = -1;
    if (get_json(url, &j)) goto out;
    arr = json_is_array(j) ? j : json_object_get(j, "projections");
    if (!json_is_array(arr)) goto out;
    ret = 1;
    *min_pos = INT64_MAX;
    json_array_foreach(arr, i, p)
    {
        int64_t at = json_integer_value(json_object_get(p, "position"));
        if (at < *min_pos) *min_pos = at;
        if (at < pos) ret = 0;
    }
out:
    json_decref(j);
    free(url);
    return ret;
}

/* Reads unitlog-{name} back: versions 1..B in order, ids as sent. */
static int verify_unit(const storm *s, int64_t u)
{
    int64_t after = 0, want = 1;
    for (;;) {
        json_t *j = NULL;
        char *url = lf_asprintf("%s/v1/events?after=%lld&limit=1000&stream=unitlog-%s", s->hub,
                                (long long)after, s->units[u].name);
        int rc = get_json(url, &j);
        free(url);
        if (rc) return -1;
        json_t *evs = json_object_get(j, "events"), *e;
        size_t i, n = json_array_size(evs);
        json_array_foreach(evs, i, e)
        {
            char id[LF_UUID_LEN];
            event_id(s->nonce, u, want, id);
            if (json_integer_value(json_object_get(e, "version")) != want ||
                strcmp(json_string_value(json_object_get(e, "id")), id) != 0) {
                fprintf(stderr, "storm: %s: event %lld is not the one sent\n", s->units[u].name,
                        (long long)want);
                json_decref(j);
                return -1;
            }
            want++;
            after = json_integer_value(json_object_get(e, "position"));
        }
        json_decref(j);
        if (n < 1000) break;
    }
    return want - 1 == s->backlog ? 0 : -1;
}

int lf_bench_storm(int argc, char **argv)
{
    int64_t units = 1000, backlog = 100, batch = 500, clients = 128, verify = 16, limit_s = 900;
    const char *store = NULL, *inflight = "64";
    const lf_opt opts[] = {
        {"units", LF_OPT_INT, &units, "units reconnecting at once (default 1000)"},
        {"backlog", LF_OPT_INT, &backlog, "buffered events per unit (default 100)"},
        {"batch", LF_OPT_INT, &batch, "events per push (default 500, as the unit agent)"},
        {"clients", LF_OPT_INT, &clients, "client threads carrying the units (default 128)"},
        {"verify", LF_OPT_INT, &verify, "units read back and checked (default 16)"},
        {"ingest-inflight", LF_OPT_STR, &inflight, "the hub's --ingest-inflight (default 64)"},
        {"store", LF_OPT_STR, &store, "store URL for the hub (default its sqlite file)"},
        {"limit", LF_OPT_INT, &limit_s, "give up after this many seconds (default 900)"},
        {0},
    };
    int rc = lf_opts_parse("lockerfleet bench storm [options]", opts, argc, argv, NULL, 0, NULL);
    if (rc) return rc == 1 ? 0 : 2;
    if (units < 1 || units > 100000 || backlog < 1 || batch < 1 || batch > 1000 || clients < 1 ||
        clients > 1024 || verify < 0) {
        fprintf(stderr, "bench storm: bad options\n");
        return 2;
    }
    if (clients > units) clients = units;
    lf_init();
    lf_http_client_global_init();
    char dir[] = "/tmp/lf-bench-storm-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char url[256];
    int ret = 1;
    storm s;
    memset(&s, 0, sizeof s);
    const char *const extra[] = {
        "--log-level", "error", "--ingest-inflight", inflight, "--heartbeat-grace", "3600", NULL};
    pid_t pid = lf_bench_start_hub(dir, store, ADMIN, extra, url, sizeof url);
    client *cs = lf_xcalloc((size_t)clients, sizeof *cs);
    reg_arg *ra = lf_xcalloc((size_t)clients, sizeof *ra);
    pthread_t *th = lf_xcalloc((size_t)clients, sizeof *th);
    char *text = NULL;
    s.units = lf_xcalloc((size_t)units, sizeof *s.units);
    if (pid <= 0 || !url[0]) {
        fprintf(stderr, "bench storm: the hub did not start\n");
        goto out;
    }
    s.hub = url;
    s.nunits = units;
    s.backlog = backlog;
    s.batch = batch;
    s.nclients = clients;
    s.nonce = lf_random_uniform(0x10000);
    for (int64_t u = 0; u < units; u++)
        snprintf(s.units[u].name, sizeof s.units[u].name, "storm-%05lld", (long long)u);

    int64_t r0 = lf_mono_ms();
    for (int64_t i = 0; i < clients; i++) {
        ra[i] = (reg_arg){&s, i, 0};
        pthread_create(&th[i], NULL, register_main, &ra[i]);
    }
    int reg_ok = 1;
    for (int64_t i = 0; i < clients; i++) {
        pthread_join(th[i], NULL);
        reg_ok &= ra[i].ok;
    }
    if (!reg_ok) goto out;
    int64_t total = units * backlog;
    printf("storm: %lld units x %lld buffered events = %lld events, batches of %lld, %lld client "
           "threads, hub %s (pid %d, --ingest-inflight %s); registration took %.1f s\n",
           (long long)units, (long long)backlog, (long long)total, (long long)batch,
           (long long)clients, url, (int)pid, inflight, (double)(lf_mono_ms() - r0) / 1000.0);
    fflush(stdout);

    double hub_cpu0 = lf_bench_proc_cpu_s(pid);
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    for (int64_t i = 0; i < clients; i++) {
        cs[i] = (client){&s, i};
        pthread_create(&th[i], NULL, client_main, &cs[i]);
    }
    int64_t t0 = lf_mono_ms();
    atomic_store(&s.go, 1); /* everyone reconnects at once */
    long hwm_mid = 0;
    for (int64_t i = 0; i < clients; i++)
        pthread_join(th[i], NULL);
    int64_t t_stored = lf_mono_ms();
    getrusage(RUSAGE_SELF, &ru1);
    if (atomic_load(&s.failed)) goto out;
    for (int64_t u = 0; u < units; u++)
        if (s.units[u].acked != backlog) {
            fprintf(stderr, "storm: %s acked %lld of %lld\n", s.units[u].name,
                    (long long)s.units[u].acked, (long long)backlog);
            goto out;
        }
    hwm_mid = proc_status_kb(pid, "VmHWM");

    /* projections: caught up with the log head as it is now */
    json_t *hz = NULL;
    char *hzu = lf_asprintf("%s/healthz", url);
    int64_t head =
        get_json(hzu, &hz) == 0 ? json_integer_value(json_object_get(hz, "position")) : -1;
    json_decref(hz);
    free(hzu);
    int64_t minpos = 0, t_caught = 0;
    while (head >= 0 && lf_mono_ms() - t0 < limit_s * 1000) {
        int at = projections_at(url, head, &minpos);
        if (at < 0) break;
        if (at == 1) {
            t_caught = lf_mono_ms();
            break;
        }
        lf_sleep_ms(100);
    }
    double hub_cpu = lf_bench_proc_cpu_s(pid) - hub_cpu0;
    double cli_cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
                     (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
                     (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6 +
                     (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
    long hwm = proc_status_kb(pid, "VmHWM"), rss = proc_status_kb(pid, "VmRSS");

    /* exactly once: the hub's own count, and a read-back of some units */
    lf_http_result mr;
    char *mu = lf_asprintf("%s/metrics", url);
    lf_http_opts mo = {.bearer = ADMIN, .timeout_ms = 60000};
    if (lf_http_call("GET", mu, NULL, &mo, &mr) == 0 && mr.status == 200 && mr.body.data) {
        text = lf_xmalloc(mr.body.len + 1);
        memcpy(text, mr.body.data, mr.body.len);
        text[mr.body.len] = '\0';
    }
    lf_http_result_free(&mr);
    free(mu);
    double ingested = text ? metric_sum(text, "lockerfleet_unit_events_ingested_total") : -1;
    double dups = text ? metric_sum(text, "lockerfleet_unit_events_duplicate_total") : -1;
    double rejected = text ? metric_sum(text, "lockerfleet_ingest_rejected_total") : -1;
    int verified = 0, bad = 0;
    for (int64_t k = 0; k < verify && k < units; k++) {
        int64_t u = verify > 1 ? k * (units - 1) / (verify < units ? verify - 1 : units - 1) : 0;
        if (u >= units) u = units - 1;
        if (verify_unit(&s, u) == 0)
            verified++;
        else
            bad++;
    }

    double st = (double)(t_stored - t0) / 1000.0;
    printf("stored:     all %lld events acknowledged in %.2f s = %.0f events/s "
           "(%lld batches sent, %lld 429, %lld 503, %lld seq gaps)\n",
           (long long)total, st, (double)total / (st > 0 ? st : 1e-9),
           (long long)atomic_load(&s.sent_batches), (long long)atomic_load(&s.r429),
           (long long)atomic_load(&s.r503), (long long)atomic_load(&s.gaps));
    if (t_caught)
        printf("caught up:  every projection at the head (%lld) %.2f s after the storm began\n",
               (long long)head, (double)(t_caught - t0) / 1000.0);
    else
        printf("caught up:  NOT within %lld s (slowest projection at %lld of %lld)\n",
               (long long)limit_s, (long long)minpos, (long long)head);
    printf("exactly once: hub ingested %.0f (want %lld), %.0f duplicates acknowledged, "
           "%d/%d units read back intact\n",
           ingested, (long long)total, dups, verified, verified + bad);
    printf("hub:        peak RSS (VmHWM) %.1f MiB (%.1f MiB when all were stored), RSS now "
           "%.1f MiB; 429s issued %.0f; CPU %.1f s hub, %.1f s clients\n",
           (double)hwm / 1024.0, (double)hwm_mid / 1024.0, (double)rss / 1024.0, rejected, hub_cpu,
           cli_cpu);
    ret = (ingested == (double)total && bad == 0 && t_caught) ? 0 : 1;
out:
    if (pid > 0) {
        kill(pid, SIGTERM);
        int status, reaped = 0;
        for (int i = 0; i < 300 && !reaped; i++) {
            reaped = waitpid(pid, &status, WNOHANG) == pid;
            if (!reaped) lf_sleep_ms(100);
        }
        if (!reaped) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
        }
    }
    char *rm = lf_asprintf("rm -rf '%s'", dir);
    if (system(rm) != 0) fprintf(stderr, "bench storm: could not remove %s\n", dir);
    free(rm);
    free(text);
    free(s.units);
    free(cs);
    free(ra);
    free(th);
    return ret;
}
