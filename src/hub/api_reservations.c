/*
 * api_reservations.c — the booking service of the hub: the reservation
 * endpoints, the hold-expiry worker and the conflict process manager.
 *
 * Decisions (reserve, confirm, cancel, expire, conflicts) are made by the
 * pure domain (src/domain/booking.c) on the state of ONE unit's
 * `bookings-{unit}` stream, cached in memory per unit, and appended with
 * expected version = the state's version. Within this process a per-unit
 * mutex serialises decisions; across processes (several hub nodes) the
 * store's version check does, and LF_ECONFLICT reloads the state from the
 * stream and decides again (bounded). So no locker is ever double booked.
 *
 * Reads: GET /v1/reservations(/{id}) read the `reservations` projection
 * (honouring ?min_position); GET /v1/availability is answered from the
 * in-memory booking state (the same state decisions use, so it is never
 * behind this node's own writes) because it is the hot path (target
 * 20,000 req/s): it still honours ?min_position by waiting for the
 * `availability` projection. See docs/ARCHITECTURE.md "Reservations and
 * conflicts".
 *
 * Threads: HTTP handlers (the polling threads in pool mode, which never
 * wait for a commit: see "answering when durable" below; or one thread per
 * connection), the store's acknowledger thread (the callbacks of
 * asynchronous appends), one expiry thread, one conflict follower thread (on the
 * projections' feed). Lock order: an entry's mu, then svc->mu (svc->mu is
 * never held while taking an entry's mu).
 */
#define _GNU_SOURCE
#include "domain/booking.h"
#include "domain/code.h"
#include "hub/hub.h"
#include "hub/router.h"
#include "projection/projection.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#define MAX_RETRIES 16
#define PRICE_PER_HOUR_CENTS 200
#define LIST_MAX 1000

/* A request waiting for its unit's asynchronous append to finish. */
struct waiter {
    lf_http_resp *resp;
    struct waiter *next;
};

/* One unit's booking state. Entries live until the service stops. */
struct unit_entry {
    char name[65];
    pthread_mutex_t mu;
    pthread_cond_t idle;    /* busy went back to 0 */
    lf_booking_state st;    /* guarded by mu */
    int loaded;             /* guarded by mu */
    int busy;               /* guarded by mu: an asynchronous append in flight */
    struct waiter *waiters; /* guarded by mu: requests to run again when !busy */
    struct waiter **wtail;
    _Atomic int64_t next_expiry_ms;
    struct unit_entry *next; /* hash chain, guarded by svc->mu */
    struct unit_entry *all;  /* list of every entry */
};

/* reservation id (or "user\nidem-key") -> unit name */
struct ref {
    char *key;
    char unit[65];
    char user[LF_BOOKING_USER_MAX];
    char id[LF_UUID_LEN];
    struct ref *next;
};

#define NBUCKETS 4096

struct lf_booking_svc {
    lf_hub *h;
    pthread_mutex_t mu;
    struct unit_entry *ubuckets[NBUCKETS];
    struct unit_entry *all;
    struct ref *rbuckets[NBUCKETS]; /* by reservation id */
    struct ref *ibuckets[NBUCKETS]; /* by user + idempotency key */
    pthread_t expiry;
    int expiry_started;
    pthread_mutex_t wmu;
    pthread_cond_t wcv;
    int stop;
    lf_subscription *conflicts;          /* without projections: on the store */
    lf_projection_follower *conflicts_f; /* else on the projections' feed */
    char *ckpt_path;
    int64_t ckpt_saved_ms;
    int64_t ckpt_saved_pos;
};

static unsigned bucket_of(const char *s)
{
    return (unsigned)(XXH3_64bits(s, strlen(s)) % NBUCKETS);
}

/* ---- index of reservations ------------------------------------------ */

static void ref_add(struct lf_booking_svc *s, struct ref **tab, const char *key, const char *unit,
                    const char *user, const char *id)
{
    unsigned b = bucket_of(key);
    for (struct ref *r = tab[b]; r; r = r->next)
        if (strcmp(r->key, key) == 0) return;
    struct ref *r = lf_xcalloc(1, sizeof *r);
    r->key = lf_strdup(key);
    snprintf(r->unit, sizeof r->unit, "%s", unit);
    snprintf(r->user, sizeof r->user, "%s", user);
    snprintf(r->id, sizeof r->id, "%s", id);
    r->next = tab[b];
    tab[b] = r;
    (void)s;
}

/* Copies the ref for key out (0) or LF_ENOTFOUND. */
static int ref_get(struct lf_booking_svc *s, struct ref **tab, const char *key, struct ref *out)
{
    int rc = LF_ENOTFOUND;
    pthread_mutex_lock(&s->mu);
    for (struct ref *r = tab[bucket_of(key)]; r; r = r->next)
        if (strcmp(r->key, key) == 0) {
            *out = *r;
            rc = 0;
            break;
        }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static void idem_key_of(const char *user, const char *key, char *out, size_t n)
{
    snprintf(out, n, "%s\n%s", user, key);
}

/* Indexes every reservation of a state (caller holds e->mu). */
static void index_state(struct lf_booking_svc *s, struct unit_entry *e, size_t from)
{
    char ik[LF_BOOKING_USER_MAX + LF_BOOKING_IDEM_MAX + 2];
    pthread_mutex_lock(&s->mu);
    for (size_t i = from; i < e->st.n; i++) {
        const lf_reservation *r = &e->st.res[i];
        ref_add(s, s->rbuckets, r->id, e->name, r->user_id, r->id);
        if (r->idem_key[0]) {
            idem_key_of(r->user_id, r->idem_key, ik, sizeof ik);
            ref_add(s, s->ibuckets, ik, e->name, r->user_id, r->id);
        }
    }
    pthread_mutex_unlock(&s->mu);
}

/* ---- unit entries --------------------------------------------------- */

static struct unit_entry *entry_get(struct lf_booking_svc *s, const char *unit)
{
    unsigned b = bucket_of(unit);
    struct unit_entry *e;
    pthread_mutex_lock(&s->mu);
    for (e = s->ubuckets[b]; e; e = e->next)
        if (strcmp(e->name, unit) == 0) goto out;
    e = lf_xcalloc(1, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", unit);
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->idle, NULL);
    e->wtail = &e->waiters;
    lf_booking_state_init(&e->st);
    e->next_expiry_ms = INT64_MAX;
    e->next = s->ubuckets[b];
    s->ubuckets[b] = e;
    e->all = s->all;
    s->all = e;
out:
    pthread_mutex_unlock(&s->mu);
    return e;
}

static void stream_of(const char *unit, char *out, size_t n)
{
    snprintf(out, n, "bookings-%s", unit);
}

static void update_next_expiry(struct unit_entry *e)
{
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < e->st.n; i++)
        if (e->st.res[i].status == LF_RES_HELD && e->st.res[i].hold_expires_ms < next)
            next = e->st.res[i].hold_expires_ms;
    e->next_expiry_ms = next;
}

