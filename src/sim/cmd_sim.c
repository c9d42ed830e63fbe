/*
 * cmd_sim.c — 'lockerfleet sim': thousands of units in one process, each
 * the real unit agent (src/unit: its own state machine and local log, all
 * in one shared SQLite file keyed by unit, so 10,000 units cost one fd).
 *
 *   - registers its units with the hub (admin API), saving the credentials
 *     it gets in DATA/credentials.jsonl so a restart reuses them (a 409 from
 *     the hub then just means "already registered");
 *   - serves every unit's API on one port under /u/{name}/...;
 *   - a small pool of worker threads drives everything: a min-heap orders
 *     the units by the time their next piece of work is due (scripted
 *     behaviour, going offline/online, uplink step). No thread per unit.
 *
 * Behaviour is seeded (--seed): each unit has its own PRNG stream, so a
 * run's decisions are reproducible given the same timing.
 */
#define _GNU_SOURCE
#include "cli/cli.h"
#include "core/lf.h"
#include "http/client.h"
#include "http/http.h"
#include "unit/unit.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define SIM_CODES 8

typedef struct {
    char name[65];
    _Atomic(lf_unit *) u;
    uint64_t rng;
    int64_t next_act, next_up, next_toggle;
    bool off, flapper;
    char codes[SIM_CODES][16];
    int ncodes;
    int heap_pos;
    /* credentials */
    char token[65], hub_token[129], key_hex[65];
    bool have_creds;
} sim_unit;

typedef struct {
    const char *hub, *admin_token, *prefix, *presence, *uplink, *ca_file;
    int64_t nunits, seed, workers;
    double offline_fraction, epm, slow_fraction, flap_fraction, storm_s, push_s, hb_s;
    char base_url[300];
} sim_opts;

typedef struct {
    sim_opts o;
    sim_unit *units; /* sorted by name */
    int n;
    lf_unit_db *db;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int *heap; /* unit indexes, min-heap on due */
    int64_t *due;
    int nheap;
    atomic_int stop;
    int64_t storm_end; /* mono ms; 0 = none */
    FILE *creds;
    pthread_mutex_t creds_mu;
    atomic_int next_reg, reg_failed;
    atomic_llong actions;
} sim;

static volatile sig_atomic_t sim_signalled;
static void on_signal(int sig)
{
    (void)sig;
    sim_signalled = 1;
}

/* ---- per-unit PRNG (splitmix64) ------------------------------------------ */
static uint64_t rnd(sim_unit *su)
{
    uint64_t z = (su->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static double rnd01(sim_unit *su)
{
    return (double)(rnd(su) >> 11) / 9007199254740992.0;
}
static int64_t rnd_exp_ms(sim_unit *su, double mean_ms)
{
    double u = rnd01(su);
    if (u < 1e-12) u = 1e-12;
    return (int64_t)(-log(u) * mean_ms) + 1;
}

/* ---- heap ------------------------------------------------------------------ */
static void heap_swap(sim *s, int a, int b)
{
    int t = s->heap[a];
    s->heap[a] = s->heap[b];
    s->heap[b] = t;
    s->units[s->heap[a]].heap_pos = a;
    s->units[s->heap[b]].heap_pos = b;
}
static void heap_push(sim *s, int idx, int64_t due)
{
    s->due[idx] = due;
    int i = s->nheap++;
    s->heap[i] = idx;
    s->units[idx].heap_pos = i;
    while (i > 0 && s->due[s->heap[(i - 1) / 2]] > s->due[s->heap[i]]) {
        heap_swap(s, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}
static int heap_pop(sim *s)
{
    int top = s->heap[0];
    s->heap[0] = s->heap[--s->nheap];
    s->units[s->heap[0]].heap_pos = 0;
    int i = 0;
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < s->nheap && s->due[s->heap[l]] < s->due[s->heap[m]]) m = l;
        if (r < s->nheap && s->due[s->heap[r]] < s->due[s->heap[m]]) m = r;
        if (m == i) break;
        heap_swap(s, i, m);
        i = m;
    }
    return top;
}

/* ---- lookup --------------------------------------------------------------- */
static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const sim_unit *)a)->name, ((const sim_unit *)b)->name);
}
static sim_unit *find_unit(sim *s, const char *name)
{
    sim_unit key;
    snprintf(key.name, sizeof key.name, "%s", name);
    return bsearch(&key, s->units, (size_t)s->n, sizeof *s->units, cmp_name);
}

