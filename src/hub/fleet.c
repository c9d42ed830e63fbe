/*
 * fleet.c — the fleet's live state and its workers.
 *
 * The unit table (name -> fleet_unit) holds, in memory, each unit's
 * presence (last response time: never an event), its config ledger and
 * its reservation ledger. It is rebuilt at start from the log: each unit's
 * unit-{name} stream (presence transitions, ConfigDesired and the delivery
 * ledger) and bookings-{name} stream (reservations to deliver); after
 * that a subscription from the head at start keeps the reservation side
 * current.
 *
 * Work is partitioned by shard: units fall into ngroups contiguous ranges
 * of the shard space (lf_fleet_shard_group), and each group has one pinger
 * thread (libcurl multi: the whole group's pings in flight at once), one
 * worker thread (heartbeat grace; finds due config and reservation
 * deliveries and pulls) and a bounded pool of delivery threads that make
 * those calls, one job per unit at a time, several units at once, so a
 * slow unit holds one thread and not the whole group. Only the shards this node owns (f->owned) are
 * worked on.
 */
#include "hub/fleet.h"

#include "hub/cluster.h"
#include "projection/projection.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FLEET_BUCKETS 16384
#define FLEET_GROUPS 2
#define FLEET_SCAN_GAP_MS 50
#define FLEET_PING_INFLIGHT 512
#define FLEET_DEFAULT_HB_MS 30000
#define FLEET_DELIVERY_THREADS 8 /* per group; env LF_FLEET_DELIVERY_THREADS */
#define FLEET_PRUNE_MS 10000
#define FLEET_RELAY_MAX 4096 /* relayed heartbeats read per scan */

static struct lf_fleet *fleet_of(lf_hub *h)
{
    return h ? h->fleet : NULL;
}

static size_t name_hash(const char *s)
{
    uint64_t x = 1469598103934665603ull;
    for (; *s; s++)
        x = (x ^ (unsigned char)*s) * 1099511628211ull;
    return (size_t)x;
}

fleet_unit *lf_fleet_find(struct lf_fleet *f, const char *name)
{
    fleet_unit *u = f->buckets[name_hash(name) & (f->nbuckets - 1)];
    while (u && strcmp(u->name, name) != 0)
        u = u->hnext;
    return u;
}

json_t *lf_fleet_time_json(int64_t ms)
{
    char t[LF_TIME_LEN];
    return ms > 0 ? json_string(lf_time_format(ms, t)) : json_null();
}

int lf_fleet_call_timeout_ms(struct lf_fleet *f)
{
    int64_t t = f->h->cfg.ping_timeout_ms > 0 ? f->h->cfg.ping_timeout_ms : 5000;
    return (int)(t > 60000 ? 60000 : t);
}

/* One hub event for unit-{name}, ready to append: its stream, its meta
 * (which node wrote it) and its data as text. */
typedef struct {
    char stream[80], meta[160], type[LF_TYPE_MAX + 1];
    char *text; /* owned */
    lf_event_in ev;
} hub_event;

/* Fills e; steals data. LF_ENOMEM (logged) when it cannot be printed. */
static int hub_event_make(struct lf_fleet *f, const char *name, const char *type, json_t *data,
                          hub_event *e)
{
    e->text = json_dumps(data, JSON_COMPACT);
    json_decref(data);
    if (!e->text) {
        LF_ERROR("fleet", "append %s for unit %s: out of memory", type, name);
        return LF_ENOMEM;
    }
    snprintf(e->stream, sizeof e->stream, "unit-%s", name);
    snprintf(e->meta, sizeof e->meta, "{\"source\":\"hub\",\"node\":\"%s\"}",
             f->h->cfg.node_id ? f->h->cfg.node_id : "hub-1");
    snprintf(e->type, sizeof e->type, "%s", type);
    e->ev = (lf_event_in){.type = e->type, .data = e->text, .meta = e->meta};
    return 0;
}

int lf_fleet_emit(struct lf_fleet *f, const char *name, const char *type, json_t *data,
                  int64_t *pos)
{
    hub_event e;
    int rc = hub_event_make(f, name, type, data, &e);
    if (rc) return rc;
    lf_append_result res = {0};
    rc = lf_hub_append(f->h, e.stream, LF_EXPECT_ANY, &e.ev, 1, &res);
    if (rc)
        LF_ERROR("fleet", "append %s to %s: %s (%s)", type, e.stream, lf_strerror(rc),
                 lf_err_get());
    else if (pos)
        *pos = res.last_position;
    free(e.text);
    return rc;
}

typedef struct {
    struct lf_fleet *f;
    hub_event e;
} async_emit;

/* An async emit is over (stored, failed or refused): lf_fleet_stop may go on. */
static void emit_over(async_emit *a)
{
    struct lf_fleet *f = a->f;
    free(a->e.text);
    free(a);
    pthread_mutex_lock(&f->emits_mu);
    if (--f->emits == 0) pthread_cond_broadcast(&f->emits_cv);
    pthread_mutex_unlock(&f->emits_mu);
}

static void emit_done(void *ctx, int rc, const lf_append_result *res, const char *err)
{
    async_emit *a = ctx;
    if (rc)
        LF_ERROR("fleet", "append %s to %s: %s (%s)", a->e.type, a->e.stream, lf_strerror(rc),
                 err ? err : "");
    else
        lf_hub_appended(a->f->h, 1, res);
    emit_over(a);
}