/* Brings e->st up to the stream's head (caller holds e->mu). */
static int entry_refresh(struct lf_booking_svc *s, struct unit_entry *e)
{
    char stream[LF_STREAM_MAX];
    lf_event_list l;
    size_t before = e->st.n;
    int rc = 0;

    stream_of(e->name, stream, sizeof stream);
    lf_event_list_init(&l);
    for (;;) {
        l.n = 0;
        lf_event_list_free(&l);
        rc = lf_store_read_stream(s->h->store, stream, e->st.version + 1, 2000, &l);
        if (rc != 0) goto out;
        for (size_t i = 0; i < l.n; i++) {
            if (l.ev[i].version != e->st.version + 1) continue; /* never twice */
            if (lf_booking_apply(&e->st, l.ev[i].version, l.ev[i].type, l.ev[i].data) != 0)
                LF_WARN("booking", "%s v%" PRId64 ": bad %s event skipped", stream, l.ev[i].version,
                        l.ev[i].type);
        }
        if (l.n < 2000) break;
    }
    e->loaded = 1;
    index_state(s, e, before);
    update_next_expiry(e);
out:
    lf_event_list_free(&l);
    return rc;
}

static int entry_ensure(struct lf_booking_svc *s, struct unit_entry *e)
{
    return e->loaded ? 0 : entry_refresh(s, e);
}

/* The unit's lockers in the domain's shape (ids copied into u). */
typedef struct {
    lf_unit_info u;
    char ids[128][LF_BOOKING_LOCKER_MAX];
    char sizes[128];
    lf_booking_lockers lk;
} unit_lockers;

static int lockers_of(lf_hub *h, const char *unit, unit_lockers *ul)
{
    int rc = lf_registry_unit(h, unit, &ul->u);
    if (rc != 0) return rc;
    for (int i = 0; i < ul->u.nlockers && i < 128; i++) {
        snprintf(ul->ids[i], sizeof ul->ids[i], "%s", ul->u.lockers[i].id);
        ul->sizes[i] = ul->u.lockers[i].size;
    }
    ul->lk.ids = (const char(*)[LF_BOOKING_LOCKER_MAX])ul->ids;
    ul->lk.sizes = ul->sizes;
    ul->lk.n = (size_t)(ul->u.nlockers < 128 ? ul->u.nlockers : 128);
    ul->lk.allotment = (const char(*)[LF_BOOKING_LOCKER_MAX])ul->u.allotment;
    ul->lk.nallot = (size_t)ul->u.nallotment;
    return 0;
}

static int unit_online(lf_hub *h, const char *unit)
{
    lf_presence_state ps;
    if (lf_fleet_presence(h, unit, &ps) != 0) return 0;
    return ps.known && ps.online;
}

/* ---- decide + append ---------------------------------------------- */

typedef int (*decide_fn)(const lf_booking_state *st, void *arg, int64_t now,
                         lf_booking_events *out);

typedef struct {
    int64_t position; /* last position appended (0 if nothing) */
    size_t nevents;
} decide_result;

/* Decides on e's state and appends; on a version conflict reloads and
 * decides again. Caller holds e->mu. Returns 0, a domain code, or LF_E*. */
/* The meta of a decision's events. */
static void meta_of(struct lf_booking_svc *s, const char *request_id, char *meta, size_t n)
{
    snprintf(meta, n, "{\"source\":\"hub\",\"node\":\"%s\",\"request_id\":\"%s\"}",
             s->h->cfg.node_id ? s->h->cfg.node_id : "hub-1", request_id ? request_id : "");
}

/* A decision's events as the store takes them (borrowing out's strings). */
static void events_in(const lf_booking_events *out, const char *meta, int64_t now, lf_event_in *evs)
{
    for (size_t i = 0; i < out->n; i++)
        evs[i] = (lf_event_in){out->ev[i].id[0] ? out->ev[i].id : NULL, out->ev[i].type,
                               out->ev[i].data, meta, now};
}

/* Folds a decision's appended events into e's state (e->mu held). */
static void fold_appended(struct lf_booking_svc *s, struct unit_entry *e,
                          const lf_booking_events *out, const lf_append_result *ar)
{
    size_t before = e->st.n;
    lf_booking_apply_events(&e->st, out);
    if (e->st.version != ar->last_version) {
        entry_refresh(s, e); /* our fold and the store disagree: trust the store */
    } else {
        index_state(s, e, before);
        update_next_expiry(e);
    }
}

static int decide_append(struct lf_booking_svc *s, struct unit_entry *e, decide_fn fn, void *arg,
                         const char *request_id, decide_result *res)
{
    char stream[LF_STREAM_MAX], meta[160];
    lf_event_in evs[LF_BOOKING_EVENTS_MAX];
    lf_booking_events out = {0};
    int rc;

    memset(res, 0, sizeof *res);
    stream_of(e->name, stream, sizeof stream);
    meta_of(s, request_id, meta, sizeof meta);
    if ((rc = entry_ensure(s, e)) != 0) goto out;
    for (int attempt = 0;; attempt++) {
        lf_append_result ar;
        int64_t now = lf_now_ms();
        lf_booking_events_free(&out);
        rc = fn(&e->st, arg, now, &out);
        if (rc != 0 || out.n == 0) goto out;
        events_in(&out, meta, now, evs);
        rc = lf_hub_append(s->h, stream, e->st.version ? e->st.version : LF_EXPECT_NO_STREAM, evs,
                           out.n, &ar);
        if (rc == LF_ECONFLICT || (rc == 0 && ar.duplicate)) {
            /* another writer (node) got there first, or these events were
             * already stored: reload and decide again */
            int rr = entry_refresh(s, e);
            if (rr != 0) {
                rc = rr;
                goto out;
            }
            if (attempt + 1 >= MAX_RETRIES) {
                lf_err_set("%s: too much contention", stream);
                rc = LF_EBUSY;
                goto out;
            }
            continue;
        }
        if (rc != 0) goto out;
        fold_appended(s, e, &out, &ar);
        res->position = ar.last_position;
        res->nevents = out.n;
        goto out;
    }
out:
    lf_booking_events_free(&out);
    return rc;
}

/* ---- JSON of a reservation ----------------------------------------- */

static json_t *time_json(int64_t ms)
{
    char buf[LF_TIME_LEN];
    return json_string(lf_time_format(ms, buf));
}

static void code_of(lf_hub *h, const char *unit, const lf_reservation *r, char *code, size_t n)
{
    unsigned char key[32];
    lf_hub_booking_key(h, unit, key);
    if (lf_code_make(key, r->id, r->locker, r->from_ms, r->to_ms, code, n) != 0) code[0] = '\0';
    memset(key, 0, sizeof key);
}

/* ---- answering when durable, without holding a thread (pool mode) ----
 *
 * With --http-threads, reserve/confirm/cancel run on the polling threads:
 * the handler decides on the unit's state, queues the events with
 * lf_store_append_async and returns; the connection is suspended
 * (lf_http_later) and the store's callback, once the events are durable,
 * folds them into the state and sends the answer. Meanwhile the entry is
 * busy: the next decision on that unit — whoever makes it — waits until
 * the callback has run, so every decision is still made on the durable
 * state with expected version = its version, exactly as the synchronous
 * path (which holds e->mu across its append) does. A request that finds
 * its unit busy is queued on the entry and runs again when it is free. */

