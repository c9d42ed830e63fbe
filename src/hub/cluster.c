/*
 * cluster.c — shard leases and node records of a hub node (see cluster.h).
 *
 * Safety: a node counts a shard as its own only until the lease it last
 * renewed would expire, measured on its monotonic clock from *before* the
 * renewal was sent, minus a margin; if renewals fail (store down, node
 * stalled) it stops working the shard before another node can take it.
 */
#define _GNU_SOURCE
#include "hub/cluster.h"

#include "hub/fleet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NODE_PREFIX "node."
#define SHARD_PREFIX "shard."
#define LIST_MAX 256

struct lf_cluster {
    lf_hub *h;
    char node[LF_LEASE_NAME_MAX + 1];
    int64_t renew_ms, ttl_ms;
    int supported;                    /* 0: the store has no leases; this node owns all */
    int64_t until[LF_CLUSTER_SHARDS]; /* mono ms until which shard i is ours; 0 = not */
    char *owned;                      /* current owned string (see lf_cluster_owned) */
    int nodes_seen;
    pthread_t thr;
    int started;
    atomic_int stop;
    pthread_mutex_t mu; /* until[], owned, nodes_seen */
    pthread_cond_t cv;
};

static const char HEX[] = "0123456789abcdef";

static char *owned_string(const int own[LF_CLUSTER_SHARDS])
{
    lf_buf b;
    lf_buf_init(&b, 0);
    for (int i = 0; i < LF_CLUSTER_SHARDS; i++)
        if (own[i]) lf_buf_printf(&b, "%s%c", b.len ? "," : "", HEX[i]);
    char *s = lf_strdup(b.len ? b.data : "-");
    lf_buf_free(&b);
    return s;
}

/* ---- rebuilding a taken shard's units from the log ---------------------
 * Another node worked these units: their config and reservation ledgers in
 * our memory are stale. Fold their streams again into fresh ledgers and
 * swap them in. (This mirrors fleet.c's load; the fleet exports the folds.) */
static void fold_into(struct lf_fleet *f, fleet_unit *u, const char *stream, int bookings)
{
    lf_event_list l;
    lf_event_list_init(&l);
    int64_t from = 1;
    for (;;) {
        lf_event_list_free(&l);
        if (lf_store_read_stream(f->h->store, stream, from, 1000, &l)) {
            LF_WARN("cluster", "reading %s: %s", stream, lf_err_get());
            break;
        }
        for (size_t i = 0; i < l.n; i++) {
            const lf_event *ev = &l.ev[i];
            if (bookings) {
                lf_fleet_resv_fold(f, u, ev);
                u->bookings_version = ev->version;
            } else if (strcmp(ev->type, "UnitCameOnline") == 0) {
                u->persisted = 1;
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
    lf_event_list_free(&l);
}

static void reload_unit(struct lf_fleet *f, const char *name)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        fleet_unit *n = lf_xcalloc(1, sizeof *n);
        n->persisted = -1;
        snprintf(n->cfg.state, sizeof n->cfg.state, "none");
        char stream[80];
        snprintf(stream, sizeof stream, "bookings-%s", name);
        fold_into(f, n, stream, 1);
        snprintf(stream, sizeof stream, "unit-%s", name);
        fold_into(f, n, stream, 0);
        int64_t now = lf_now_ms();
        if (n->cfg.desired_version > n->cfg.applied_version && n->cfg.next_attempt_ms == 0 &&
            strcmp(n->cfg.state, "rejected") != 0)
            n->cfg.next_attempt_ms = now;
        int done = 0;
        pthread_mutex_lock(&f->mu);
        fleet_unit *u = lf_fleet_find(f, name);
        /* The log follower may have folded a newer bookings event into u
         * meanwhile: then read again. */
        if (u && !u->cfg.busy && n->bookings_version >= u->bookings_version) {
            fleet_cfg c = u->cfg;
            u->cfg = n->cfg;
            n->cfg = c;
            fleet_resv *r = u->resv;
            u->resv = n->resv;
            n->resv = r;
            u->bookings_version = n->bookings_version;
            u->persisted = n->persisted;
            if (!u->ps.known) { /* a full grace from now, not from our start */
                u->ps.known = 1;
                u->ps.last_seen_at_ms = now;
            }
            /* deliveries that were pending elsewhere are due at once */
            if (u->cfg.desired_version > u->cfg.applied_version && u->cfg.next_attempt_ms > 0)
                u->cfg.next_attempt_ms = now;
            lf_fleet_resv_due_now(u, now);
            done = 1;
        } else if (!u) {
            done = 1;
        }
        pthread_mutex_unlock(&f->mu);
        lf_fleet_cfg_free(&n->cfg);
        lf_fleet_resv_free(n);
        free(n);
        if (done) return;
    }
    LF_WARN("cluster", "unit %s: could not rebuild its fleet state", name);
}

typedef struct {
    const int *taken;
    char (*names)[65];
    size_t n, cap;
} taken_units;

static void collect_taken(const lf_unit_info *u, void *ctx)
{
    taken_units *t = ctx;
    int idx = lf_fleet_shard_index((char[2]){u->shard[0], '\0'});
    if (idx < 0 || !t->taken[idx]) return;
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->names = lf_xrealloc(t->names, t->cap * sizeof *t->names);
    }
    snprintf(t->names[t->n++], 65, "%s", u->name);
}