void lf_fleet_emit_async(struct lf_fleet *f, const char *name, const char *type, json_t *data)
{
    async_emit *a = lf_xcalloc(1, sizeof *a);
    a->f = f;
    if (hub_event_make(f, name, type, data, &a->e)) {
        free(a);
        return;
    }
    pthread_mutex_lock(&f->emits_mu);
    f->emits++;
    pthread_mutex_unlock(&f->emits_mu);
    int rc =
        lf_store_append_async(f->h->store, a->e.stream, LF_EXPECT_ANY, &a->e.ev, 1, emit_done, a);
    if (rc) { /* refused at once: no callback will come */
        LF_ERROR("fleet", "append %s to %s: %s (%s)", type, a->e.stream, lf_strerror(rc),
                 lf_err_get());
        emit_over(a);
    }
}

int lf_fleet_unit_call(struct lf_fleet *f, const char *name, const char *method, const char *url,
                       const char *body, lf_http_result *out)
{
    char tok[65];
    lf_fleet_hub_token(f->h, name, tok);
    lf_http_opts o = {
        .bearer = tok, .ca_file = f->h->cfg.ca_file, .timeout_ms = lf_fleet_call_timeout_ms(f)};
    int rc = lf_http_call(method, url, body, &o, out);
    sodium_memzero(tok, sizeof tok);
    return rc;
}

const char *lf_fleet_call_reason(int rc, long status)
{
    if (rc == LF_ETIMEDOUT) return "timeout";
    if (rc == LF_EUNAVAILABLE) return "refused";
    if (rc) return "error";
    if (status == 429) return "http_429";
    if (status >= 500) return "http_5xx";
    if (status == 401 || status == 403) return "unauthorized";
    if (status >= 400) return "http_4xx";
    return "ok";
}

static void update_gauge(struct lf_fleet *f)
{
    pthread_mutex_lock(&f->mu);
    double on = f->online, off = (double)f->nunits - f->online;
    pthread_mutex_unlock(&f->mu);
    lf_metric_set("lockerfleet_units", "state=\"online\"", on);
    lf_metric_set("lockerfleet_units", "state=\"offline\"", off);
}

void lf_fleet_wake(struct lf_fleet *f, int group)
{
    if (group < 0 || group >= f->ngroups) return;
    pthread_mutex_lock(&f->mu);
    f->groups[group].wake = 1;
    pthread_cond_signal(&f->groups[group].cv);
    pthread_mutex_unlock(&f->mu);
}

/* ---- presence transitions ------------------------------------------- */

void lf_fleet_seen(struct lf_fleet *f, const char *name, const char *via, int64_t response_ms)
{
    int64_t now = lf_now_ms();
    int emit = 0, came = 0, group = 0, work = 0;
    pthread_mutex_lock(&f->mu);
    fleet_unit *u = lf_fleet_find(f, name);
    if (!u) {
        pthread_mutex_unlock(&f->mu);
        return;
    }
    u->ps.known = 1;
    u->ps.last_seen_at_ms = now;
    u->ps.last_online_at_ms = now;
    if (response_ms >= 0) u->ps.last_response_ms = response_ms;
    if (!u->ps.online) {
        came = 1;
        u->ps.online = 1;
        u->ps.offline_reason[0] = '\0';
        f->online++;
        /* a unit coming back gets its pending deliveries at once */
        if (u->cfg.desired_version > u->cfg.applied_version && u->cfg.next_attempt_ms > 0) {
            u->cfg.next_attempt_ms = now;
            work = 1;
        }
        lf_fleet_resv_due_now(u, now);
        /* the worker's scan has something for it: else no wake (a storm of
         * units coming back with nothing pending wakes no scan at all) */
        work = work || u->resv || u->pull_wanted;
    }
    if (u->persisted != 1) {
        u->persisted = 1;
        emit = lf_fleet_shard_owned(u->shard, f->owned); /* the owner node records it */
    }
    group = u->group;
    pthread_mutex_unlock(&f->mu);
    if (emit) {
        json_t *d = json_pack("{s:s,s:o,s:o}", "via", via, "response_ms",
                              response_ms >= 0 ? json_integer(response_ms) : json_null(), "at",
                              lf_fleet_time_json(now));
        lf_fleet_emit_async(f, name, "UnitCameOnline", d);
        LF_INFO("fleet", "unit %s online (via %s)", name, via);
    }
    if (came) {
        update_gauge(f);
        if (work) lf_fleet_wake(f, group);
    }
}

void lf_fleet_lost(struct lf_fleet *f, const char *name, const char *reason, const char *detail)
{
    int64_t now = lf_now_ms(), last_seen = 0;
    int emit = 0, went = 0;
    pthread_mutex_lock(&f->mu);
    fleet_unit *u = lf_fleet_find(f, name);
    if (!u) {
        pthread_mutex_unlock(&f->mu);
        return;
    }
    u->ps.known = 1;
    if (u->ps.online) {
        went = 1;
        f->online--;
    }
    u->ps.online = 0;
    u->ps.last_response_ms = -1;
    snprintf(u->ps.offline_reason, sizeof u->ps.offline_reason, "%s", reason);
    if (u->persisted != 0) {
        u->persisted = 0;
        emit = lf_fleet_shard_owned(u->shard, f->owned); /* the owner node records it */
    }
    last_seen = u->ps.last_seen_at_ms;
    pthread_mutex_unlock(&f->mu);
    if (emit) {
        json_t *d =
            json_pack("{s:s,s:s,s:o,s:o}", "reason", reason, "detail", detail ? detail : "", "at",
                      lf_fleet_time_json(now), "last_seen_at", lf_fleet_time_json(last_seen));
        lf_fleet_emit_async(f, name, "UnitWentOffline", d);
        LF_INFO("fleet", "unit %s offline (%s: %s)", name, reason, detail ? detail : "");
    }
    if (went) update_gauge(f);
}