enum { ANSWER_RESERVE, ANSWER_CONFIRM, ANSWER_CANCEL };
#define LATER 1 /* decide_later: the answer comes from the callback */
#define LATER_BOUND_US (5 * 1000000)

/* Takes e for a decision: returns 1 with e->mu held and no asynchronous
 * append of e in flight (waiting for it on a thread that may wait); or 0
 * when the request was queued to run again once e is free (pool mode: the
 * connection is suspended; e->mu is not held and c->resp is no longer the
 * caller's). c may be NULL (a worker thread). */
static int entry_acquire(lf_ctx *c, struct unit_entry *e)
{
    pthread_mutex_lock(&e->mu);
    while (e->busy) {
        if (c && lf_http_pooled(c->resp) && lf_http_later(c->resp)) {
            struct waiter *w = lf_xmalloc(sizeof *w);
            w->resp = c->resp;
            w->next = NULL;
            *e->wtail = w;
            e->wtail = &w->next;
            pthread_mutex_unlock(&e->mu);
            lf_metric_inc("lockerfleet_reservation_queued_total", NULL, 1);
            return 0;
        }
        pthread_cond_wait(&e->idle, &e->mu);
    }
    return 1;
}

static void answer_confirmed(lf_hub *h, lf_http_resp *resp, struct unit_entry *e,
                             const lf_reservation *r, int64_t position)
{
    char code[LF_CODE_MAX];
    code_of(h, e->name, r, code, sizeof code);
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(r->id));
    json_object_set_new(o, "status", json_string("confirmed"));
    json_object_set_new(o, "code", json_string(code));
    json_object_set_new(o, "locker", json_string(r->locker));
    json_object_set_new(o, "amount_cents", json_integer(r->amount_cents));
    json_object_set_new(o, "position", json_integer(position));
    lf_http_json(resp, 200, o);
}

static void answer_cancelled(lf_http_resp *resp, const char *id, int64_t position)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "status", json_string("cancelled"));
    json_object_set_new(o, "position", json_integer(position));
    lf_http_json(resp, 200, o);
}

static void booking_error(lf_ctx *c, int rc, const char *what);
static json_t *held_json(const lf_reservation *r, int64_t position);

typedef struct {
    struct lf_booking_svc *s;
    struct unit_entry *e;
    lf_http_resp *resp;
    const char *route;
    int64_t start_us;
    int kind; /* ANSWER_* */
    char id[LF_UUID_LEN];
    char stream[LF_STREAM_MAX], meta[160];
    lf_booking_events out;
    lf_event_in evs[LF_BOOKING_EVENTS_MAX];
} later_job;

static const char *kind_name(int kind)
{
    return kind == ANSWER_RESERVE ? "reserve" : kind == ANSWER_CONFIRM ? "confirm" : "cancel";
}

/* Fills the answer of a job whose events are durable and folded (e->mu). */
static void later_answer(later_job *j, int64_t position)
{
    const lf_reservation *r = lf_booking_find(&j->e->st, j->id);
    if (!r) {
        lf_http_error(j->resp, 500, "internal", "reservation vanished after append");
        return;
    }
    switch (j->kind) {
    case ANSWER_RESERVE:
        lf_metric_inc("lockerfleet_reservations_total", "action=\"hold\"", 1);
        lf_http_json(j->resp, 201, held_json(r, position));
        break;
    case ANSWER_CONFIRM:
        lf_metric_inc("lockerfleet_reservations_total", "action=\"confirm\"", 1);
        answer_confirmed(j->s->h, j->resp, j->e, r, position);
        break;
    default:
        lf_metric_inc("lockerfleet_reservations_total", "action=\"cancel\"", 1);
        answer_cancelled(j->resp, j->id, position);
        break;
    }
}

/* The store's callback for a decide_later append (SQLite: its
 * acknowledger thread; backends that append at once: the handler's own
 * thread, before lf_store_append_async returns). */
static void later_done(void *ctx, int rc, const lf_append_result *res, const char *err)
{
    later_job *j = ctx;
    struct unit_entry *e = j->e;
    lf_ctx c = {.hub = j->s->h, .resp = j->resp};
    int rerun = 0;
    int64_t pos = 0;

    pthread_mutex_lock(&e->mu);
    if (rc == 0 && !res->duplicate) {
        fold_appended(j->s, e, &j->out, res);
        lf_hub_appended(j->s->h, j->out.n, res);
        later_answer(j, res->last_position);
        pos = res->last_position;
    } else if (rc == LF_ECONFLICT || rc == 0) {
        /* another writer (node) got there first, or these events were
         * already stored: reload, and the handler decides again */
        int rr = entry_refresh(j->s, e);
        if (rr != 0) {
            booking_error(&c, rr, kind_name(j->kind));
        } else if (lf_mono_us() - j->start_us > LATER_BOUND_US) {
            lf_err_set("%s: too much contention", j->stream);
            booking_error(&c, LF_EBUSY, kind_name(j->kind));
        } else {
            rerun = 1;
        }
    } else {
        lf_err_set("%s", err ? err : "");
        booking_error(&c, rc, kind_name(j->kind));
    }
    e->busy = 0;
    struct waiter *w = e->waiters;
    e->waiters = NULL;
    e->wtail = &e->waiters;
    pthread_cond_broadcast(&e->idle);
    pthread_mutex_unlock(&e->mu);
    if (rerun) {
        lf_http_later_rerun(j->resp);
    } else {
        lf_router_observe(j->route, j->resp->status, j->start_us);
        if (pos > 0) {
            char b[24];
            snprintf(b, sizeof b, "%lld", (long long)pos);
            lf_http_later_log(j->resp, "position", b);
        }
        lf_http_later_done(j->resp);
    }
    while (w) {
        struct waiter *nx = w->next;
        lf_http_later_rerun(w->resp);
        free(w);
        w = nx;
    }
    lf_booking_events_free(&j->out);
    free(j);
}

/* decide_append for a handler on a polling thread: decides on e's state
 * (c's caller acquired e) and queues the events; the answer (kind, about
 * reservation id) is sent by later_done once they are durable. Returns
 * LATER (e->mu let go; c->resp no longer the caller's), or what
 * decide_append returns — nothing to append (dr->nevents 0) or an error —
 * with e->mu still held. */