/* ---- HTTP ------------------------------------------------------------------- */
static void sim_status(sim *s, lf_http_resp *resp)
{
    int ready = 0, offline = 0, connected = 0;
    int64_t head = 0, acked = 0;
    for (int i = 0; i < s->n; i++) {
        lf_unit *u = atomic_load(&s->units[i].u);
        if (!u) continue;
        lf_unit_status st;
        lf_unit_get_status(u, &st);
        ready++;
        offline += lf_unit_is_offline(u);
        connected += st.connected;
        head += st.seq_head;
        acked += st.acked_seq;
    }
    lf_http_json(resp, 200,
                 json_pack("{s:i,s:i,s:i,s:i,s:I,s:I,s:I,s:b}", "units", s->n, "ready", ready,
                           "offline", offline, "connected", connected, "events", (json_int_t)head,
                           "acked", (json_int_t)acked, "actions",
                           (json_int_t)atomic_load(&s->actions), "storm",
                           s->storm_end > lf_mono_ms()));
}

static void serve(lf_http_req *req, lf_http_resp *resp, void *app)
{
    sim *s = app;
    if (req->nsegs >= 2 && strcmp(req->segs[0], "u") == 0) {
        sim_unit *su = find_unit(s, req->segs[1]);
        lf_unit *u = su ? atomic_load(&su->u) : NULL;
        if (!su)
            lf_http_error(resp, 404, "not_found", "no unit '%.64s' in this simulator",
                          req->segs[1]);
        else if (!u)
            lf_http_error(resp, 503, "starting", "unit is starting");
        else
            lf_unit_handle(u, req, resp, 2);
        return;
    }
    if (req->nsegs == 1 && strcmp(req->segs[0], "healthz") == 0) {
        lf_http_json(resp, 200, json_pack("{s:s}", "status", "ok"));
        return;
    }
    if (req->nsegs == 2 && strcmp(req->segs[0], "sim") == 0 &&
        strcmp(req->segs[1], "status") == 0) {
        sim_status(s, resp);
        return;
    }
    lf_http_error(resp, 404, "not_found", "try /u/{name}/ping");
}

/* ---- credentials ------------------------------------------------------------ */
static void load_creds(sim *s, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        json_t *j = json_loads(line, 0, NULL);
        const char *name = json_string_value(json_object_get(j, "name"));
        const char *tok = json_string_value(json_object_get(j, "token"));
        const char *key = json_string_value(json_object_get(j, "booking_key"));
        const char *ht = json_string_value(json_object_get(j, "hub_token"));
        sim_unit *su = name ? find_unit(s, name) : NULL;
        if (su && tok && strlen(tok) < sizeof su->token) {
            snprintf(su->token, sizeof su->token, "%s", tok);
            snprintf(su->key_hex, sizeof su->key_hex, "%s", key && strlen(key) == 64 ? key : "");
            snprintf(su->hub_token, sizeof su->hub_token, "%s",
                     ht && strlen(ht) < sizeof su->hub_token ? ht : "");
            su->have_creds = true;
            n++;
        }
        json_decref(j);
    }
    fclose(f);
    LF_INFO("sim", "reusing saved credentials of %d units", n);
}

static void lockers_of(sim_unit *su, lf_unit_locker *lk, int *n, int *nallot)
{
    uint64_t saved = su->rng;
    *n = 10 + (int)(rnd(su) % 31); /* 10..40 */
    for (int i = 0; i < *n; i++) {
        snprintf(lk[i].id, sizeof lk[i].id, "%c%02d", 'A' + i / 10, i % 10 + 1);
        double r = rnd01(su);
        lk[i].size = r < 0.5 ? 'S' : r < 0.85 ? 'M' : 'L';
    }
    *nallot = *n / 5; /* the first fifth is the offline allotment */
    su->rng = saved;  /* the same lockers every start */
}