/* ---- heartbeats relayed between hub nodes ---------------------------- */

int64_t lf_fleet_hb_grace(const struct lf_fleet *f, const fleet_unit *u)
{
    return f->h->cfg.heartbeat_grace_ms > 0 ? f->h->cfg.heartbeat_grace_ms : 3 * u->hb_interval_ms;
}

/* "seen.<unit>." (the trailing dot makes the name an exact list prefix);
 * a hash of the name when that would not fit. */
static void seen_lease_name(const char *unit, char out[LF_LEASE_NAME_MAX + 1])
{
    if (strlen(unit) + 6 <= LF_LEASE_NAME_MAX) {
        snprintf(out, LF_LEASE_NAME_MAX + 1, "seen.%s.", unit);
        return;
    }
    unsigned char d[16];
    char hex[33];
    crypto_generichash(d, sizeof d, (const unsigned char *)unit, strlen(unit), NULL, 0);
    sodium_bin2hex(hex, sizeof hex, d, sizeof d);
    snprintf(out, LF_LEASE_NAME_MAX + 1, "seen.h%s.", hex);
}

void lf_fleet_hb_relay(struct lf_fleet *f, fleet_unit *u)
{
    char name[LF_LEASE_NAME_MAX + 1];
    pthread_mutex_lock(&f->mu);
    int relay = f->owned && !lf_fleet_shard_owned(u->shard, f->owned);
    int64_t grace = lf_fleet_hb_grace(f, u);
    pthread_mutex_unlock(&f->mu);
    if (!relay) return;
    seen_lease_name(u->name, name);
    /* one owner for every node, so any node renews it: the record only
     * says "seen at expiry - grace" */
    int rc = lf_store_lease(f->h->store, name, "seen", grace, NULL);
    if (rc != 0) LF_DEBUG("fleet", "relaying the heartbeat of %s: %s", u->name, lf_strerror(rc));
}

/* A relayed heartbeat: seen, at the time the relay was renewed. */
static void seen_at(struct lf_fleet *f, const char *unit, int64_t at)
{
    lf_fleet_seen(f, unit, "heartbeat", -1);
    pthread_mutex_lock(&f->mu);
    fleet_unit *u = lf_fleet_find(f, unit);
    if (u && at < u->ps.last_seen_at_ms) u->ps.last_seen_at_ms = at;
    pthread_mutex_unlock(&f->mu);
}

/* The owner, before marking name heartbeat_missed: when another node
 * relayed a heartbeat within the grace, that counts as seen (at the time
 * the relay was renewed). Returns true if so. f->mu NOT held. */
static bool hb_relayed(struct lf_fleet *f, const char *unit, int64_t grace)
{
    char name[LF_LEASE_NAME_MAX + 1];
    lf_lease l[4];
    size_t n = 0;
    seen_lease_name(unit, name);
    if (lf_store_lease_list(f->h->store, name, l, 4, &n) != 0) return false;
    for (size_t i = 0; i < n && i < sizeof l / sizeof l[0]; i++) {
        if (strcmp(l[i].name, name) != 0 || l[i].left_ms <= 0) continue;
        seen_at(f, unit, lf_now_ms() - grace + l[i].left_ms);
        return true;
    }
    return false;
}

/* The owner's scan for relayed heartbeats of its units shown offline (a
 * relay only renews a lease: nothing else would bring them back). At most
 * FLEET_RELAY_MAX relays per scan; names longer than 58 bytes are hashed
 * in the lease name and come back only through hb_relayed. */
static void relay_scan(struct lf_fleet *f)
{
    lf_lease *l = lf_xmalloc(FLEET_RELAY_MAX * sizeof *l);
    size_t n = 0;
    if (lf_store_lease_list(f->h->store, "seen.", l, FLEET_RELAY_MAX, &n) != 0) n = 0;
    for (size_t i = 0; i < n; i++) {
        char unit[LF_LEASE_NAME_MAX + 1];
        size_t len = strlen(l[i].name);
        if (len < 7 || l[i].name[len - 1] != '.' || l[i].left_ms <= 0) continue;
        snprintf(unit, sizeof unit, "%.*s", (int)(len - 6), l[i].name + 5);
        int64_t grace = 0;
        pthread_mutex_lock(&f->mu);
        fleet_unit *u = lf_fleet_find(f, unit);
        if (u && !u->ps.online && u->presence == LF_PRESENCE_HEARTBEAT &&
            lf_fleet_shard_owned(u->shard, f->owned))
            grace = lf_fleet_hb_grace(f, u);
        pthread_mutex_unlock(&f->mu);
        if (grace > 0 && l[i].left_ms > 0) seen_at(f, unit, lf_now_ms() - grace + l[i].left_ms);
    }
    free(l);
}

/* ---- the unit table ------------------------------------------------- */

static void unit_free(fleet_unit *u)
{
    if (!u) return;
    lf_fleet_cfg_free(&u->cfg);
    lf_fleet_resv_free(u);
    pthread_mutex_destroy(&u->ingest_mu);
    free(u);
}