static int decide_later(lf_ctx *c, struct unit_entry *e, decide_fn fn, void *arg, int kind,
                        const char *id, decide_result *dr)
{
    struct lf_booking_svc *s = c->hub->booking;
    int rc;
    memset(dr, 0, sizeof *dr);
    if ((rc = entry_ensure(s, e)) != 0) return rc;
    later_job *j = lf_xcalloc(1, sizeof *j);
    int64_t now = lf_now_ms();
    rc = fn(&e->st, arg, now, &j->out);
    if (rc != 0 || j->out.n == 0 || !lf_http_later(c->resp)) {
        int decided = rc == 0 && j->out.n > 0;
        lf_booking_events_free(&j->out);
        free(j);
        /* the server is stopping: append and wait here */
        return decided ? decide_append(s, e, fn, arg, c->req->request_id, dr) : rc;
    }
    j->s = s;
    j->e = e;
    j->resp = c->resp;
    j->route = c->resp->route ? c->resp->route : "reservations";
    j->start_us = c->req->start_us;
    j->kind = kind;
    snprintf(j->id, sizeof j->id, "%s", id);
    stream_of(e->name, j->stream, sizeof j->stream);
    meta_of(s, c->req->request_id, j->meta, sizeof j->meta);
    events_in(&j->out, j->meta, now, j->evs);
    int64_t expected = e->st.version ? e->st.version : LF_EXPECT_NO_STREAM;
    e->busy = 1;
    pthread_mutex_unlock(&e->mu);
    rc = lf_store_append_async(s->h->store, j->stream, expected, j->evs, j->out.n, later_done, j);
    if (rc != 0) later_done(j, rc, NULL, lf_err_get());
    return LATER;
}

/* ---- handlers ------------------------------------------------------- */

static void field_error(lf_ctx *c, const char *field, const char *msg)
{
    lf_http_error(c->resp, 400, "invalid_field", "%s: %s", field, msg);
}

static int parse_size(const char *s, char *out)
{
    if (!s || strlen(s) != 1 || !strchr("SML", s[0])) return LF_EINVAL;
    *out = s[0];
    return 0;
}

static struct lf_booking_svc *svc_of(lf_ctx *c)
{
    return c->hub->booking;
}

static void booking_error(lf_ctx *c, int rc, const char *what)
{
    if (rc <= LF_BOOKING_EUNAVAILABLE && rc >= LF_BOOKING_EWINDOW) {
        const char *msg = "";
        switch (rc) {
        case LF_BOOKING_EUNAVAILABLE:
            msg = "no locker of that size is free for the window";
            break;
        case LF_BOOKING_EEXPIRED:
            msg = "the hold expired before it was confirmed";
            break;
        case LF_BOOKING_ECANCELLED:
            msg = "the reservation was cancelled";
            break;
        case LF_BOOKING_EALREADYCANC:
            msg = "the reservation is already cancelled";
            break;
        case LF_BOOKING_ENOTACTIVE:
            msg = "the reservation expired";
            break;
        case LF_BOOKING_EWINDOW:
            msg = "the reservation's window is over";
            break;
        }
        lf_http_error(c->resp, 409, lf_booking_code(rc), "%s: %s", what, msg);
        return;
    }
    if (rc == LF_ENOTFOUND) {
        lf_http_error(c->resp, 404, "not_found", "no such reservation");
        return;
    }
    if (rc == LF_EINVAL) {
        lf_http_error(c->resp, 400, "invalid_field", "%s", lf_err_get());
        return;
    }
    lf_hub_error_rc(c, rc, what);
}

/* GET /v1/availability?unit=&size=&from=&to= */
static void h_availability(lf_ctx *c)
{
    struct lf_booking_svc *s = svc_of(c);
    const char *unit = lf_http_query(c->req, "unit"), *size = lf_http_query(c->req, "size");
    const char *from = lf_http_query(c->req, "from"), *to = lf_http_query(c->req, "to");
    int64_t f, t, now = lf_now_ms();
    unit_lockers *ul = NULL;
    struct unit_entry *e;
    char sz;
    int n, online;

    if (!unit || !lf_name_valid(unit)) {
        field_error(c, "unit", "required, [a-z0-9-]{1,64}");
        goto out;
    }
    if (parse_size(size, &sz) != 0) {
        field_error(c, "size", "required, one of S, M, L");
        goto out;
    }
    if (!from || lf_time_parse(from, &f) != 0) {
        field_error(c, "from", "required, an RFC 3339 time");
        goto out;
    }
    if (!to || lf_time_parse(to, &t) != 0) {
        field_error(c, "to", "required, an RFC 3339 time");
        goto out;
    }
    if (lf_booking_check_window(f, t, now) != 0) {
        lf_http_error(c->resp, 400, "invalid_field", "%s", lf_err_get());
        goto out;
    }
    if (lf_hub_wait_projection(c, "availability") != 0) goto out;
    ul = lf_xmalloc(sizeof *ul);
    if (lockers_of(c->hub, unit, ul) != 0) {
        lf_http_error(c->resp, 404, "not_found", "unit %s: no such unit", unit);
        goto out;
    }
    online = unit_online(c->hub, unit);
    e = entry_get(s, unit);
    pthread_mutex_lock(&e->mu);
    int rc = entry_ensure(s, e);
    n = rc == 0 ? lf_booking_available(&e->st, &ul->lk, sz, f, t, online, now) : rc;
    pthread_mutex_unlock(&e->mu);
    if (n < 0) {
        lf_hub_error_rc(c, n, "availability");
        goto out;
    }
    /* The hot path: printed directly (no jansson tree). Nothing here
     * needs escaping: the unit name is [a-z0-9-], the size one of S/M/L,
     * the times are formatted here. */
    char fs[LF_TIME_LEN], ts[LF_TIME_LEN], body[256];
    int len = snprintf(body, sizeof body,
                       "{\"unit\":\"%s\",\"size\":\"%c\",\"from\":\"%s\",\"to\":\"%s\","
                       "\"free\":%d,\"online\":%s}",
                       unit, sz, lf_time_format(f, fs), lf_time_format(t, ts), n,
                       online ? "true" : "false");
    lf_http_text(c->resp, 200, "application/json", body, (size_t)len);
out:
    free(ul);
}

struct reserve_arg {
    lf_booking_reserve_cmd cmd;
    const lf_booking_lockers *lk;
};

static int decide_reserve(const lf_booking_state *st, void *arg, int64_t now,
                          lf_booking_events *out)
{
    struct reserve_arg *a = arg;
    if (lf_booking_find(st, a->cmd.reservation_id)) return 0; /* already stored */
    return lf_booking_reserve(st, a->lk, &a->cmd, now, out);
}

static json_t *held_json(const lf_reservation *r, int64_t position)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(r->id));
    json_object_set_new(o, "status", json_string("held"));
    json_object_set_new(o, "locker", json_string(r->locker));
    json_object_set_new(o, "hold_expires_at", time_json(r->hold_expires_ms));
    json_object_set_new(o, "position", json_integer(position));
    return o;
}