/* Publishes a new owned set to the fleet; rebuilds units of taken shards
 * first (the workers do not see them as ours until the swap). */
static void publish(struct lf_cluster *cl, const int own[LF_CLUSTER_SHARDS],
                    const int taken[LF_CLUSTER_SHARDS])
{
    struct lf_fleet *f = cl->h->fleet;
    int any_taken = 0;
    for (int i = 0; i < LF_CLUSTER_SHARDS; i++)
        any_taken |= taken[i];
    if (f && any_taken) {
        taken_units t = {.taken = taken};
        lf_registry_each_unit(cl->h, "", collect_taken, &t);
        for (size_t i = 0; i < t.n; i++)
            reload_unit(f, t.names[i]);
        free(t.names);
    }
    char *s = owned_string(own);
    char *old;
    if (f) pthread_mutex_lock(&f->mu);
    pthread_mutex_lock(&cl->mu);
    old = cl->owned;
    cl->owned = s;
    if (f) f->owned = s;
    pthread_mutex_unlock(&cl->mu);
    if (f) pthread_mutex_unlock(&f->mu);
    free(old);
    if (f)
        for (int g = 0; g < f->ngroups; g++)
            lf_fleet_wake(f, g);
    LF_INFO("cluster", "node %s owns shards %s", cl->node, s);
}