static int fold_stream(struct lf_fleet *f, fleet_unit *u, const char *stream, int bookings)
{
    int rc = 0;
    int64_t from = 1;
    lf_event_list l;
    lf_event_list_init(&l);
    for (;;) {
        l.n = 0;
        lf_event_list_free(&l);
        rc = lf_store_read_stream(f->h->store, stream, from, 1000, &l);
        if (rc) goto out;
        for (size_t i = 0; i < l.n; i++) {
            const lf_event *ev = &l.ev[i];
            if (bookings) {
                lf_fleet_resv_fold(f, u, ev);
                u->bookings_version = ev->version;
                continue;
            }
            if (strcmp(ev->type, "UnitCameOnline") == 0) {
                u->persisted = 1;
                json_t *d = json_loads(ev->data, 0, NULL);
                int64_t at = 0;
                if (d && json_is_string(json_object_get(d, "at")))
                    lf_time_parse(json_string_value(json_object_get(d, "at")), &at);
                u->ps.last_online_at_ms = at ? at : ev->time_ms;
                json_decref(d);
            } else if (strcmp(ev->type, "UnitWentOffline") == 0) {
                u->persisted = 0;
            } else if (strncmp(ev->type, "Config", 6) == 0) {
                lf_fleet_cfg_fold(u, ev);
            } else if (strncmp(ev->type, "Reservation", 11) == 0) {
                lf_fleet_resv_fold(f, u, ev);
            }
        }
        if (l.n < 1000) break;
        from = l.ev[l.n - 1].version + 1;
    }
out:
    lf_event_list_free(&l);
    return rc;
}

/* Builds a unit's entry from the registry and its streams (no lock held). */
static fleet_unit *unit_load(struct lf_fleet *f, const lf_unit_info *info)
{
    fleet_unit *u = lf_xcalloc(1, sizeof *u);
    snprintf(u->name, sizeof u->name, "%s", info->name);
    lf_shard_of(info->name, f->h->cfg.shard_digits > 0 ? f->h->cfg.shard_digits : 1, u->shard);
    snprintf(u->url, sizeof u->url, "%s", info->url);
    size_t ul = strlen(u->url);
    while (ul > 0 && u->url[ul - 1] == '/')
        u->url[--ul] = '\0';
    u->presence = info->presence;
    snprintf(u->uplink, sizeof u->uplink, "%s", info->uplink[0] ? info->uplink : "push");
    u->hb_interval_ms =
        info->heartbeat_interval_ms > 0 ? info->heartbeat_interval_ms : FLEET_DEFAULT_HB_MS;
    u->group = lf_fleet_shard_group(u->shard, f->ngroups);
    u->ps.last_response_ms = -1;
    u->persisted = -1;
    u->seq_stored = -1;
    snprintf(u->cfg.state, sizeof u->cfg.state, "none");
    pthread_mutex_init(&u->ingest_mu, NULL);
    /* bookings first: the reservation ledger in unit-{name} refers to them */
    char stream[80];
    snprintf(stream, sizeof stream, "bookings-%s", u->name);
    if (fold_stream(f, u, stream, 1)) LF_WARN("fleet", "reading %s: %s", stream, lf_err_get());
    snprintf(stream, sizeof stream, "unit-%s", u->name);
    if (fold_stream(f, u, stream, 0)) LF_WARN("fleet", "reading %s: %s", stream, lf_err_get());
    /* a config desired but never attempted is due now */
    if (u->cfg.desired_version > u->cfg.applied_version && u->cfg.next_attempt_ms == 0 &&
        strcmp(u->cfg.state, "rejected") != 0)
        u->cfg.next_attempt_ms = lf_now_ms();
    return u;
}

/* Inserts u unless the name is there already; returns the entry kept. */
static fleet_unit *unit_insert(struct lf_fleet *f, fleet_unit *u)
{
    pthread_mutex_lock(&f->mu);
    fleet_unit *old = lf_fleet_find(f, u->name);
    if (old) {
        pthread_mutex_unlock(&f->mu);
        unit_free(u);
        return old;
    }
    size_t b = name_hash(u->name) & (f->nbuckets - 1);
    u->hnext = f->buckets[b];
    f->buckets[b] = u;
    f->nunits++;
    fleet_group *g = &f->groups[u->group];
    if (g->nunits == g->capunits) {
        g->capunits = g->capunits ? g->capunits * 2 : 256;
        g->units = lf_xrealloc(g->units, g->capunits * sizeof *g->units);
    }
    g->units[g->nunits++] = u;
    pthread_mutex_unlock(&f->mu);
    return u;
}

fleet_unit *lf_fleet_get(struct lf_fleet *f, const char *name)
{
    pthread_mutex_lock(&f->mu);
    fleet_unit *u = lf_fleet_find(f, name);
    pthread_mutex_unlock(&f->mu);
    if (u) return u; /* entries live until lf_fleet_stop */
    lf_unit_info *info = lf_xmalloc(sizeof *info);
    if (lf_registry_unit(f->h, name, info) == 0) {
        u = unit_insert(f, unit_load(f, info));
        update_gauge(f);
        lf_fleet_wake(f, u->group);
    }
    free(info);
    return u;
}

bool lf_fleet_check_unit(lf_ctx *c, const char *name)
{
    if (c->who.role == LF_ROLE_UNIT && strcmp(c->who.id, name) == 0) return true;
    lf_http_error(c->resp, 403, "forbidden", "this token may act only for unit '%s'",
                  c->who.role == LF_ROLE_UNIT ? c->who.id : "(none)");
    return false;
}