/* POST /v1/reservations {"unit","size","from","to"} + Idempotency-Key */
static void h_reserve(lf_ctx *c)
{
    struct lf_booking_svc *s = svc_of(c);
    const char *idem = lf_http_header(c->req, "Idempotency-Key");
    json_t *body = NULL, *v;
    unit_lockers *ul = NULL;
    struct unit_entry *e = NULL;
    struct reserve_arg a;
    char unit[65], sz, rid[LF_UUID_LEN], ik[LF_BOOKING_USER_MAX + LF_BOOKING_IDEM_MAX + 2];
    int64_t f, t, head = 0;
    decide_result dr;
    struct ref ref;
    int rc, locked = 0;

    if (idem && (!*idem || strlen(idem) >= LF_BOOKING_IDEM_MAX)) {
        field_error(c, "Idempotency-Key", "1..127 bytes");
        goto out;
    }
    if (!(body = lf_http_body_json(c->req, c->resp))) goto out;
    v = json_object_get(body, "unit");
    if (!json_is_string(v) || !lf_name_valid(json_string_value(v))) {
        field_error(c, "unit", "required, [a-z0-9-]{1,64}");
        goto out;
    }
    snprintf(unit, sizeof unit, "%s", json_string_value(v));
    v = json_object_get(body, "size");
    if (!json_is_string(v) || parse_size(json_string_value(v), &sz) != 0) {
        field_error(c, "size", "required, one of S, M, L");
        goto out;
    }
    v = json_object_get(body, "from");
    if (!json_is_string(v) || lf_time_parse(json_string_value(v), &f) != 0) {
        field_error(c, "from", "required, an RFC 3339 time");
        goto out;
    }
    v = json_object_get(body, "to");
    if (!json_is_string(v) || lf_time_parse(json_string_value(v), &t) != 0) {
        field_error(c, "to", "required, an RFC 3339 time");
        goto out;
    }
    if (lf_booking_check_window(f, t, lf_now_ms()) != 0) {
        lf_http_error(c->resp, 400, "invalid_field", "%s", lf_err_get());
        goto out;
    }
    ul = lf_xmalloc(sizeof *ul);
    if (lockers_of(c->hub, unit, ul) != 0) {
        lf_http_error(c->resp, 404, "not_found", "unit %s: no such unit", unit);
        goto out;
    }
    e = entry_get(s, unit);
    if (!entry_acquire(c, e)) goto out; /* runs again once the unit is free */
    locked = 1;
    if ((rc = entry_ensure(s, e)) != 0) {
        lf_hub_error_rc(c, rc, "reserve");
        goto out;
    }
    if (idem) {
        idem_key_of(c->who.id, idem, ik, sizeof ik);
        if (ref_get(s, s->ibuckets, ik, &ref) == 0) {
            /* the same key: the same reservation, wherever it was made */
            struct unit_entry *o = strcmp(ref.unit, unit) == 0 ? e : NULL;
            const lf_reservation *r = o ? lf_booking_find(&o->st, ref.id) : NULL;
            if (!r || r->size != sz || r->from_ms != f || r->to_ms != t) {
                lf_http_error(c->resp, 409, "idempotency_key_reused",
                              "Idempotency-Key was used for a different request");
                goto out;
            }
            lf_store_head(c->hub->store, &head);
            lf_http_json(c->resp, 201, held_json(r, head));
            goto out;
        }
    }
    /* time-ordered: the store's index of event ids (the hold carries the
     * reservation id) then grows at its right edge instead of dirtying a
     * random page per reservation (bench reserve: +12-17% pairs/s) */
    lf_uuid_v7(rid);
    memset(&a, 0, sizeof a);
    a.cmd = (lf_booking_reserve_cmd){
        rid, c->who.id, unit, sz, f, t, c->hub->cfg.hold_ms, idem, unit_online(c->hub, unit)};
    a.lk = &ul->lk;
    if (lf_http_pooled(c->resp)) {
        rc = decide_later(c, e, decide_reserve, &a, ANSWER_RESERVE, rid, &dr);
        if (rc == LATER) {
            locked = 0;
            goto out;
        }
    } else {
        rc = decide_append(s, e, decide_reserve, &a, c->req->request_id, &dr);
    }
    if (rc != 0) {
        booking_error(c, rc, "reserve");
        goto out;
    }
    const lf_reservation *r = lf_booking_find(&e->st, rid);
    if (!r) {
        lf_http_error(c->resp, 500, "internal", "reservation vanished after append");
        goto out;
    }
    lf_metric_inc("lockerfleet_reservations_total", "action=\"hold\"", 1);
    lf_http_json(c->resp, 201, held_json(r, dr.position));
out:
    if (locked) pthread_mutex_unlock(&e->mu);
    json_decref(body);
    free(ul);
}

struct id_arg {
    const char *id;
    const char *by;
    int64_t amount;
};

static int decide_confirm(const lf_booking_state *st, void *arg, int64_t now,
                          lf_booking_events *out)
{
    struct id_arg *a = arg;
    const lf_reservation *r = lf_booking_find(st, a->id);
    if (r) {
        int64_t hours = (r->to_ms - r->from_ms + 3599999) / 3600000;
        a->amount = hours * PRICE_PER_HOUR_CENTS;
    }
    return lf_booking_confirm(st, a->id, a->amount, now, out);
}

static int decide_cancel(const lf_booking_state *st, void *arg, int64_t now, lf_booking_events *out)
{
    struct id_arg *a = arg;
    return lf_booking_cancel(st, a->id, a->by, now, out);
}

/* Finds the caller's reservation: its unit's entry, acquired
 * (entry_acquire); or NULL: answered (404), or queued to run again once
 * the entry is free. */
static struct unit_entry *owned_entry(lf_ctx *c, const char *id)
{
    struct lf_booking_svc *s = svc_of(c);
    struct ref ref;
    if (!lf_uuid_valid(id) || ref_get(s, s->rbuckets, id, &ref) != 0 ||
        (c->who.role != LF_ROLE_ADMIN && strcmp(ref.user, c->who.id) != 0)) {
        lf_http_error(c->resp, 404, "not_found", "no such reservation");
        return NULL;
    }
    struct unit_entry *e = entry_get(s, ref.unit);
    return entry_acquire(c, e) ? e : NULL;
}

static void h_confirm(lf_ctx *c)
{
    struct lf_booking_svc *s = svc_of(c);
    const char *id = c->params[0];
    struct id_arg a = {id, c->who.id, 0};
    decide_result dr;
    int rc;
    struct unit_entry *e = owned_entry(c, id);
    if (!e) return;
    if (lf_http_pooled(c->resp)) {
        rc = decide_later(c, e, decide_confirm, &a, ANSWER_CONFIRM, id, &dr);
        if (rc == LATER) return;
    } else {
        rc = decide_append(s, e, decide_confirm, &a, c->req->request_id, &dr);
    }
    if (rc != 0) {
        booking_error(c, rc, "confirm");
        goto out;
    }
    const lf_reservation *r = lf_booking_find(&e->st, id);
    if (dr.nevents)
        lf_metric_inc("lockerfleet_reservations_total", "action=\"confirm\"", 1);
    else
        lf_store_head(c->hub->store, &dr.position); /* an idempotent retry */
    answer_confirmed(c->hub, c->resp, e, r, dr.position);
out:
    pthread_mutex_unlock(&e->mu);
}