/* ---- one round: node record, renew, balance ------------------------------ */
static void round_once(struct lf_cluster *cl, int publish_always)
{
    lf_store *st = cl->h->store;
    char name[LF_LEASE_NAME_MAX + 16];
    int64_t t0 = lf_mono_ms();
    /* a lease counts until t0 + left - margin (t0 is before the request) */
    int64_t margin = cl->renew_ms;
    int before[LF_CLUSTER_SHARDS], own[LF_CLUSTER_SHARDS], taken[LF_CLUSTER_SHARDS] = {0};
    pthread_mutex_lock(&cl->mu);
    for (int i = 0; i < LF_CLUSTER_SHARDS; i++) {
        before[i] = cl->until[i] > t0;
        own[i] = 0;
    }
    pthread_mutex_unlock(&cl->mu);

    snprintf(name, sizeof name, NODE_PREFIX "%s", cl->node);
    int rc = lf_store_lease(st, name, cl->node, cl->ttl_ms, NULL);
    if (rc == LF_ECONFLICT) LF_WARN("cluster", "another live node uses the id %s", cl->node);
    lf_lease *l = lf_xcalloc(LIST_MAX, sizeof *l);
    size_t nn = 0, ns = 0;
    int nodes = 1;
    if (lf_store_lease_list(st, NODE_PREFIX, l, LIST_MAX, &nn) == 0) {
        nodes = (int)nn;
        int self = 0;
        for (size_t i = 0; i < nn; i++)
            self |= strcmp(l[i].owner, cl->node) == 0;
        if (!self) nodes++;
    }
    int64_t until[LF_CLUSTER_SHARDS] = {0};
    int holder_other[LF_CLUSTER_SHARDS] = {0};
    if (lf_store_lease_list(st, SHARD_PREFIX, l, LIST_MAX, &ns) == 0)
        for (size_t i = 0; i < ns; i++) {
            int idx = lf_fleet_shard_index(l[i].name + strlen(SHARD_PREFIX));
            if (idx >= 0 && idx < LF_CLUSTER_SHARDS && strcmp(l[i].owner, cl->node) != 0)
                holder_other[idx] = 1;
        }
    int target = (LF_CLUSTER_SHARDS + nodes - 1) / (nodes > 0 ? nodes : 1);
    /* renew what we hold, giving back the extras (highest first) */
    int held = 0;
    for (int i = 0; i < LF_CLUSTER_SHARDS; i++)
        held += before[i];
    for (int i = LF_CLUSTER_SHARDS - 1; i >= 0; i--) {
        if (!before[i]) continue;
        snprintf(name, sizeof name, SHARD_PREFIX "%c", HEX[i]);
        if (held > target) {
            lf_store_lease_release(st, name, cl->node);
            held--;
            continue;
        }
        lf_lease got;
        rc = lf_store_lease(st, name, cl->node, cl->ttl_ms, &got);
        if (rc == 0) {
            own[i] = 1;
            until[i] = t0 + got.left_ms - margin;
        } else if (rc == LF_ECONFLICT) {
            held--; /* lost it (we stalled past the ttl) */
        } else {
            /* store unreachable: keep it only while the old lease lasts */
            pthread_mutex_lock(&cl->mu);
            until[i] = cl->until[i];
            own[i] = until[i] > lf_mono_ms();
            pthread_mutex_unlock(&cl->mu);
        }
    }
    /* take free or expired shards up to the target */
    held = 0;
    for (int i = 0; i < LF_CLUSTER_SHARDS; i++)
        held += own[i];
    for (int i = 0; i < LF_CLUSTER_SHARDS && held < target; i++) {
        if (own[i] || holder_other[i]) continue;
        snprintf(name, sizeof name, SHARD_PREFIX "%c", HEX[i]);
        lf_lease got;
        if (lf_store_lease(st, name, cl->node, cl->ttl_ms, &got) == 0) {
            own[i] = 1;
            taken[i] = 1;
            until[i] = t0 + got.left_ms - margin;
            held++;
        }
    }
    free(l);
    int changed = publish_always;
    for (int i = 0; i < LF_CLUSTER_SHARDS; i++)
        changed |= own[i] != before[i];
    pthread_mutex_lock(&cl->mu);
    memcpy(cl->until, until, sizeof until);
    cl->nodes_seen = nodes;
    pthread_mutex_unlock(&cl->mu);
    if (changed) publish(cl, own, taken);
}

/* Units registered through other nodes reach this node's registry through
 * the log; make sure the fleet table has every unit of our shards. */
typedef struct {
    const char *owned;
    char (*names)[65];
    size_t n, cap;
} owned_units;

static void collect_owned(const lf_unit_info *u, void *ctx)
{
    owned_units *t = ctx;
    if (!lf_fleet_shard_owned(u->shard, t->owned)) return;
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->names = lf_xrealloc(t->names, t->cap * sizeof *t->names);
    }
    snprintf(t->names[t->n++], 65, "%s", u->name);
}