/* ---- hub.h API ---------------------------------------------------------- */

int lf_fleet_presence(lf_hub *h, const char *unit, lf_presence_state *out)
{
    struct lf_fleet *f = fleet_of(h);
    memset(out, 0, sizeof *out);
    out->last_response_ms = -1;
    if (!f) return LF_ENOTFOUND;
    int rc = LF_ENOTFOUND;
    pthread_mutex_lock(&f->mu);
    fleet_unit *u = lf_fleet_find(f, unit);
    if (u) {
        *out = u->ps;
        rc = 0;
    }
    pthread_mutex_unlock(&f->mu);
    return rc;
}

void lf_fleet_unit_added(lf_hub *h, const char *unit)
{
    struct lf_fleet *f = fleet_of(h);
    if (f) lf_fleet_get(f, unit);
}

static const lf_route fleet_routes[] = {
    {"PUT", "/v1/units/:name/config", LF_ROLE_ADMIN, lf_fleet_route_config_put, "unit_config_put",
     0},
    {"GET", "/v1/units/:name/config", LF_ROLE_ADMIN, lf_fleet_route_config_get, "unit_config_get",
     0},
    {"POST", "/v1/units/:name/heartbeat", LF_ROLE_UNIT, lf_fleet_route_heartbeat, "unit_heartbeat",
     0},
    {"POST", "/v1/units/:name/events", LF_ROLE_UNIT, lf_fleet_route_events, "unit_events", 0},
    {0},
};

const lf_route *lf_fleet_routes(void)
{
    return fleet_routes;
}

/* ---- workers ---------------------------------------------------------- */

typedef struct {
    char **names;
    char **urls;
    size_t n, cap;
    lf_fleet_ping_result *res;
} ping_batch;

static void on_ping(size_t idx, const lf_fleet_ping_result *r, void *ctx)
{
    ping_batch *b = ctx;
    b->res[idx] = *r;
}

static bool owned_in_group(struct lf_fleet *f, const fleet_unit *u, int g)
{
    return u->group == g && lf_fleet_shard_owned(u->shard, f->owned);
}

static void sleep_until(struct lf_fleet *f, int64_t deadline_mono)
{
    while (!atomic_load(&f->stop)) {
        int64_t left = deadline_mono - lf_mono_ms();
        if (left <= 0) break;
        lf_sleep_ms(left < 100 ? left : 100);
    }
}

static void *ping_main(void *arg)
{
    fleet_group *g = arg;
    struct lf_fleet *f = g->f;
    int64_t interval = f->h->cfg.ping_interval_ms > 0 ? f->h->cfg.ping_interval_ms : 30000;
    int64_t timeout = f->h->cfg.ping_timeout_ms > 0 ? f->h->cfg.ping_timeout_ms : 5000;
    while (!atomic_load(&f->stop)) {
        int64_t t0 = lf_mono_ms();
        ping_batch b = {0};
        pthread_mutex_lock(&f->mu);
        for (size_t i = 0; i < g->nunits; i++) {
            fleet_unit *u = g->units[i];
            if (!owned_in_group(f, u, g->idx) || u->presence != LF_PRESENCE_POLL || !u->url[0])
                continue;
            if (b.n == b.cap) {
                b.cap = b.cap ? b.cap * 2 : 64;
                b.names = lf_xrealloc(b.names, b.cap * sizeof *b.names);
                b.urls = lf_xrealloc(b.urls, b.cap * sizeof *b.urls);
            }
            b.names[b.n] = lf_strdup(u->name);
            b.urls[b.n] = lf_asprintf("%s/ping", u->url);
            b.n++;
        }
        pthread_mutex_unlock(&f->mu);
        if (b.n > 0) {
            b.res = lf_xcalloc(b.n, sizeof *b.res);
            int rc = lf_fleet_pinger_round(g->pinger, (const char *const *)b.urls, b.n, timeout,
                                           on_ping, &b, &f->stop);
            int64_t took = lf_mono_ms() - t0;
            lf_metric_observe("lockerfleet_ping_round_seconds", NULL, (double)took / 1000.0);
            /* transitions are appended after the round, so slow appends
             * never eat into the pings' timeouts */
            for (size_t i = 0; rc == 0 && i < b.n; i++) {
                if (b.res[i].ok)
                    lf_fleet_seen(f, b.names[i], "ping", b.res[i].response_ms);
                else
                    lf_fleet_lost(f, b.names[i], b.res[i].reason ? b.res[i].reason : "error",
                                  b.res[i].detail);
            }
            LF_DEBUG("fleet", "group %d pinged %zu units in %lld ms", g->idx, b.n, (long long)took);
        }
        for (size_t i = 0; i < b.n; i++) {
            free(b.names[i]);
            free(b.urls[i]);
        }
        free(b.names);
        free(b.urls);
        free(b.res);
        sleep_until(f, t0 + interval);
    }
    return NULL;
}

typedef struct {
    char (*names)[65];
    size_t n, cap;
} name_list;

static void names_push(name_list *l, const char *name)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->names = lf_xrealloc(l->names, l->cap * sizeof *l->names);
    }
    snprintf(l->names[l->n++], 65, "%s", name);
}

/* ---- delivery pool ------------------------------------------------------ */