static void h_cancel(lf_ctx *c)
{
    struct lf_booking_svc *s = svc_of(c);
    const char *id = c->params[0];
    struct id_arg a = {id, c->who.id, 0};
    decide_result dr;
    int rc;
    struct unit_entry *e = owned_entry(c, id);
    if (!e) return;
    if (lf_http_pooled(c->resp)) {
        rc = decide_later(c, e, decide_cancel, &a, ANSWER_CANCEL, id, &dr);
        if (rc == LATER) return;
    } else {
        rc = decide_append(s, e, decide_cancel, &a, c->req->request_id, &dr);
    }
    if (rc != 0) {
        booking_error(c, rc, "cancel");
        goto out;
    }
    lf_metric_inc("lockerfleet_reservations_total", "action=\"cancel\"", 1);
    answer_cancelled(c->resp, id, dr.position);
out:
    pthread_mutex_unlock(&e->mu);
}

/* ---- reads from the reservations projection ------------------------ */

#define RES_COLS                                                                                   \
    "id, user_id, unit, locker, size, from_ms, to_ms, status, hold_expires_ms, amount_cents, "     \
    "reason, delivery, reassigned, position"

static json_t *row_json(lf_hub *h, sqlite3_stmt *st, int64_t now, int with_code)
{
    json_t *o = json_object();
    const char *id = (const char *)sqlite3_column_text(st, 0);
    const char *unit = (const char *)sqlite3_column_text(st, 2);
    const char *locker = (const char *)sqlite3_column_text(st, 3);
    const char *status = (const char *)sqlite3_column_text(st, 7);
    int64_t from = sqlite3_column_int64(st, 5), to = sqlite3_column_int64(st, 6);
    int64_t hold = sqlite3_column_int64(st, 8);
    if (strcmp(status, "held") == 0 && now >= hold) status = "expired";
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "status", json_string(status));
    json_object_set_new(o, "unit", json_string(unit));
    json_object_set_new(o, "locker", json_string(locker));
    json_object_set_new(o, "size", json_string((const char *)sqlite3_column_text(st, 4)));
    json_object_set_new(o, "from", time_json(from));
    json_object_set_new(o, "to", time_json(to));
    json_object_set_new(o, "hold_expires_at", time_json(hold));
    json_object_set_new(o, "amount_cents", json_integer(sqlite3_column_int64(st, 9)));
    if (sqlite3_column_type(st, 10) != SQLITE_NULL)
        json_object_set_new(o, "reason", json_string((const char *)sqlite3_column_text(st, 10)));
    json_object_set_new(o, "delivery", json_string((const char *)sqlite3_column_text(st, 11)));
    json_object_set_new(o, "reassigned", json_integer(sqlite3_column_int64(st, 12)));
    json_object_set_new(o, "user_id", json_string((const char *)sqlite3_column_text(st, 1)));
    json_object_set_new(o, "position", json_integer(sqlite3_column_int64(st, 13)));
    if (with_code && strcmp(status, "confirmed") == 0 && lf_uuid_valid(id)) {
        char code[LF_CODE_MAX];
        unsigned char key[32];
        lf_hub_booking_key(h, unit, key);
        if (lf_code_make(key, id, locker, from, to, code, sizeof code) == 0)
            json_object_set_new(o, "code", json_string(code));
        memset(key, 0, sizeof key);
    }
    return o;
}

static void h_get(lf_ctx *c)
{
    const char *id = c->params[0];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int owner;

    if (!lf_uuid_valid(id)) {
        lf_http_error(c->resp, 404, "not_found", "no such reservation");
        goto out;
    }
    if (lf_hub_wait_projection(c, "reservations") != 0) goto out;
    if (!c->hub->proj || !(db = lf_projection_reader(c->hub->proj, "reservations"))) {
        lf_http_error(c->resp, 503, "projection_unavailable", "reservations projection not ready");
        goto out;
    }
    if (sqlite3_prepare_v2(db, "SELECT " RES_COLS " FROM reservations WHERE id = ?", -1, &st,
                           NULL) != SQLITE_OK) {
        lf_http_error(c->resp, 503, "projection_unavailable", "%s", sqlite3_errmsg(db));
        goto out;
    }
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        lf_http_error(c->resp, 404, "not_found", "no such reservation");
        goto out;
    }
    owner = strcmp((const char *)sqlite3_column_text(st, 1), c->who.id) == 0;
    if (!owner && c->who.role != LF_ROLE_ADMIN) {
        /* another user's reservation: indistinguishable from none */
        lf_http_error(c->resp, 404, "not_found", "no such reservation");
        goto out;
    }
    lf_http_json(c->resp, 200, row_json(c->hub, st, lf_now_ms(), owner));
out:
    sqlite3_finalize(st);
    if (db) lf_projection_reader_put(c->hub->proj, "reservations", db);
}

/* GET /v1/reservations?status=&limit= : the caller's own, newest first
 * (admin: ?user= to read one user's). */
static void h_list(lf_ctx *c)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    const char *user = c->who.id;
    int64_t limit, now = lf_now_ms();
    json_t *arr = NULL;

    if (lf_http_query_i64(c->req, c->resp, "limit", 1, LIST_MAX, 100, &limit) != 0) goto out;
    if (c->who.role == LF_ROLE_ADMIN && lf_http_query(c->req, "user"))
        user = lf_http_query(c->req, "user");
    if (strlen(user) >= LF_BOOKING_USER_MAX) {
        field_error(c, "user", "too long");
        goto out;
    }
    if (lf_hub_wait_projection(c, "reservations") != 0) goto out;
    if (!c->hub->proj || !(db = lf_projection_reader(c->hub->proj, "reservations"))) {
        lf_http_error(c->resp, 503, "projection_unavailable", "reservations projection not ready");
        goto out;
    }
    if (sqlite3_prepare_v2(db,
                           "SELECT " RES_COLS " FROM reservations WHERE user_id = ? "
                           "ORDER BY created_position DESC LIMIT ?",
                           -1, &st, NULL) != SQLITE_OK) {
        lf_http_error(c->resp, 503, "projection_unavailable", "%s", sqlite3_errmsg(db));
        goto out;
    }
    sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, limit);
    arr = json_array();
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(arr, row_json(c->hub, st, now, strcmp(user, c->who.id) == 0));
    json_t *o = json_object();
    json_object_set_new(o, "reservations", arr);
    arr = NULL;
    lf_http_json(c->resp, 200, o);
out:
    json_decref(arr);
    sqlite3_finalize(st);
    if (db) lf_projection_reader_put(c->hub->proj, "reservations", db);
}

const lf_route *lf_api_reservation_routes(void)
{
    static const lf_route routes[] = {
        {"GET", "/v1/availability", LF_ROLE_USER | LF_ROLE_ADMIN, h_availability, "availability",
         0},
        {"POST", "/v1/reservations", LF_ROLE_USER, h_reserve, "reservations_create",
         LF_ROUTE_NONBLOCKING},
        {"GET", "/v1/reservations", LF_ROLE_USER | LF_ROLE_ADMIN, h_list, "reservations_list", 0},
        {"GET", "/v1/reservations/:id", LF_ROLE_USER | LF_ROLE_ADMIN, h_get, "reservations_get", 0},
        {"POST", "/v1/reservations/:id/confirm", LF_ROLE_USER, h_confirm, "reservations_confirm",
         LF_ROUTE_NONBLOCKING},
        {"POST", "/v1/reservations/:id/cancel", LF_ROLE_USER, h_cancel, "reservations_cancel",
         LF_ROUTE_NONBLOCKING},
        {0},
    };
    return routes;
}