static void adopt_units(struct lf_cluster *cl)
{
    struct lf_fleet *f = cl->h->fleet;
    if (!f) return;
    pthread_mutex_lock(&cl->mu);
    char *owned = lf_strdup(cl->owned ? cl->owned : "-");
    pthread_mutex_unlock(&cl->mu);
    owned_units t = {.owned = owned};
    lf_registry_each_unit(cl->h, "", collect_owned, &t);
    for (size_t i = 0; i < t.n; i++)
        lf_fleet_get(f, t.names[i]);
    free(t.names);
    free(owned);
}

static void *cluster_main(void *arg)
{
    struct lf_cluster *cl = arg;
    while (!atomic_load(&cl->stop)) {
        int64_t t0 = lf_mono_ms();
        round_once(cl, 0);
        adopt_units(cl);
        /* a lease must never lapse while we hold it: drop what runs out */
        pthread_mutex_lock(&cl->mu);
        int64_t wait = cl->renew_ms - (lf_mono_ms() - t0);
        if (wait > 0 && !atomic_load(&cl->stop)) {
            struct timespec ts;
            lf_abstime_us(wait * 1000, &ts);
            pthread_cond_timedwait(&cl->cv, &cl->mu, &ts);
        }
        pthread_mutex_unlock(&cl->mu);
    }
    return NULL;
}

/* ---- lifecycle --------------------------------------------------------- */
int lf_cluster_start(lf_hub *h, int64_t renew_ms, int64_t ttl_ms)
{
    struct lf_cluster *cl = lf_xcalloc(1, sizeof *cl);
    cl->h = h;
    snprintf(cl->node, sizeof cl->node, "%s", h->cfg.node_id ? h->cfg.node_id : "hub-1");
    cl->renew_ms = renew_ms > 0 ? renew_ms : 1000;
    cl->ttl_ms = ttl_ms > cl->renew_ms ? ttl_ms : 3 * cl->renew_ms;
    pthread_mutex_init(&cl->mu, NULL);
    pthread_cond_init(&cl->cv, NULL);
    h->cluster = cl;
    size_t idlen = strlen(h->cfg.node_id ? h->cfg.node_id : cl->node);
    int ok = idlen >= 1 && idlen <= LF_LEASE_NAME_MAX - strlen(NODE_PREFIX);
    for (size_t i = 0; ok && i < idlen; i++)
        ok = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-",
                    cl->node[i]) != NULL;
    if (!ok) {
        lf_err_set("--node-id must be 1..%zu bytes of [A-Za-z0-9._-]",
                   (size_t)LF_LEASE_NAME_MAX - strlen(NODE_PREFIX));
        return LF_EINVAL;
    }
    size_t n = 0;
    lf_lease probe;
    int rc = lf_store_lease_list(h->store, NODE_PREFIX, &probe, 1, &n);
    if (rc == LF_EUNSUPPORTED) {
        LF_INFO("cluster", "the %s store has no leases: this node owns every shard",
                lf_store_backend(h->store));
        return 0;
    }
    if (rc) {
        lf_err_set("cluster: %s", lf_err_get());
        return rc;
    }
    cl->supported = 1;
    round_once(cl, 1);
    return 0;
}

int lf_cluster_run(lf_hub *h)
{
    struct lf_cluster *cl = h->cluster;
    if (!cl || !cl->supported) return 0;
    if (pthread_create(&cl->thr, NULL, cluster_main, cl) != 0) {
        lf_err_set("cluster: cannot start the lease thread");
        return LF_ENOMEM;
    }
    cl->started = 1;
    return 0;
}