static int register_one(sim *s, sim_unit *su)
{
    lf_unit_locker lk[64];
    int n, nallot, rc = 0;
    lockers_of(su, lk, &n, &nallot);
    json_t *ls = json_array(), *al = json_array();
    for (int i = 0; i < n; i++) {
        char sz[2] = {lk[i].size, 0};
        json_array_append_new(ls, json_pack("{s:s,s:s}", "id", lk[i].id, "size", sz));
        if (i < nallot) json_array_append_new(al, json_string(lk[i].id));
    }
    char *url = lf_asprintf("%s/u/%s", s->o.base_url, su->name);
    char *dn = lf_asprintf("Locker station %s", su->name);
    json_t *body =
        json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:o,s:o}", "name", su->name, "display_name", dn, "url",
                  url, "presence", s->o.presence, "uplink", s->o.uplink, "heartbeat_interval_ms",
                  (json_int_t)(s->o.hb_s * 1000), "lockers", ls, "allotment", al);
    char *text = json_dumps(body, JSON_COMPACT);
    char *reg_url = lf_asprintf("%s/v1/units", s->o.hub);
    lf_http_opts ho = {.bearer = s->o.admin_token, .ca_file = s->o.ca_file, .timeout_ms = 30000};
    for (int attempt = 0; attempt < 8; attempt++) {
        lf_http_result res;
        rc = lf_http_call("POST", reg_url, text, &ho, &res);
        if (rc == 0 && res.status == 201) {
            json_t *j = json_loadb(res.body.data, res.body.len, 0, NULL);
            const char *tok = json_string_value(json_object_get(j, "token"));
            const char *key = json_string_value(json_object_get(j, "booking_key"));
            const char *ht = json_string_value(json_object_get(j, "hub_token"));
            if (tok && strlen(tok) < sizeof su->token) {
                snprintf(su->token, sizeof su->token, "%s", tok);
                snprintf(su->key_hex, sizeof su->key_hex, "%s",
                         key && strlen(key) == 64 ? key : "");
                snprintf(su->hub_token, sizeof su->hub_token, "%s",
                         ht && strlen(ht) < sizeof su->hub_token ? ht : "");
                su->have_creds = true;
                json_t *line = json_pack("{s:s,s:s,s:s,s:s}", "name", su->name, "token", su->token,
                                         "booking_key", su->key_hex, "hub_token", su->hub_token);
                char *l = json_dumps(line, JSON_COMPACT);
                pthread_mutex_lock(&s->creds_mu);
                fprintf(s->creds, "%s\n", l);
                fflush(s->creds);
                pthread_mutex_unlock(&s->creds_mu);
                free(l);
                json_decref(line);
            }
            json_decref(j);
            lf_http_result_free(&res);
            rc = su->have_creds ? 0 : LF_EIO;
            break;
        }
        if (rc == 0 && res.status == 409) {
            LF_WARN("sim",
                    "%s is registered but its credentials are not in this data dir: "
                    "it runs without uplink",
                    su->name);
            lf_http_result_free(&res);
            rc = 0;
            break;
        }
        if (rc == 0 && res.status >= 400 && res.status < 500 && res.status != 429) {
            LF_ERROR("sim", "registering %s: HTTP %ld %.200s", su->name, res.status,
                     res.body.data ? res.body.data : "");
            lf_http_result_free(&res);
            rc = LF_EINVAL;
            break;
        }
        lf_http_result_free(&res);
        lf_sleep_ms(200LL << attempt);
        rc = LF_EIO;
    }
    free(reg_url);
    free(text);
    json_decref(body);
    free(url);
    free(dn);
    return rc;
}

static int open_one(sim *s, sim_unit *su)
{
    lf_unit_locker lk[64];
    const char *allot[64];
    int n, nallot;
    unsigned char key[32];
    size_t klen = 0;
    lockers_of(su, lk, &n, &nallot);
    for (int i = 0; i < nallot; i++)
        allot[i] = lk[i].id;
    bool has_key = su->key_hex[0] &&
                   sodium_hex2bin(key, sizeof key, su->key_hex, 64, NULL, &klen, NULL) == 0 &&
                   klen == 32;
    lf_unit_config c = {
        .name = su->name,
        .hub_url = su->have_creds ? s->o.hub : NULL,
        .token = su->token,
        .hub_token = su->hub_token[0] ? su->hub_token : NULL,
        .booking_key = has_key ? key : NULL,
        .db = s->db,
        .uplink = strcmp(s->o.uplink, "pull") == 0 ? LF_UNIT_PULL : LF_UNIT_PUSH,
        .push_interval_ms = (int64_t)(s->o.push_s * 1000),
        .heartbeat_interval_ms =
            strcmp(s->o.presence, "heartbeat") == 0 ? (int64_t)(s->o.hb_s * 1000) : 0,
        .ca_file = s->o.ca_file,
        .lockers = lk,
        .nlockers = n,
        .allotment = allot,
        .nallotment = nallot,
    };
    lf_unit *u;
    int rc = lf_unit_open(&c, &u);
    sodium_memzero(key, sizeof key);
    if (rc) {
        LF_ERROR("sim", "opening %s: %s", su->name, lf_err_get());
        return rc;
    }
    atomic_store(&su->u, u);
    return 0;
}