/* ---- expiry worker -------------------------------------------------- */

static int decide_expire(const lf_booking_state *st, void *arg, int64_t now, lf_booking_events *out)
{
    (void)arg;
    return lf_booking_expire_due(st, now, out, NULL);
}

static void expire_unit(struct lf_booking_svc *s, struct unit_entry *e)
{
    decide_result dr;
    entry_acquire(NULL, e);
    for (int i = 0; i < 64; i++) {
        int rc = decide_append(s, e, decide_expire, NULL, "expiry", &dr);
        if (rc != 0) {
            LF_WARN("booking", "expiry of %s: %s: %s", e->name, lf_strerror(rc), lf_err_get());
            break;
        }
        if (dr.nevents == 0) break;
        lf_metric_inc("lockerfleet_reservations_total", "action=\"expire\"", (double)dr.nevents);
    }
    update_next_expiry(e);
    pthread_mutex_unlock(&e->mu);
}

static void *expiry_main(void *arg)
{
    struct lf_booking_svc *s = arg;
    for (;;) {
        struct timespec ts;
        int64_t now = lf_now_ms();
        struct unit_entry *due[256];
        size_t n = 0;

        pthread_mutex_lock(&s->mu);
        for (struct unit_entry *e = s->all; e && n < 256; e = e->all)
            if (e->next_expiry_ms <= now) due[n++] = e;
        pthread_mutex_unlock(&s->mu);
        for (size_t i = 0; i < n; i++)
            expire_unit(s, due[i]);

        pthread_mutex_lock(&s->wmu);
        if (!s->stop) {
            lf_abstime_us(100 * 1000, &ts);
            pthread_cond_timedwait(&s->wcv, &s->wmu, &ts);
        }
        int stop = s->stop;
        pthread_mutex_unlock(&s->wmu);
        if (stop) break;
    }
    return NULL;
}

/* ---- conflict process manager -------------------------------------- */

struct rental_arg {
    const lf_booking_lockers *lk;
    char rental_id[LF_UUID_LEN + 27];
    char locker[LF_BOOKING_LOCKER_MAX];
    int64_t from, to;
};

static int decide_rental(const lf_booking_state *st, void *arg, int64_t now, lf_booking_events *out)
{
    struct rental_arg *a = arg;
    return lf_booking_resolve_rental(st, a->lk, a->rental_id, a->locker, a->from, a->to, now, out);
}

static void ckpt_save(struct lf_booking_svc *s, int64_t pos, int force)
{
    int64_t now = lf_mono_ms();
    char tmp[4096];
    FILE *f;
    if (!s->ckpt_path || pos <= s->ckpt_saved_pos) return;
    if (!force && now - s->ckpt_saved_ms < 1000) return;
    snprintf(tmp, sizeof tmp, "%s.tmp", s->ckpt_path);
    if (!(f = fopen(tmp, "w"))) return;
    fprintf(f, "%" PRId64 "\n", pos);
    if (fflush(f) == 0 && fsync(fileno(f)) == 0 && fclose(f) == 0) {
        if (rename(tmp, s->ckpt_path) == 0) {
            s->ckpt_saved_pos = pos;
            s->ckpt_saved_ms = now;
        }
    } else {
        fclose(f);
    }
}

static int64_t ckpt_load(struct lf_booking_svc *s)
{
    char buf[64] = "";
    int64_t pos = 0;
    FILE *f = s->ckpt_path ? fopen(s->ckpt_path, "r") : NULL;
    if (!f) return 0;
    if (fgets(buf, sizeof buf, f)) {
        buf[strcspn(buf, "\n")] = '\0';
        if (lf_parse_i64(buf, &pos) != 0 || pos < 0) pos = 0;
    }
    fclose(f);
    return pos;
}

static void handle_rental(struct lf_booking_svc *s, const lf_event *ev)
{
    const char *unit = ev->stream + 8;
    json_t *d = json_loads(ev->data, 0, NULL);
    struct rental_arg a;
    unit_lockers *ul = NULL;
    struct unit_entry *e;
    json_t *v;

    memset(&a, 0, sizeof a);
    if (!json_is_object(d)) goto out;
    v = json_object_get(d, "rental_id");
    if (!json_is_string(v) || json_string_length(v) >= sizeof a.rental_id) goto out;
    snprintf(a.rental_id, sizeof a.rental_id, "%s", json_string_value(v));
    v = json_object_get(d, "locker");
    if (!json_is_string(v) || json_string_length(v) >= sizeof a.locker) goto out;
    snprintf(a.locker, sizeof a.locker, "%s", json_string_value(v));
    v = json_object_get(d, "from");
    if (!json_is_string(v) || lf_time_parse(json_string_value(v), &a.from) != 0) goto out;
    v = json_object_get(d, "to");
    if (!json_is_string(v) || lf_time_parse(json_string_value(v), &a.to) != 0) goto out;
    if (a.from >= a.to) goto out;
    ul = lf_xmalloc(sizeof *ul);
    if (lockers_of(s->h, unit, ul) != 0) goto out;
    a.lk = &ul->lk;
    e = entry_get(s, unit);
    entry_acquire(NULL, e);
    for (int i = 0; i < 64; i++) { /* at most 2 reservations per decision */
        decide_result dr;
        int rc = decide_append(s, e, decide_rental, &a, ev->id, &dr);
        if (rc != 0) {
            LF_WARN("booking", "conflict check of rental %s on %s: %s: %s", a.rental_id, unit,
                    lf_strerror(rc), lf_err_get());
            break;
        }
        if (dr.nevents == 0) break;
        LF_INFO("booking", "conflict: rental %s on %s/%s resolved (%zu events)", a.rental_id, unit,
                a.locker, dr.nevents);
        lf_metric_inc("lockerfleet_reservations_total", "action=\"conflict\"", 1);
    }
    pthread_mutex_unlock(&e->mu);
out:
    free(ul);
    json_decref(d);
}

struct reject_arg {
    const lf_booking_lockers *lk;
    char id[LF_UUID_LEN];
    char locker[LF_BOOKING_LOCKER_MAX];
};

static int decide_rejection(const lf_booking_state *st, void *arg, int64_t now,
                            lf_booking_events *out)
{
    struct reject_arg *a = arg;
    return lf_booking_resolve_rejection(st, a->lk, a->id, a->locker, now, out);
}

/* The unit rejected a reservation delivered to it (fleet_resv.c appends
 * ReservationDelivered{action:"reserve",result:"rejected"} to unit-{unit}):
 * move it to another free locker of its size, else cancel it with reason
 * unit_rejected (+ refund). The fleet then delivers the move or the
 * cancellation. A stale rejection (already moved) decides nothing. */