/* Queues u's due work (f->mu held); u->job_busy keeps one job per unit. */
static void job_push(fleet_group *g, fleet_unit *u, int kinds)
{
    fleet_job *j = lf_xcalloc(1, sizeof *j);
    snprintf(j->name, sizeof j->name, "%s", u->name);
    j->kinds = kinds;
    u->job_busy = 1;
    if (g->jobs_tail)
        g->jobs_tail->next = j;
    else
        g->jobs_head = j;
    g->jobs_tail = j;
    pthread_cond_signal(&g->jobs_cv);
}

static void *pool_main(void *arg)
{
    fleet_group *g = arg;
    struct lf_fleet *f = g->f;
    pthread_mutex_lock(&f->mu);
    while (!atomic_load(&f->stop)) {
        fleet_job *j = g->jobs_head;
        if (!j) {
            pthread_cond_wait(&g->jobs_cv, &f->mu);
            continue;
        }
        g->jobs_head = j->next;
        if (!g->jobs_head) g->jobs_tail = NULL;
        pthread_mutex_unlock(&f->mu);
        /* each of these re-checks what is due under f->mu, calls the unit
         * without it and records the outcome */
        if (j->kinds & FLEET_JOB_CFG) lf_fleet_cfg_deliver_due(f, j->name);
        if ((j->kinds & FLEET_JOB_RESV) && !atomic_load(&f->stop))
            lf_fleet_resv_deliver_due(f, j->name);
        if ((j->kinds & FLEET_JOB_PULL) && !atomic_load(&f->stop)) lf_fleet_pull_unit(f, j->name);
        pthread_mutex_lock(&f->mu);
        fleet_unit *u = lf_fleet_find(f, j->name);
        if (u) u->job_busy = 0;
        g->wake = 1; /* more may have become due meanwhile */
        pthread_cond_signal(&g->cv);
        free(j);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

static int pool_size(void)
{
    const char *env = getenv("LF_FLEET_DELIVERY_THREADS");
    int n = env ? atoi(env) : 0;
    return n >= 1 && n <= 256 ? n : FLEET_DELIVERY_THREADS;
}

static void *work_main(void *arg)
{
    fleet_group *g = arg;
    struct lf_fleet *f = g->f;
    int64_t pull_every = f->h->cfg.pull_interval_ms > 0 ? f->h->cfg.pull_interval_ms : 60000;
    g->next_pull_ms = lf_mono_ms();
    g->next_prune_ms = lf_mono_ms() + FLEET_PRUNE_MS;
    pthread_mutex_lock(&f->mu);
    int clustered = f->owned != NULL; /* several nodes: fixed at start */
    pthread_mutex_unlock(&f->mu);
    int64_t next_relay_ms = 0, relay_every = f->h->cfg.heartbeat_grace_ms / 3;
    if (relay_every < 250 || relay_every > 1000) relay_every = relay_every < 250 ? 250 : 1000;
    while (!atomic_load(&f->stop)) {
        int64_t now = lf_now_ms();
        if (g->idx == 0 && clustered && lf_mono_ms() >= next_relay_ms) {
            next_relay_ms = lf_mono_ms() + relay_every; /* one scan per node */
            relay_scan(f);
            now = lf_now_ms();
        }
        int pull_tick = lf_mono_ms() >= g->next_pull_ms;
        int prune = lf_mono_ms() >= g->next_prune_ms;
        size_t pruned = 0;
        if (pull_tick) g->next_pull_ms = lf_mono_ms() + pull_every;
        if (prune) g->next_prune_ms = lf_mono_ms() + FLEET_PRUNE_MS;
        name_list lost = {0};
        int64_t scan_ms = lf_mono_ms();
        pthread_mutex_lock(&f->mu);
        g->wake = 0;
        for (size_t i = 0; i < g->nunits; i++) {
            fleet_unit *u = g->units[i];
            if (!owned_in_group(f, u, g->idx)) continue;
            if (prune) pruned += lf_fleet_resv_prune(u, now);
            if (u->presence == LF_PRESENCE_HEARTBEAT) {
                int64_t grace = lf_fleet_hb_grace(f, u);
                int64_t since = u->ps.known ? u->ps.last_seen_at_ms : f->started_ms;
                if ((u->ps.online || (!u->ps.known && u->persisted != 0)) && now - since > grace)
                    names_push(&lost, u->name);
            }
            if (pull_tick && strcmp(u->uplink, "pull") == 0) u->pull_wanted = 1;
            if (!u->ps.online || !u->url[0] || u->job_busy) continue;
            int kinds = 0;
            fleet_cfg *c = &u->cfg;
            if (!c->busy && c->desired_version > c->applied_version && c->next_attempt_ms > 0 &&
                c->next_attempt_ms <= now && strcmp(c->state, "rejected") != 0)
                kinds |= FLEET_JOB_CFG;
            if (lf_fleet_resv_due(u, now)) kinds |= FLEET_JOB_RESV;
            if (u->pull_wanted && !u->pulling) {
                kinds |= FLEET_JOB_PULL;
                u->pull_wanted = 0;
            }
            if (kinds) job_push(g, u, kinds);
        }
        pthread_mutex_unlock(&f->mu);
        if (pruned) LF_DEBUG("fleet", "group %d: %zu finished reservations pruned", g->idx, pruned);
        for (size_t i = 0; i < lost.n && !atomic_load(&f->stop); i++) {
            int64_t grace = 0;
            pthread_mutex_lock(&f->mu);
            fleet_unit *u = lf_fleet_find(f, lost.names[i]);
            if (u && f->owned) grace = lf_fleet_hb_grace(f, u); /* several nodes */
            pthread_mutex_unlock(&f->mu);
            if (grace > 0 && hb_relayed(f, lost.names[i], grace)) continue;
            lf_fleet_lost(f, lost.names[i], "heartbeat_missed", "no heartbeat within the grace");
        }
        free(lost.names);
        pthread_mutex_lock(&f->mu);
        if (!g->wake && !atomic_load(&f->stop)) {
            struct timespec ts;
            lf_abstime_us(250 * 1000, &ts);
            pthread_cond_timedwait(&g->cv, &f->mu, &ts);
        }
        pthread_mutex_unlock(&f->mu);
        /* Wakes come with every unit coming online: in a reconnect storm
         * one per unit. Scan at most every FLEET_SCAN_GAP_MS, so the wakes
         * of a storm share a scan instead of each costing a walk of the
         * whole group under f->mu (which ingestion also takes). */
        int64_t gap = scan_ms + FLEET_SCAN_GAP_MS - lf_mono_ms();
        if (gap > 0 && !atomic_load(&f->stop)) lf_sleep_ms(gap);
    }
    return NULL;
}

/* ---- the log follower: reservations as they are decided ---------------- */

/* Config events another node wrote to unit-{name}: a ConfigDesired
 * queued through any node reaches the owner; ConfigApplied (a heartbeat
 * on another node) only raises applied_version. This node's own
 * ConfigDesired (meta.node) is already in memory: skipped. */
static void on_config_event(struct lf_fleet *f, const lf_event *ev)
{
    int desired = strcmp(ev->type, "ConfigDesired") == 0;
    if (!desired && strcmp(ev->type, "ConfigApplied") != 0) return;
    if (desired) {
        /* this node's own desire is in memory already (the PUT put it
         * there, and a live PUT is delivering it right now) */
        json_t *m = json_loads(ev->meta ? ev->meta : "{}", 0, NULL);
        const char *node = json_string_value(json_object_get(m, "node"));
        int own = node && strcmp(node, f->h->cfg.node_id ? f->h->cfg.node_id : "hub-1") == 0;
        json_decref(m);
        if (own) return;
    }
    fleet_unit *u = lf_fleet_get(f, ev->stream + 5);
    if (!u) return;
    json_t *d = json_loads(ev->data, 0, NULL);
    json_t *v = d ? json_object_get(d, "version") : NULL;
    int wake = 0, group;
    /* PUT config holds cfg_mu from its append until its in-memory
     * desired_version is set: wait for it, or a follower that reads the
     * log faster than the PUT returns would take this node's own
     * ConfigDesired for another node's and deliver it a second time. */
    if (desired) pthread_mutex_lock(&f->cfg_mu);
    pthread_mutex_lock(&f->mu);
    if (!desired) {
        lf_fleet_cfg_fold(u, ev); /* monotonic */
    } else if (json_is_integer(v) && json_integer_value(v) > u->cfg.desired_version) {
        lf_fleet_cfg_fold(u, ev);
        if (u->cfg.desired_version > u->cfg.applied_version) {
            u->cfg.next_attempt_ms = lf_now_ms(); /* due now, as if queued here */
            wake = 1;
        }
    }
    group = u->group;
    pthread_mutex_unlock(&f->mu);
    if (desired) pthread_mutex_unlock(&f->cfg_mu);
    json_decref(d);
    if (wake) lf_fleet_wake(f, group);
}

static int on_event(const lf_event *ev, void *ctx)
{
    struct lf_fleet *f = ctx;
    if (atomic_load(&f->stop)) return 1;
    if (strncmp(ev->stream, "unit-", 5) == 0 && strncmp(ev->type, "Config", 6) == 0) {
        on_config_event(f, ev);
        return 0;
    }
    if (strncmp(ev->stream, "bookings-", 9) != 0) return 0;
    const char *name = ev->stream + 9;
    fleet_unit *u = lf_fleet_get(f, name); /* loads it (and this event) if new */
    if (!u) return 0;
    int due = 0;
    pthread_mutex_lock(&f->mu);
    if (ev->version > u->bookings_version) {
        due = lf_fleet_resv_fold(f, u, ev);
        u->bookings_version = ev->version;
    }
    /* The group's scan only delivers to a unit that is online, has a URL
     * and no job running; waking it for anything else (every booking of
     * an offline unit) cost a scan of every unit per event. A unit that
     * comes online, or whose job ends, wakes its group itself. */
    if (due && (!u->ps.online || !u->url[0] || u->job_busy)) due = 0;
    int group = u->group;
    pthread_mutex_unlock(&f->mu);
    if (due) lf_fleet_wake(f, group);
    return 0;
}

/* ---- lifecycle ------------------------------------------------------------ */

static void collect_name(const lf_unit_info *u, void *ctx)
{
    names_push(ctx, u->name);
}

int lf_fleet_start(lf_hub *h)
{
    int rc = 0;
    struct lf_fleet *f = lf_xcalloc(1, sizeof *f);
    f->h = h;
    f->started_ms = lf_now_ms();
    f->nbuckets = FLEET_BUCKETS;
    f->buckets = lf_xcalloc(f->nbuckets, sizeof *f->buckets);
    f->ngroups = FLEET_GROUPS;
    const char *env = getenv("LF_FLEET_GROUPS");
    if (env && atoi(env) >= 1 && atoi(env) <= 16) f->ngroups = atoi(env);
    f->owned = lf_cluster_owned(h); /* cluster.c: this node's shards; NULL = all */
    pthread_mutex_init(&f->mu, NULL);
    pthread_mutex_init(&f->cfg_mu, NULL);
    pthread_mutex_init(&f->emits_mu, NULL);
    pthread_cond_init(&f->emits_cv, NULL);
    f->groups = lf_xcalloc((size_t)f->ngroups, sizeof *f->groups);
    for (int i = 0; i < f->ngroups; i++) {
        f->groups[i].f = f;
        f->groups[i].idx = i;
        pthread_cond_init(&f->groups[i].cv, NULL);
        pthread_cond_init(&f->groups[i].jobs_cv, NULL);
    }
    h->fleet = f;
    lf_metric_describe("lockerfleet_units", "gauge", "Units by presence state");
    lf_metric_describe("lockerfleet_unit_events_ingested_total", "counter",
                       "Unit events stored by ingestion (push or pull)");
    lf_metric_describe("lockerfleet_unit_events_duplicate_total", "counter",
                       "Unit events received again and acknowledged without storing");
    lf_metric_describe("lockerfleet_deliveries_total", "counter",
                       "Delivery attempts to units by kind and result");

    int64_t head = 0;
    rc = lf_store_head(h->store, &head);
    if (rc) goto out;
    name_list names = {0};
    lf_registry_each_unit(h, "", collect_name, &names);
    lf_unit_info *info = lf_xmalloc(sizeof *info);
    for (size_t i = 0; i < names.n; i++)
        if (lf_registry_unit(h, names.names[i], info) == 0) unit_insert(f, unit_load(f, info));
    free(info);
    free(names.names);
    update_gauge(f);
    LF_INFO("fleet", "%zu units loaded, %d worker groups", f->nunits, f->ngroups);

    /* On the projections' feed: the events the projections read anyway,
     * without another copy of each out of the store. */
    f->sub = lf_projections_follow(h->proj, head, on_event, f);
    if (!f->sub) {
        rc = LF_EIO;
        lf_err_set("fleet: cannot subscribe to the log");
        goto out;
    }
    for (int i = 0; i < f->ngroups; i++) {
        fleet_group *g = &f->groups[i];
        g->pinger = lf_fleet_pinger_new(FLEET_PING_INFLIGHT);
        if (!g->pinger) { /* e.g. lockerfleet-curl.so missing: lf_err_get() says */
            rc = LF_EIO;
            goto out;
        }
        lf_fleet_pinger_set_ca_file(g->pinger, h->cfg.ca_file);
        if (pthread_create(&g->ping_thr, NULL, ping_main, g) == 0) g->ping_started = 1;
        if (pthread_create(&g->work_thr, NULL, work_main, g) == 0) g->work_started = 1;
        int want = pool_size();
        g->pool = lf_xcalloc((size_t)want, sizeof *g->pool);
        while (g->npool < want && pthread_create(&g->pool[g->npool], NULL, pool_main, g) == 0)
            g->npool++;
        if (!g->ping_started || !g->work_started || g->npool < want) {
            rc = LF_ENOMEM;
            lf_err_set("fleet: cannot start worker threads");
            goto out;
        }
    }
out:
    if (rc) lf_fleet_stop(h);
    return rc;
}

void lf_fleet_stop(lf_hub *h)
{
    struct lf_fleet *f = fleet_of(h);
    if (!f) return;
    atomic_store(&f->stop, 1);
    for (int i = 0; i < f->ngroups; i++) {
        fleet_group *g = &f->groups[i];
        lf_fleet_pinger_wake(g->pinger);
        pthread_mutex_lock(&f->mu);
        pthread_cond_broadcast(&g->cv);
        pthread_cond_broadcast(&g->jobs_cv);
        pthread_mutex_unlock(&f->mu);
    }
    for (int i = 0; i < f->ngroups; i++) {
        fleet_group *g = &f->groups[i];
        if (g->ping_started) pthread_join(g->ping_thr, NULL);
        if (g->work_started) pthread_join(g->work_thr, NULL);
        for (int k = 0; k < g->npool; k++)
            pthread_join(g->pool[k], NULL);
        free(g->pool);
        for (fleet_job *j = g->jobs_head, *n; j; j = n) {
            n = j->next;
            free(j);
        }
        lf_fleet_pinger_free(g->pinger);
        pthread_cond_destroy(&g->cv);
        pthread_cond_destroy(&g->jobs_cv);
    }
    /* Presence events still queued in the store: their callbacks use f. */
    pthread_mutex_lock(&f->emits_mu);
    while (f->emits > 0)
        pthread_cond_wait(&f->emits_cv, &f->emits_mu);
    pthread_mutex_unlock(&f->emits_mu);
    lf_projection_follower_stop(f->sub);
    for (size_t i = 0; i < f->nbuckets; i++) {
        fleet_unit *u = f->buckets[i];
        while (u) {
            fleet_unit *n = u->hnext;
            unit_free(u);
            u = n;
        }
    }
    free(f->buckets);
    for (int i = 0; i < f->ngroups; i++)
        free(f->groups[i].units);
    free(f->groups);
    pthread_mutex_destroy(&f->mu);
    pthread_mutex_destroy(&f->cfg_mu);
    pthread_cond_destroy(&f->emits_cv);
    pthread_mutex_destroy(&f->emits_mu);
    h->fleet = NULL;
    free(f);
}