static void *setup_thread(void *arg)
{
    sim *s = arg;
    for (;;) {
        int i = atomic_fetch_add(&s->next_reg, 1);
        if (i >= s->n || atomic_load(&s->stop) || sim_signalled) break;
        sim_unit *su = &s->units[i];
        if (!su->have_creds && register_one(s, su) != 0) atomic_fetch_add(&s->reg_failed, 1);
        if (open_one(s, su) != 0) atomic_fetch_add(&s->reg_failed, 1);
    }
    return NULL;
}

/* ---- behaviour ------------------------------------------------------------ */
static void act(sim *s, sim_unit *su, lf_unit *u)
{
    double r = rnd01(su);
    atomic_fetch_add(&s->actions, 1);
    if (r < 0.45) { /* walk-up rental */
        static const char sizes[] = "SSSMML";
        lf_unit_rental rent;
        char size = sizes[rnd(su) % 6];
        int64_t minutes = 30 + (int64_t)(rnd(su) % 240);
        bool pay_ok = rnd01(su) > 0.1;
        if (lf_unit_rent(u, size, minutes, pay_ok, &rent) == 0) {
            lf_unit_door(u, rent.locker, false);
            if (su->ncodes == SIM_CODES) { /* forget the oldest (never picked up) */
                memmove(su->codes[0], su->codes[1], sizeof su->codes[0] * (SIM_CODES - 1));
                su->ncodes--;
            }
            snprintf(su->codes[su->ncodes++], sizeof su->codes[0], "%s", rent.code);
        }
    } else if (r < 0.80) { /* pickup by code (sometimes mistyped) */
        lf_unit_pickup_result p;
        if (su->ncodes == 0 || rnd01(su) < 0.05) {
            lf_unit_pickup(u, "99999999", &p);
        } else {
            int k = (int)(rnd(su) % (uint64_t)su->ncodes);
            if (lf_unit_pickup(u, su->codes[k], &p) == 0) lf_unit_door(u, p.locker, false);
            memmove(su->codes[k], su->codes[k + 1],
                    sizeof su->codes[0] * (size_t)(su->ncodes - k - 1));
            su->ncodes--;
        }
    } else if (r < 0.93) { /* service: door open/close */
        lf_unit_locker lk[64];
        int n = lf_unit_lockers(u, lk, 64);
        if (n > 0) {
            const char *id = lk[rnd(su) % (uint64_t)n].id;
            lf_unit_door(u, id, true);
            lf_unit_door(u, id, false);
        }
    } else { /* hardware error */
        static const char *const comps[] = {"payment", "door-controller", "screen", "printer"};
        lf_unit_hw_error(u, comps[rnd(su) % 4], "simulated fault", NULL);
    }
}

/* Does whatever is due for one unit; returns when it is next due. */
static int64_t step(sim *s, sim_unit *su, int64_t now)
{
    lf_unit *u = atomic_load(&su->u);
    if (!u) return now + 1000;
    double F = s->o.offline_fraction;
    if (su->next_toggle && now >= su->next_toggle) {
        su->off = !su->off;
        if (su->flapper)
            su->next_toggle = now + 2000 + (int64_t)(rnd(su) % 6000);
        else if (su->off)
            su->next_toggle = now + rnd_exp_ms(su, 60000);
        else
            su->next_toggle = now + rnd_exp_ms(su, 60000 * (1 - F) / F);
    }
    bool storm = s->storm_end && now < s->storm_end;
    lf_unit_set_offline(u, su->off || storm);
    if (now >= su->next_act) {
        act(s, su, u);
        su->next_act = now + rnd_exp_ms(su, 60000.0 / s->o.epm);
    }
    if (now >= su->next_up) su->next_up = lf_unit_uplink_step(u, lf_mono_ms());
    int64_t due = su->next_act < su->next_up ? su->next_act : su->next_up;
    if (su->next_toggle && su->next_toggle < due) due = su->next_toggle;
    if (storm && s->storm_end < due) due = s->storm_end;
    return due;
}