static void handle_rejection(struct lf_booking_svc *s, const lf_event *ev)
{
    const char *unit = ev->stream + 5;
    json_t *d = json_loads(ev->data, 0, NULL);
    struct reject_arg a;
    unit_lockers *ul = NULL;
    struct unit_entry *e;
    json_t *v;
    decide_result dr;

    memset(&a, 0, sizeof a);
    if (!json_is_object(d)) goto out;
    v = json_object_get(d, "action");
    if (!json_is_string(v) || strcmp(json_string_value(v), "reserve") != 0) goto out;
    v = json_object_get(d, "result");
    if (!json_is_string(v) || strcmp(json_string_value(v), "rejected") != 0) goto out;
    v = json_object_get(d, "reservation_id");
    if (!json_is_string(v) || !lf_uuid_valid(json_string_value(v))) goto out;
    snprintf(a.id, sizeof a.id, "%s", json_string_value(v));
    v = json_object_get(d, "locker");
    if (!json_is_string(v) || json_string_length(v) >= sizeof a.locker) goto out;
    snprintf(a.locker, sizeof a.locker, "%s", json_string_value(v));
    ul = lf_xmalloc(sizeof *ul);
    if (lockers_of(s->h, unit, ul) != 0) goto out;
    a.lk = &ul->lk;
    e = entry_get(s, unit);
    entry_acquire(NULL, e);
    int rc = decide_append(s, e, decide_rejection, &a, ev->id, &dr);
    if (rc != 0)
        LF_WARN("booking", "unit rejection of %s on %s: %s: %s", a.id, unit, lf_strerror(rc),
                lf_err_get());
    else if (dr.nevents > 0) {
        LF_INFO("booking", "unit %s rejected reservation %s on %s: resolved (%zu events)", unit,
                a.id, a.locker, dr.nevents);
        lf_metric_inc("lockerfleet_reservations_total", "action=\"unit_rejected\"", 1);
    }
    pthread_mutex_unlock(&e->mu);
out:
    free(ul);
    json_decref(d);
}

static int on_event(const lf_event *ev, void *ctx)
{
    struct lf_booking_svc *s = ctx;
    if (strncmp(ev->stream, "unitlog-", 8) == 0 && strcmp(ev->type, "RentalStarted") == 0)
        handle_rental(s, ev);
    else if (strncmp(ev->stream, "unit-", 5) == 0 && strcmp(ev->type, "ReservationDelivered") == 0)
        handle_rejection(s, ev);
    ckpt_save(s, ev->position, 0);
    return 0;
}

/* ---- lifecycle ------------------------------------------------------ */

static void collect_unit(const lf_unit_info *u, void *ctx)
{
    lf_buf *b = ctx;
    lf_buf_append(b, u->name, strlen(u->name) + 1);
}

int lf_booking_start(lf_hub *h)
{
    struct lf_booking_svc *s = lf_xcalloc(1, sizeof *s);
    lf_buf names;
    int rc = 0;

    s->h = h;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->wmu, NULL);
    pthread_cond_init(&s->wcv, NULL);
    h->booking = s;
    if (h->cfg.hold_ms <= 0) h->cfg.hold_ms = 600000;
    lf_metric_describe("lockerfleet_reservations_total", "counter",
                       "Reservation decisions by action (hold, confirm, cancel, expire, conflict)");
    lf_metric_describe("lockerfleet_reservation_queued_total", "counter",
                       "Reservation requests queued behind their unit's append in flight");
    /* load every unit's bookings so GET by id, idempotency and expiry
     * work for reservations made before a restart */
    lf_buf_init(&names, 0);
    lf_registry_each_unit(h, "", collect_unit, &names);
    for (size_t off = 0; off < names.len; off += strlen(names.data + off) + 1) {
        struct unit_entry *e = entry_get(s, names.data + off);
        pthread_mutex_lock(&e->mu);
        rc = entry_refresh(s, e);
        pthread_mutex_unlock(&e->mu);
        if (rc != 0) {
            LF_ERROR("booking", "loading bookings-%s: %s: %s", e->name, lf_strerror(rc),
                     lf_err_get());
            break;
        }
    }
    lf_buf_free(&names);
    if (rc != 0) goto out;
    if (pthread_create(&s->expiry, NULL, expiry_main, s) != 0) {
        lf_err_set("booking: cannot start the expiry thread");
        rc = LF_EIO;
        goto out;
    }
    s->expiry_started = 1;
    if (h->data_dir) s->ckpt_path = lf_asprintf("%s/booking-conflicts.pos", h->data_dir);
    s->ckpt_saved_pos = ckpt_load(s);
    /* On the projections' feed (the events they read anyway, no read and
     * no wake-up of its own per commit), else on the store. */
    if (h->proj)
        s->conflicts_f = lf_projections_follow(h->proj, s->ckpt_saved_pos, on_event, s);
    else
        s->conflicts = lf_store_subscribe(h->store, s->ckpt_saved_pos, 512, on_event, s);
    if (!s->conflicts && !s->conflicts_f) {
        lf_err_set("booking: cannot subscribe to the log for conflicts");
        rc = LF_EIO;
        goto out;
    }
out:
    return rc;
}

void lf_booking_stop(lf_hub *h)
{
    struct lf_booking_svc *s = h ? h->booking : NULL;
    if (!s) return;
    if (s->conflicts) {
        int64_t pos = lf_subscription_position(s->conflicts);
        lf_subscription_stop(s->conflicts);
        ckpt_save(s, pos, 1);
    }
    if (s->conflicts_f) {
        /* read before the stop frees it: at most the events handled
         * meanwhile are handled again after a restart (idempotent) */
        int64_t pos = lf_projection_follower_position(s->conflicts_f);
        lf_projection_follower_stop(s->conflicts_f);
        ckpt_save(s, pos, 1);
    }
    if (s->expiry_started) {
        pthread_mutex_lock(&s->wmu);
        s->stop = 1;
        pthread_cond_broadcast(&s->wcv);
        pthread_mutex_unlock(&s->wmu);
        pthread_join(s->expiry, NULL);
    }
    for (struct unit_entry *e = s->all, *n; e; e = n) {
        n = e->all;
        lf_booking_state_free(&e->st);
        pthread_cond_destroy(&e->idle);
        pthread_mutex_destroy(&e->mu);
        free(e);
    }
    for (int t = 0; t < 2; t++) {
        struct ref **tab = t ? s->ibuckets : s->rbuckets;
        for (int b = 0; b < NBUCKETS; b++)
            for (struct ref *r = tab[b], *n; r; r = n) {
                n = r->next;
                free(r->key);
                free(r);
            }
    }
    free(s->ckpt_path);
    pthread_cond_destroy(&s->wcv);
    pthread_mutex_destroy(&s->wmu);
    pthread_mutex_destroy(&s->mu);
    free(s);
    h->booking = NULL;
}