void lf_cluster_stop(lf_hub *h)
{
    struct lf_cluster *cl = h ? h->cluster : NULL;
    if (!cl) return;
    atomic_store(&cl->stop, 1);
    pthread_mutex_lock(&cl->mu);
    pthread_cond_broadcast(&cl->cv);
    pthread_mutex_unlock(&cl->mu);
    if (cl->started) pthread_join(cl->thr, NULL);
    if (cl->supported) {
        /* stop working the shards first, then give them away */
        int none[LF_CLUSTER_SHARDS] = {0};
        publish(cl, none, none);
        char name[LF_LEASE_NAME_MAX + 16];
        for (int i = 0; i < LF_CLUSTER_SHARDS; i++)
            if (cl->until[i]) {
                snprintf(name, sizeof name, SHARD_PREFIX "%c", HEX[i]);
                lf_store_lease_release(h->store, name, cl->node);
            }
        snprintf(name, sizeof name, NODE_PREFIX "%s", cl->node);
        lf_store_lease_release(h->store, name, cl->node);
    }
    if (h->fleet) { /* nothing is ours any more (NULL would mean all) */
        pthread_mutex_lock(&h->fleet->mu);
        h->fleet->owned = "-";
        pthread_mutex_unlock(&h->fleet->mu);
    }
    h->cluster = NULL;
    free(cl->owned);
    pthread_mutex_destroy(&cl->mu);
    pthread_cond_destroy(&cl->cv);
    free(cl);
}

const char *lf_cluster_owned(lf_hub *h)
{
    struct lf_cluster *cl = h ? h->cluster : NULL;
    return cl && cl->supported ? cl->owned : NULL;
}

/* ---- GET /v1/cluster ----------------------------------------------------- */
static void route_cluster(lf_ctx *c)
{
    lf_hub *h = c->hub;
    struct lf_cluster *cl = h->cluster;
    json_t *out = json_object();
    json_object_set_new(out, "node_id", json_string(h->cfg.node_id ? h->cfg.node_id : "hub-1"));
    json_object_set_new(out, "store", json_string(lf_store_backend(h->store)));
    json_t *nodes = json_array();
    if (!cl || !cl->supported) {
        json_t *all = json_array();
        for (int i = 0; i < LF_CLUSTER_SHARDS; i++)
            json_array_append_new(all, json_sprintf("%c", HEX[i]));
        json_array_append_new(nodes, json_pack("{s:s,s:o,s:o}", "id", h->cfg.node_id, "last_seen",
                                               lf_fleet_time_json(lf_now_ms()), "shards", all));
    } else {
        lf_lease *l = lf_xcalloc(LIST_MAX, sizeof *l);
        size_t nn = 0, ns = 0;
        int rc = lf_store_lease_list(h->store, NODE_PREFIX, l, LIST_MAX, &nn);
        lf_lease *s = lf_xcalloc(LIST_MAX, sizeof *s);
        if (!rc) rc = lf_store_lease_list(h->store, SHARD_PREFIX, s, LIST_MAX, &ns);
        if (rc) {
            free(l);
            free(s);
            json_decref(out);
            json_decref(nodes);
            lf_hub_error_rc(c, rc, "cluster leases");
            return;
        }
        int64_t now = lf_now_ms();
        for (size_t i = 0; i < nn; i++) {
            json_t *sh = json_array();
            for (size_t k = 0; k < ns; k++)
                if (strcmp(s[k].owner, l[i].owner) == 0)
                    json_array_append_new(sh, json_string(s[k].name + strlen(SHARD_PREFIX)));
            /* the record is renewed every renew interval: last seen =
             * expiry - ttl (the engine's clock, shown in ours) */
            int64_t seen = now - (cl->ttl_ms - l[i].left_ms);
            json_array_append_new(nodes,
                                  json_pack("{s:s,s:o,s:o,s:I}", "id", l[i].owner, "last_seen",
                                            lf_fleet_time_json(seen > now ? now : seen), "shards",
                                            sh, "lease_left_ms", (json_int_t)l[i].left_ms));
        }
        free(l);
        free(s);
        json_object_set_new(out, "lease_ttl_ms", json_integer(cl->ttl_ms));
    }
    json_object_set_new(out, "nodes", nodes);
    lf_http_json(c->resp, 200, out);
}

static const lf_route cluster_routes[] = {
    {"GET", "/v1/cluster", LF_ROLE_ADMIN, route_cluster, "cluster", 0},
    {0},
};

const lf_route *lf_cluster_routes(void)
{
    return cluster_routes;
}