static void *worker(void *arg)
{
    sim *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!atomic_load(&s->stop)) {
        int64_t now = lf_mono_ms();
        if (s->nheap == 0 || s->due[s->heap[0]] > now) {
            int64_t wait = s->nheap ? s->due[s->heap[0]] - now : 200;
            if (wait > 200) wait = 200;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += (long)wait * 1000000L;
            ts.tv_sec += ts.tv_nsec / 1000000000L;
            ts.tv_nsec %= 1000000000L;
            pthread_cond_timedwait(&s->cv, &s->mu, &ts);
            continue;
        }
        int idx = heap_pop(s);
        pthread_mutex_unlock(&s->mu);
        int64_t due = step(s, &s->units[idx], now);
        pthread_mutex_lock(&s->mu);
        heap_push(s, idx, due);
        if (s->nheap && s->due[s->heap[0]] <= lf_mono_ms()) pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            LF_WARN("sim", "cannot raise RLIMIT_NOFILE: %s", strerror(errno));
    }
}

int lf_cmd_sim(int argc, char **argv)
{
    sim S;
    memset(&S, 0, sizeof S);
    sim_opts *o = &S.o;
    const char *listen = "127.0.0.1:0", *data = "./sim-data", *log_level = "info";
    const char *advertise = NULL;
    o->hub = NULL;
    o->prefix = "sim-";
    o->presence = "poll";
    o->uplink = "push";
    o->nunits = 100;
    o->seed = 1;
    o->workers = 8;
    o->epm = 1;
    o->push_s = 5;
    o->hb_s = 10;
    lf_opt opts[] = {
        {"hub", LF_OPT_STR, &o->hub, "hub base URL (required)"},
        {"admin-token", LF_OPT_SECRET, &o->admin_token, "hub admin token (or env LF_ADMIN_TOKEN)"},
        {"units", LF_OPT_INT, &o->nunits, "number of units (default 100)"},
        {"listen", LF_OPT_STR, &listen, "HOST:PORT serving /u/{name}/... (default 127.0.0.1:0)"},
        {"advertise", LF_OPT_STR, &advertise, "base URL the hub uses to reach the sim"},
        {"data", LF_OPT_STR, &data, "data directory (default ./sim-data)"},
        {"seed", LF_OPT_INT, &o->seed, "behaviour seed (default 1)"},
        {"presence", LF_OPT_STR, &o->presence, "poll|heartbeat (default poll)"},
        {"uplink", LF_OPT_STR, &o->uplink, "push|pull (default push)"},
        {"push-interval", LF_OPT_DOUBLE, &o->push_s, "seconds between pushes (default 5)"},
        {"heartbeat-interval", LF_OPT_DOUBLE, &o->hb_s, "seconds between heartbeats (default 10)"},
        {"offline-fraction", LF_OPT_DOUBLE, &o->offline_fraction,
         "average fraction of units offline (default 0)"},
        {"events-per-minute", LF_OPT_DOUBLE, &o->epm,
         "scripted actions per unit per minute (default 1)"},
        {"slow-fraction", LF_OPT_DOUBLE, &o->slow_fraction, "fraction of units answering slowly"},
        {"flap-fraction", LF_OPT_DOUBLE, &o->flap_fraction, "fraction of units flapping"},
        {"storm", LF_OPT_DOUBLE, &o->storm_s,
         "every unit offline for this many seconds at start, then all reconnect"},
        {"name-prefix", LF_OPT_STR, &o->prefix, "unit name prefix (default sim-)"},
        {"workers", LF_OPT_INT, &o->workers, "worker threads (default 8)"},
        {"ca-file", LF_OPT_STR, &o->ca_file, "CA bundle to verify an https hub"},
        {"log-level", LF_OPT_STR, &log_level, "debug|info|warn|error (default info)"},
        {0},
    };
    const lf_config_spec spec = {
        "sim", "lockerfleet sim --hub URL --admin-token T [--units N] [--config FILE] [options]",
        opts, NULL};
    lf_config *conf = NULL; /* owns the strings of the file and env values */
    int rc = lf_config_load(&spec, argc, argv, &conf);
    if (rc) return rc == 1 ? 0 : 2;
    enum lf_log_level lvl;
    if (lf_log_parse_level(log_level, &lvl)) {
        fprintf(stderr, "lockerfleet sim: --log-level must be debug|info|warn|error\n");
        lf_config_free(conf);
        return 2;
    }
    lf_log_set_level(lvl);
    if (!o->admin_token) o->admin_token = getenv("LF_ADMIN_TOKEN");
    const char *bad = NULL;
    if (!o->hub)
        bad = "--hub is required";
    else if (!o->admin_token)
        bad = "--admin-token is required";
    else if (o->nunits < 1 || o->nunits > 100000)
        bad = "--units must be in [1, 100000]";
    else if (strcmp(o->presence, "poll") && strcmp(o->presence, "heartbeat"))
        bad = "--presence must be poll or heartbeat";
    else if (strcmp(o->uplink, "push") && strcmp(o->uplink, "pull"))
        bad = "--uplink must be push or pull";
    else if (o->offline_fraction < 0 || o->offline_fraction >= 1)
        bad = "--offline-fraction must be in [0, 1)";
    else if (o->slow_fraction < 0 || o->slow_fraction > 1 || o->flap_fraction < 0 ||
             o->flap_fraction > 1)
        bad = "--slow-fraction and --flap-fraction must be in [0, 1]";
    else if (o->epm <= 0 || o->push_s <= 0 || o->hb_s <= 0 || o->storm_s < 0)
        bad = "rates and intervals must be positive";
    else if (o->workers < 1 || o->workers > 256)
        bad = "--workers must be in [1, 256]";
    else if (strlen(o->prefix) > 40)
        bad = "--name-prefix is too long";
    if (bad) {
        fprintf(stderr, "lockerfleet sim: %s\n", bad);
        lf_config_free(conf);
        return 2;
    }
    char probe[80];
    snprintf(probe, sizeof probe, "%s00001", o->prefix);
    if (!lf_name_valid(probe)) {
        fprintf(stderr, "lockerfleet sim: --name-prefix must be of [a-z0-9-]\n");
        lf_config_free(conf);
        return 2;
    }

    int status = 1;
    lf_http_server *srv = NULL;
    pthread_t *thr = NULL;
    int nthr = 0;
    char *dbpath = NULL, *credpath = NULL;
    pthread_mutex_init(&S.mu, NULL);
    pthread_cond_init(&S.cv, NULL);
    pthread_mutex_init(&S.creds_mu, NULL);
    raise_nofile();
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    lf_http_client_global_init();

    if (mkdir(data, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "lockerfleet sim: cannot create %s: %s\n", data, strerror(errno));
        goto out;
    }
    dbpath = lf_asprintf("%s/units.db", data);
    if ((rc = lf_unit_db_open(dbpath, false, 8192, &S.db))) {
        fprintf(stderr, "lockerfleet sim: %s\n", lf_err_get());
        goto out;
    }
    S.n = (int)o->nunits;
    S.units = calloc((size_t)S.n, sizeof *S.units);
    S.heap = calloc((size_t)S.n, sizeof *S.heap);
    S.due = calloc((size_t)S.n, sizeof *S.due);
    if (!S.units || !S.heap || !S.due) {
        fprintf(stderr, "lockerfleet sim: out of memory\n");
        goto out;
    }
    for (int i = 0; i < S.n; i++)
        snprintf(S.units[i].name, sizeof S.units[i].name, "%s%05d", o->prefix, i + 1);
    qsort(S.units, (size_t)S.n, sizeof *S.units, cmp_name);
    for (int i = 0; i < S.n; i++) {
        sim_unit *su = &S.units[i];
        char h[17];
        lf_hash_hex(su->name, h);
        su->rng = (uint64_t)o->seed * 0x9e3779b97f4a7c15ULL ^ strtoull(h, NULL, 16);
    }
    credpath = lf_asprintf("%s/credentials.jsonl", data);
    load_creds(&S, credpath);
    int cfd = open(credpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (cfd < 0 || !(S.creds = fdopen(cfd, "a"))) {
        fprintf(stderr, "lockerfleet sim: cannot write %s: %s\n", credpath, strerror(errno));
        if (cfd >= 0) close(cfd);
        goto out;
    }

    lf_http_config hc = {.listen = listen,
                         .body_max = 256 * 1024,
                         .conn_limit = 60000,
                         .log_component = "sim",
                         .quiet = lvl > LF_LOG_DEBUG,
                         /* thousands of pinged units: no thread per connection;
                          * offline and slow units wait with lf_http_defer */
                         .pool_threads = 4};
    if (!(srv = lf_http_start(&hc, serve, &S))) {
        fprintf(stderr, "lockerfleet sim: %s\n", lf_err_get());
        goto out;
    }
    char host[256];
    int port;
    lf_http_parse_listen(listen, host, &port);
    if (!*host || !strcmp(host, "*") || !strcmp(host, "0.0.0.0"))
        snprintf(host, sizeof host, "127.0.0.1");
    if (advertise)
        snprintf(o->base_url, sizeof o->base_url, "%s", advertise);
    else
        snprintf(o->base_url, sizeof o->base_url, "http://%s:%d", host, lf_http_port(srv));
    size_t bl = strlen(o->base_url);
    while (bl && o->base_url[bl - 1] == '/')
        o->base_url[--bl] = '\0';

    /* Register (where needed) and open every unit, in parallel. */
    int64_t t0 = lf_mono_ms();
    thr = calloc((size_t)o->workers, sizeof *thr);
    for (nthr = 0; nthr < o->workers; nthr++)
        if (pthread_create(&thr[nthr], NULL, setup_thread, &S) != 0) break;
    for (int i = 0; i < nthr; i++)
        pthread_join(thr[i], NULL);
    nthr = 0;
    if (sim_signalled) {
        status = 0;
        goto out;
    }
    if (atomic_load(&S.reg_failed) > 0) {
        fprintf(stderr, "lockerfleet sim: %d units could not be registered or opened: %s\n",
                atomic_load(&S.reg_failed), lf_err_get());
        goto out;
    }
    LF_INFO("sim", "%d units ready in %lld ms", S.n, (long long)(lf_mono_ms() - t0));

    /* Roles and schedule. */
    int64_t now = lf_mono_ms();
    if (o->storm_s > 0) S.storm_end = now + (int64_t)(o->storm_s * 1000);
    for (int i = 0; i < S.n; i++) {
        sim_unit *su = &S.units[i];
        lf_unit *u = atomic_load(&su->u);
        su->flapper = rnd01(su) < o->flap_fraction;
        if (rnd01(su) < o->slow_fraction) lf_unit_set_slow_ms(u, 300 + (int64_t)(rnd(su) % 2700));
        if (su->flapper) {
            su->next_toggle = now + 2000 + (int64_t)(rnd(su) % 6000);
        } else if (o->offline_fraction > 0) {
            su->off = rnd01(su) < o->offline_fraction;
            double mean = su->off ? 60000 : 60000 * (1 - o->offline_fraction) / o->offline_fraction;
            su->next_toggle = now + rnd_exp_ms(su, mean);
        }
        lf_unit_set_offline(u, su->off || S.storm_end > now);
        su->next_act = now + rnd_exp_ms(su, 60000.0 / o->epm);
        su->next_up = now + (int64_t)(rnd(su) % (uint64_t)(o->push_s * 1000 + 1)); /* spread */
        heap_push(&S, i, now);
    }
    for (nthr = 0; nthr < o->workers; nthr++)
        if (pthread_create(&thr[nthr], NULL, worker, &S) != 0) break;

    printf("sim: %d units registered, serving on %s\n", S.n, o->base_url);
    fflush(stdout);
    while (!sim_signalled)
        lf_sleep_ms(100);
    LF_INFO("sim", "stopping");
    status = 0;
out:
    atomic_store(&S.stop, 1);
    pthread_mutex_lock(&S.mu);
    pthread_cond_broadcast(&S.cv);
    pthread_mutex_unlock(&S.mu);
    for (int i = 0; i < nthr; i++)
        pthread_join(thr[i], NULL);
    free(thr);
    /* Requests held by "offline" units would keep the HTTP server from
     * stopping for OFFLINE_HOLD_MS: let them answer now. */
    for (int i = 0; S.units && i < S.n; i++) {
        lf_unit *su_u = atomic_load(&S.units[i].u);
        if (su_u) lf_unit_set_offline(su_u, false);
    }
    lf_http_stop(srv);
    for (int i = 0; S.units && i < S.n; i++)
        lf_unit_close(atomic_load(&S.units[i].u));
    lf_unit_db_close(S.db);
    if (S.creds) fclose(S.creds);
    free(S.units);
    free(S.heap);
    free(S.due);
    free(dbpath);
    free(credpath);
    pthread_mutex_destroy(&S.mu);
    pthread_cond_destroy(&S.cv);
    pthread_mutex_destroy(&S.creds_mu);
    lf_config_free(conf);
    return status;
}
