/*
 * unit.c — the unit agent's core: open/close, the behaviours (each decides
 * on the current state and appends its events in one transaction, then
 * folds them), and the uplink (heartbeat, push, backoff, pruning).
 *
 * Locking: u->mu guards the state, the counters and the store calls of
 * this unit. It is released during uplink HTTP calls, so the screen and
 * the hub's requests are never blocked by a slow hub.
 */
#include "unit/unit_int.h"

#include "domain/code.h"
#include "http/client.h"

#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PRUNE_BATCH 256
#define PRUNE_EVERY_MS 5000
#define BATCH_EVENTS_MAX 8

struct lf_unit {
    pthread_mutex_t mu;
    char name[65];
    char *hub_url, *token, *hub_token, *ca_file;
    unsigned char booking_key[LF_CODE_KEY_LEN];
    bool has_key;
    lf_unit_db *db;
    bool own_db;
    enum lf_unit_uplink uplink;
    int64_t push_ms, hb_ms, backoff_max_ms, timeout_ms;

    lf_unit_state st;
    int64_t head, acked, pruned;
    int64_t cursor; /* push from cursor+1 (normally == acked) */

    /* uplink schedule, monotonic ms */
    int64_t next_push, next_hb, blocked_until, last_prune;
    int fails;
    int64_t last_contact, last_fail;
    int64_t desired_config_version;
    atomic_bool stepping;

    atomic_bool offline;
    atomic_llong slow_ms;
    int64_t pushes_ok, pushes_failed, heartbeats_ok;
};

typedef struct {
    const char *type[BATCH_EVENTS_MAX];
    json_t *data[BATCH_EVENTS_MAX];
    int n;
    int bad; /* a json_pack failed */
} batch;

/* Takes ownership of data (NULL marks the batch bad). */
static void batch_add(batch *b, const char *type, json_t *data)
{
    if (!data || b->n >= BATCH_EVENTS_MAX) {
        b->bad = 1;
        json_decref(data);
        return;
    }
    b->type[b->n] = type;
    b->data[b->n++] = data;
}

static void batch_free(batch *b)
{
    for (int i = 0; i < b->n; i++)
        json_decref(b->data[i]);
    b->n = 0;
}

/* Appends the batch to the store, then folds it. Caller holds u->mu.
 * Frees the batch in every case. */
static int batch_commit(lf_unit *u, batch *b)
{
    int rc = 0;
    lf_unit_event evs[BATCH_EVENTS_MAX];
    memset(evs, 0, sizeof evs);
    if (b->bad) {
        lf_err_set("event data could not be encoded (invalid UTF-8?)");
        rc = LF_EINVAL;
        goto out;
    }
    int64_t now = lf_now_ms();
    for (int i = 0; i < b->n; i++) {
        evs[i].seq = u->head + 1 + i;
        lf_uuid_v7(evs[i].id);
        snprintf(evs[i].type, sizeof evs[i].type, "%s", b->type[i]);
        evs[i].time_ms = now;
        evs[i].data = json_dumps(b->data[i], JSON_COMPACT);
        if (!evs[i].data) {
            rc = LF_ENOMEM;
            goto out;
        }
    }
    rc = lf_unit_store_append(u->db, u->name, evs, (size_t)b->n);
    if (rc) goto out;
    u->head += b->n;
    for (int i = 0; i < b->n; i++) {
        int frc = lf_unit_state_apply(&u->st, evs[i].seq, evs[i].type, b->data[i], now);
        if (frc) /* a bug: we only append what the fold understands */
            LF_ERROR("unit", "%s: fold of %s failed: %s", u->name, evs[i].type, lf_strerror(frc));
    }
out:
    for (int i = 0; i < b->n; i++)
        free(evs[i].data);
    batch_free(b);
    return rc;
}

/* ---- open / close ------------------------------------------------------- */

static char *dup_opt(const char *s)
{
    return s ? lf_strdup(s) : NULL;
}

static bool provisioning_differs(lf_unit *u, const lf_unit_config *c)
{
    if (c->nlockers == 0) return false; /* keep what the store knows */
    if (u->st.nlockers != c->nlockers) return true;
    for (int i = 0; i < c->nlockers; i++) {
        const lf_unit_st_locker *l = &u->st.lockers[i];
        if (strcmp(l->id, c->lockers[i].id) != 0 || l->size != c->lockers[i].size) return true;
        bool want = false;
        for (int k = 0; k < c->nallotment; k++)
            if (strcmp(c->allotment[k], l->id) == 0) want = true;
        /* a config-applied allotment overrides the provisioned one */
        if (want != l->allot && !u->st.config) return true;
    }
    return false;
}

static int provision(lf_unit *u, const lf_unit_config *c)
{
    json_t *lk = json_array(), *al = json_array();
    for (int i = 0; i < c->nlockers; i++) {
        char size[2] = {c->lockers[i].size, 0};
        json_array_append_new(lk, json_pack("{s:s,s:s}", "id", c->lockers[i].id, "size", size));
    }
    for (int i = 0; i < c->nallotment; i++)
        json_array_append_new(al, json_string(c->allotment[i]));
    batch b = {0};
    batch_add(&b, "UnitProvisioned", json_pack("{s:o,s:o}", "lockers", lk, "allotment", al));
    return batch_commit(u, &b);
}

int lf_unit_parse_lockers(const char *s, lf_unit_locker *out, int max, int *n)
{
    *n = 0;
    if (!s || !*s) return 0;
    char *copy = lf_strdup(s), *save = NULL;
    int rc = 0;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(t, ':');
        size_t idlen = colon ? (size_t)(colon - t) : 0;
        bool ok = colon && idlen >= 1 && idlen < sizeof out->id && colon[1] && !colon[2] &&
                  (colon[1] == 'S' || colon[1] == 'M' || colon[1] == 'L');
        for (size_t i = 0; ok && i < idlen; i++) {
            char ch = t[i];
            ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                 ch == '-' || ch == '_';
        }
        if (!ok || *n >= max) {
            if (*n >= max)
                lf_err_set("more than %d lockers", max);
            else
                lf_err_set("bad locker '%.40s' (want ID:S|M|L, ID of [A-Za-z0-9_-]{1,15})", t);
            rc = LF_EINVAL;
            goto out;
        }
        memcpy(out[*n].id, t, idlen);
        out[*n].id[idlen] = '\0';
        out[*n].size = colon[1];
        for (int k = 0; k < *n; k++)
            if (strcmp(out[k].id, out[*n].id) == 0) {
                lf_err_set("locker '%s' listed twice", out[*n].id);
                rc = LF_EINVAL;
                goto out;
            }
        (*n)++;
    }
out:
    free(copy);
    return rc;
}

int lf_unit_open(const lf_unit_config *c, lf_unit **out)
{
    int rc = 0;
    *out = NULL;
    lf_unit_meta m = {0};
    lf_unit_event_list l = {0};
    if (!c->name || !lf_name_valid(c->name)) {
        lf_err_set("unit name must match [a-z0-9-]{1,64}");
        return LF_EINVAL;
    }
    if (!c->db && !c->db_path) {
        lf_err_set("unit needs a store (db or db_path)");
        return LF_EINVAL;
    }
    lf_unit *u = calloc(1, sizeof *u);
    if (!u) return LF_ENOMEM;
    pthread_mutex_init(&u->mu, NULL);
    lf_unit_state_init(&u->st);
    snprintf(u->name, sizeof u->name, "%s", c->name);
    u->hub_url = dup_opt(c->hub_url);
    u->token = dup_opt(c->token);
    u->hub_token = dup_opt(c->hub_token);
    u->ca_file = dup_opt(c->ca_file);
    if (c->booking_key) {
        memcpy(u->booking_key, c->booking_key, sizeof u->booking_key);
        u->has_key = true;
    }
    u->uplink = c->uplink;
    u->push_ms = c->push_interval_ms > 0 ? c->push_interval_ms : 5000;
    u->hb_ms = c->heartbeat_interval_ms > 0 ? c->heartbeat_interval_ms : 0;
    u->backoff_max_ms = c->backoff_max_ms > 0 ? c->backoff_max_ms : 60000;
    u->timeout_ms = c->hub_timeout_ms > 0 ? c->hub_timeout_ms : 10000;
    if (c->db) {
        u->db = c->db;
    } else {
        if ((rc = lf_unit_db_open(c->db_path, c->durable, 0, &u->db))) goto out;
        u->own_db = true;
    }
    if ((rc = lf_unit_store_meta(u->db, u->name, &m))) goto out;
    u->head = m.head;
    u->acked = m.acked;
    u->pruned = m.pruned;
    u->cursor = m.acked;
    if (m.snapshot) {
        json_error_t je;
        json_t *snap = json_loads(m.snapshot, 0, &je);
        rc = snap ? lf_unit_state_restore(&u->st, snap) : LF_ECORRUPT;
        json_decref(snap);
        if (rc) {
            lf_err_set("unit %s: snapshot in the store is damaged", u->name);
            goto out;
        }
    }
    /* Fold every event after the snapshot, in pages. */
    int64_t after = m.snap_seq > m.pruned ? m.snap_seq : m.pruned;
    for (;;) {
        if ((rc = lf_unit_store_read(u->db, u->name, after, 1000, &l))) goto out;
        if (l.n == 0) break;
        for (size_t i = 0; i < l.n; i++) {
            json_t *d = json_loads(l.ev[i].data, 0, NULL);
            int frc = d ? lf_unit_state_apply(&u->st, l.ev[i].seq, l.ev[i].type, d, l.ev[i].time_ms)
                        : LF_EINVAL;
            json_decref(d);
            if (frc)
                LF_WARN("unit", "%s: event %lld (%s) not folded: %s", u->name,
                        (long long)l.ev[i].seq, l.ev[i].type, lf_strerror(frc));
            after = l.ev[i].seq;
        }
        lf_unit_event_list_free(&l);
    }
    if (after > u->head) u->head = after;
    if (provisioning_differs(u, c)) {
        if ((rc = provision(u, c))) goto out;
    }
    int64_t now = lf_mono_ms();
    u->next_push = now;
    u->next_hb = now;
    u->last_prune = now;
out:
    free(m.snapshot);
    lf_unit_event_list_free(&l);
    if (rc) {
        lf_unit_close(u);
        return rc;
    }
    *out = u;
    return 0;
}

void lf_unit_close(lf_unit *u)
{
    if (!u) return;
    if (u->own_db) lf_unit_db_close(u->db);
    lf_unit_state_free(&u->st);
    free(u->hub_url);
    free(u->token);
    free(u->hub_token);
    free(u->ca_file);
    sodium_memzero(u->booking_key, sizeof u->booking_key);
    pthread_mutex_destroy(&u->mu);
    free(u);
}

const char *lf_unit_name(const lf_unit *u)
{
    return u->name;
}

const char *lf_unit_hub_token(const lf_unit *u)
{
    return u->hub_token;
}

void lf_unit_set_offline(lf_unit *u, bool offline)
{
    atomic_store(&u->offline, offline);
}

bool lf_unit_is_offline(lf_unit *u)
{
    return atomic_load(&u->offline);
}

void lf_unit_set_slow_ms(lf_unit *u, int64_t ms)
{
    atomic_store(&u->slow_ms, ms);
}

int64_t lf_unit_slow_ms(lf_unit *u)
{
    return atomic_load(&u->slow_ms);
}

/* Connected = the last contact with the hub succeeded, recently. */
static bool connected(lf_unit *u, int64_t now)
{
    if (atomic_load(&u->offline) || u->last_contact == 0 || u->last_fail > u->last_contact)
        return false;
    int64_t every = u->push_ms > u->hb_ms ? u->push_ms : u->hb_ms;
    int64_t window = u->uplink == LF_UNIT_PULL ? 180000 : 3 * every;
    if (window < 3 * u->hb_ms) window = 3 * u->hb_ms;
    if (window < 30000) window = 30000;
    return now - u->last_contact < window;
}

void lf_unit_note_hub_contact(lf_unit *u)
{
    pthread_mutex_lock(&u->mu);
    u->last_contact = lf_mono_ms();
    pthread_mutex_unlock(&u->mu);
}

void lf_unit_get_status(lf_unit *u, lf_unit_status *o)
{
    memset(o, 0, sizeof *o);
    pthread_mutex_lock(&u->mu);
    o->seq_head = u->head;
    o->acked_seq = u->acked;
    o->pruned_seq = u->pruned;
    o->config_version = u->st.config_version;
    o->nlockers = u->st.nlockers;
    o->nrentals = u->st.nrentals;
    o->nreservations = u->st.nresv;
    o->connected = connected(u, lf_mono_ms());
    o->pushes_ok = u->pushes_ok;
    o->pushes_failed = u->pushes_failed;
    o->heartbeats_ok = u->heartbeats_ok;
    pthread_mutex_unlock(&u->mu);
}

int lf_unit_lockers(lf_unit *u, lf_unit_locker *out, int max)
{
    pthread_mutex_lock(&u->mu);
    int n = u->st.nlockers < max ? u->st.nlockers : max;
    for (int i = 0; i < n; i++) {
        memcpy(out[i].id, u->st.lockers[i].id, sizeof out[i].id);
        out[i].size = u->st.lockers[i].size;
    }
    pthread_mutex_unlock(&u->mu);
    return n;
}

/* ---- behaviours ---------------------------------------------------------- */

static int64_t price_cents(lf_unit *u, char size, int64_t minutes)
{
    int64_t per_hour = size == 'S' ? 200 : size == 'M' ? 300 : 400;
    json_t *p = u->st.config ? json_object_get(u->st.config, "price_cents_per_hour") : NULL;
    if (json_is_integer(p))
        per_hour = json_integer_value(p);
    else if (json_is_object(p)) {
        char k[2] = {size, 0};
        json_t *v = json_object_get(p, k);
        if (json_is_integer(v)) per_hour = json_integer_value(v);
    }
    if (per_hour < 0) per_hour = 0;
    return (minutes + 59) / 60 * per_hour;
}

static const char *currency(lf_unit *u)
{
    json_t *c = u->st.config ? json_object_get(u->st.config, "currency") : NULL;
    return json_is_string(c) && json_string_length(c) == 3 ? json_string_value(c) : "EUR";
}

static void code_hash(const char *rental_id, const char *code, char out[65])
{
    char tmp[LF_UUID_LEN + 32];
    snprintf(tmp, sizeof tmp, "%s:%s", rental_id, code);
    lf_token_hash(tmp, out);
}

static const lf_unit_st_locker *pick_locker(lf_unit *u, char size, int64_t from, int64_t to,
                                            bool online)
{
    bool has_allot = false;
    for (int i = 0; i < u->st.nlockers; i++)
        has_allot |= u->st.lockers[i].allot;
    /* Online: rent outside the allotment first, keeping it for offline
     * times. Offline: only the allotment, when there is one (DESIGN §6). */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < u->st.nlockers; i++) {
            const lf_unit_st_locker *l = &u->st.lockers[i];
            if (l->size != size || l->door_open) continue;
            if (!online && has_allot && !l->allot) continue;
            if (online && pass == 0 && l->allot) continue;
            if (lf_unit_state_locker_busy(&u->st, l->id, from, to, NULL)) continue;
            return l;
        }
        if (!online) break;
    }
    return NULL;
}

int lf_unit_rent(lf_unit *u, char size, int64_t minutes, bool pay_ok, lf_unit_rental *out)
{
    int rc = 0;
    batch b = {0};
    char t1[LF_TIME_LEN], t2[LF_TIME_LEN];
    memset(out, 0, sizeof *out);
    if ((size != 'S' && size != 'M' && size != 'L') || minutes < 1 || minutes > 30 * 24 * 60)
        return LF_EINVAL;
    pthread_mutex_lock(&u->mu);
    int64_t now = lf_now_ms();
    bool online = connected(u, lf_mono_ms());
    const lf_unit_st_locker *l = pick_locker(u, size, now, now + minutes * 60000, online);
    if (!l) {
        lf_err_set("no %c locker is free for %lld minutes%s", size, (long long)minutes,
                   online ? "" : " in the offline allotment");
        rc = LF_EUNAVAILABLE;
        goto out;
    }
    lf_uuid_v4(out->rental_id);
    memcpy(out->locker, l->id, sizeof out->locker);
    snprintf(out->code, sizeof out->code, "%08u", lf_random_uniform(100000000u));
    out->from_ms = now;
    out->to_ms = now + minutes * 60000;
    out->amount_cents = price_cents(u, size, minutes);
    out->offline = !online;
    const char *cur = currency(u);
    batch_add(&b, "PaymentStarted",
              json_pack("{s:s,s:I,s:s}", "rental_id", out->rental_id, "amount_cents",
                        (json_int_t)out->amount_cents, "currency", cur));
    if (!pay_ok) {
        batch_add(&b, "PaymentFailed",
                  json_pack("{s:s,s:s}", "rental_id", out->rental_id, "reason", "declined"));
        rc = batch_commit(u, &b);
        if (rc == 0) {
            lf_err_set("payment declined");
            rc = LF_EDENIED;
        }
        goto out;
    }
    char hash[65], sz[2] = {size, 0};
    code_hash(out->rental_id, out->code, hash);
    batch_add(&b, "PaymentSucceeded",
              json_pack("{s:s,s:I,s:s}", "rental_id", out->rental_id, "amount_cents",
                        (json_int_t)out->amount_cents, "currency", cur));
    batch_add(&b, "RentalStarted",
              json_pack("{s:s,s:s,s:s,s:s,s:s,s:b,s:s}", "rental_id", out->rental_id, "locker",
                        out->locker, "size", sz, "from", lf_time_format(out->from_ms, t1), "to",
                        lf_time_format(out->to_ms, t2), "offline", out->offline, "code_hash",
                        hash));
    batch_add(&b, "DoorOpened", json_pack("{s:s,s:s}", "locker", out->locker, "reason", "rental"));
    rc = batch_commit(u, &b);
out:
    batch_free(&b);
    pthread_mutex_unlock(&u->mu);
    return rc;
}

static int reject_pickup(lf_unit *u, const char *reason, int rc)
{
    batch b = {0};
    batch_add(&b, "PickupRejected", json_pack("{s:s}", "reason", reason));
    int crc = batch_commit(u, &b);
    lf_err_set("pickup rejected: %s", reason);
    return crc ? crc : rc;
}

int lf_unit_pickup(lf_unit *u, const char *code, lf_unit_pickup_result *out)
{
    int rc = 0;
    batch b = {0};
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&u->mu);
    size_t len = code ? strnlen(code, LF_CODE_MAX) : 0;
    if (len == 0 || len >= LF_CODE_MAX) {
        rc = reject_pickup(u, "bad_code", LF_EDENIED);
        goto out;
    }
    if (strncmp(code, "LF1", 3) == 0) {
        lf_code_info info;
        if (!u->has_key) {
            rc = reject_pickup(u, "unknown", LF_EDENIED);
            goto out;
        }
        int v = lf_code_verify(u->booking_key, code, lf_now_ms(), &info);
        if (v == LF_ESTATE) {
            rc = reject_pickup(u, "outside_window", LF_ESTATE);
            goto out;
        }
        if (v != 0) {
            rc = reject_pickup(u, "bad_code", LF_EDENIED);
            goto out;
        }
        const lf_unit_st_resv *r = lf_unit_state_resv(&u->st, info.reservation_id);
        if (r && r->status == LF_RESV_CANCELLED) {
            rc = reject_pickup(u, "cancelled", LF_EDENIED);
            goto out;
        }
        /* We refused this reservation (its locker was in use here): the
         * code must not open that locker for someone else's belongings.
         * A reassignment reaches us as a new delivery (accepted) and a new
         * code. */
        if (r && r->status == LF_RESV_REJECTED) {
            rc = reject_pickup(u, "rejected", LF_EDENIED);
            goto out;
        }
        /* The hub may have moved the reservation (a resolved conflict):
         * the locker it told us wins over the one in the code. */
        const char *locker = r && r->status == LF_RESV_ACCEPTED ? r->locker : info.locker;
        if (!lf_unit_state_locker(&u->st, locker)) {
            rc = reject_pickup(u, "unknown", LF_EDENIED);
            goto out;
        }
        snprintf(out->locker, sizeof out->locker, "%s", locker);
        snprintf(out->kind, sizeof out->kind, "reservation");
        memcpy(out->id, info.reservation_id, sizeof out->id);
        batch_add(&b, "PickupOpened",
                  json_pack("{s:s,s:s,s:s}", "locker", out->locker, "kind", "reservation",
                            "reservation_id", out->id));
        batch_add(&b, "DoorOpened",
                  json_pack("{s:s,s:s}", "locker", out->locker, "reason", "pickup"));
        rc = batch_commit(u, &b);
        goto out;
    }
    for (int i = 0; i < u->st.nrentals; i++) {
        const lf_unit_st_rental *r = &u->st.rentals[i];
        char h[65];
        code_hash(r->id, code, h);
        if (!r->code_hash[0] || !lf_ct_equal(h, r->code_hash)) continue;
        snprintf(out->locker, sizeof out->locker, "%s", r->locker);
        snprintf(out->kind, sizeof out->kind, "rental");
        memcpy(out->id, r->id, sizeof out->id);
        batch_add(&b, "PickupOpened",
                  json_pack("{s:s,s:s,s:s}", "locker", out->locker, "kind", "rental", "rental_id",
                            out->id));
        batch_add(&b, "DoorOpened",
                  json_pack("{s:s,s:s}", "locker", out->locker, "reason", "pickup"));
        batch_add(&b, "RentalEnded",
                  json_pack("{s:s,s:s}", "rental_id", out->id, "locker", out->locker));
        rc = batch_commit(u, &b);
        goto out;
    }
    rc = reject_pickup(u, "bad_code", LF_EDENIED);
out:
    batch_free(&b);
    pthread_mutex_unlock(&u->mu);
    return rc;
}

int lf_unit_door(lf_unit *u, const char *locker, bool open)
{
    int rc = 0;
    batch b = {0};
    pthread_mutex_lock(&u->mu);
    const lf_unit_st_locker *l = locker ? lf_unit_state_locker(&u->st, locker) : NULL;
    if (!l) {
        lf_err_set("no locker '%.20s'", locker ? locker : "");
        rc = LF_ENOTFOUND;
        goto out;
    }
    const char *reason = open || !l->open_reason[0] ? "service" : l->open_reason;
    batch_add(&b, open ? "DoorOpened" : "DoorClosed",
              json_pack("{s:s,s:s}", "locker", l->id, "reason", reason));
    rc = batch_commit(u, &b);
out:
    pthread_mutex_unlock(&u->mu);
    return rc;
}

int lf_unit_hw_error(lf_unit *u, const char *component, const char *message, const char *locker)
{
    json_t *d = json_pack("{s:s,s:s}", "component", component ? component : "unknown", "message",
                          message ? message : "");
    if (d && locker) json_object_set_new(d, "locker", json_string(locker));
    return lf_unit_record(u, "HardwareError", d);
}

int lf_unit_record(lf_unit *u, const char *type, json_t *data)
{
    batch b = {0};
    pthread_mutex_lock(&u->mu);
    batch_add(&b, type, data);
    int rc = batch_commit(u, &b);
    pthread_mutex_unlock(&u->mu);
    return rc;
}

int lf_unit_apply_config(lf_unit *u, int64_t version, json_t *config, int64_t *applied)
{
    int rc = 0;
    batch b = {0};
    if (version < 1 || !json_is_object(config)) return LF_EINVAL;
    pthread_mutex_lock(&u->mu);
    if (version > u->st.config_version) {
        batch_add(&b, "ConfigApplied",
                  json_pack("{s:I,s:O}", "version", (json_int_t)version, "config", config));
        rc = batch_commit(u, &b);
    }
    *applied = u->st.config_version;
    pthread_mutex_unlock(&u->mu);
    return rc;
}

int lf_unit_reserve(lf_unit *u, const char *id, const char *locker, int64_t from_ms, int64_t to_ms)
{
    int rc = 0;
    batch b = {0};
    char t1[LF_TIME_LEN], t2[LF_TIME_LEN];
    if (!id || !lf_uuid_valid(id) || !locker || from_ms >= to_ms) return LF_EINVAL;
    pthread_mutex_lock(&u->mu);
    if (!lf_unit_state_locker(&u->st, locker)) {
        lf_err_set("no locker '%.20s' on this unit", locker);
        rc = LF_ENOTFOUND;
        goto out;
    }
    const lf_unit_st_resv *r = lf_unit_state_resv(&u->st, id);
    if (r && r->status == LF_RESV_CANCELLED) {
        lf_err_set("reservation %s was cancelled", id);
        rc = LF_ESTATE;
        goto out;
    }
    /* a repeated id is an update (the hub moved it): only the very same
     * delivery gets the same rejection again */
    if (r && r->status == LF_RESV_REJECTED && strcmp(r->locker, locker) == 0 &&
        r->from_ms == from_ms && r->to_ms == to_ms) {
        lf_err_set("locker %s is in use", r->locker);
        rc = LF_ECONFLICT;
        goto out;
    }
    if (r && strcmp(r->locker, locker) == 0 && r->from_ms == from_ms && r->to_ms == to_ms)
        goto out; /* the same delivery again */
    lf_time_format(from_ms, t1);
    lf_time_format(to_ms, t2);
    if (lf_unit_state_locker_busy(&u->st, locker, from_ms, to_ms, id)) {
        batch_add(&b, "ReservationRejected",
                  json_pack("{s:s,s:s,s:s,s:s,s:s}", "reservation_id", id, "reason",
                            "locker_in_use", "locker", locker, "from", t1, "to", t2));
        rc = batch_commit(u, &b);
        if (rc == 0) {
            lf_err_set("locker %s is in use during [%s, %s)", locker, t1, t2);
            rc = LF_ECONFLICT;
        }
        goto out;
    }
    batch_add(&b, "ReservationAccepted",
              json_pack("{s:s,s:s,s:s,s:s}", "reservation_id", id, "locker", locker, "from", t1,
                        "to", t2));
    rc = batch_commit(u, &b);
out:
    pthread_mutex_unlock(&u->mu);
    return rc;
}

int lf_unit_cancel_reservation(lf_unit *u, const char *id)
{
    int rc = 0;
    batch b = {0};
    if (!id || !lf_uuid_valid(id)) return LF_EINVAL;
    pthread_mutex_lock(&u->mu);
    const lf_unit_st_resv *r = lf_unit_state_resv(&u->st, id);
    if (r && r->status == LF_RESV_CANCELLED) goto out;
    batch_add(&b, "ReservationCancelledLocally", json_pack("{s:s}", "reservation_id", id));
    rc = batch_commit(u, &b);
out:
    pthread_mutex_unlock(&u->mu);
    return rc;
}

/* ---- events for the hub -------------------------------------------------- */

int lf_unit_events_json(lf_unit *u, int64_t after, size_t limit, lf_buf *out, int64_t *head)
{
    int rc = 0;
    lf_unit_event_list l = {0};
    pthread_mutex_lock(&u->mu);
    *head = u->head;
    if (after < u->pruned) {
        lf_err_set("events up to seq %lld were pruned after the hub acknowledged them",
                   (long long)u->pruned);
        rc = LF_ESTATE;
        goto out;
    }
    if ((rc = lf_unit_store_read(u->db, u->name, after, limit, &l))) goto out;
    char ts[LF_TIME_LEN];
    lf_buf_append(out, "[", 1);
    for (size_t i = 0; i < l.n; i++) {
        rc = lf_buf_printf(
            out, "%s{\"seq\":%lld,\"id\":\"%s\",\"type\":\"%s\",\"time\":\"%s\",\"data\":%s}",
            i ? "," : "", (long long)l.ev[i].seq, l.ev[i].id, l.ev[i].type,
            lf_time_format(l.ev[i].time_ms, ts), l.ev[i].data);
        if (rc) goto out;
    }
    rc = lf_buf_append(out, "]", 1);
out:
    pthread_mutex_unlock(&u->mu);
    lf_unit_event_list_free(&l);
    return rc;
}

static void maybe_prune(lf_unit *u, int64_t now, bool force)
{
    if (u->acked <= u->pruned) return;
    if (!force && u->acked - u->pruned < PRUNE_BATCH && now - u->last_prune < PRUNE_EVERY_MS)
        return;
    u->last_prune = now;
    json_t *snap = lf_unit_state_snapshot(&u->st, lf_now_ms());
    char *text = snap ? json_dumps(snap, JSON_COMPACT) : NULL;
    json_decref(snap);
    if (!text) return;
    int64_t through = u->acked < u->head ? u->acked : u->head;
    int rc = lf_unit_store_prune(u->db, u->name, u->st.seq, text, through);
    free(text);
    if (rc) {
        LF_WARN("unit", "%s: prune failed: %s", u->name, lf_err_get());
        return;
    }
    u->pruned = through;
    LF_DEBUG("unit", "%s: pruned events <= %lld", u->name, (long long)through);
}

/* Caller holds u->mu. Raises the acked seq (persisted) and the cursor. */
static void set_acked(lf_unit *u, int64_t acked)
{
    if (acked > u->head) acked = u->head;
    if (acked > u->acked) {
        if (lf_unit_store_set_acked(u->db, u->name, acked) == 0)
            u->acked = acked;
        else
            LF_WARN("unit", "%s: cannot save acked seq: %s", u->name, lf_err_get());
    }
    if (u->cursor < u->acked) u->cursor = u->acked;
}

void lf_unit_ack_pulled(lf_unit *u, int64_t after)
{
    pthread_mutex_lock(&u->mu);
    u->last_contact = lf_mono_ms();
    /* Only a pull-mode unit learns its acked seq this way; in push mode the
     * answers to its pushes say what the hub holds. */
    if (u->uplink == LF_UNIT_PULL) set_acked(u, after);
    pthread_mutex_unlock(&u->mu);
}

/* ---- uplink ---------------------------------------------------------------- */

static void backoff(lf_unit *u, int64_t now, int64_t retry_after_ms)
{
    int64_t delay;
    u->fails++;
    u->last_fail = now;
    if (retry_after_ms >= 0) {
        /* Honour the server, plus a little jitter so a fleet told the same
         * Retry-After does not come back in one instant. */
        int64_t j = retry_after_ms / 4 < 1000 ? retry_after_ms / 4 : 1000;
        delay = retry_after_ms + (j > 0 ? lf_random_uniform((uint32_t)j + 1) : 0);
    } else {
        /* Exponential backoff with full jitter: uniform in [0, min(cap,
         * base * 2^fails)]. */
        int64_t base = u->push_ms < 1000 ? u->push_ms : 1000;
        if (u->hb_ms > 0 && u->hb_ms < base) base = u->hb_ms;
        if (base < 100) base = 100;
        int sh = u->fails < 20 ? u->fails : 20;
        int64_t ceil = base << sh;
        if (ceil > u->backoff_max_ms) ceil = u->backoff_max_ms;
        delay = lf_random_uniform((uint32_t)ceil + 1);
        if (delay < 50) delay = 50;
    }
    u->blocked_until = now + delay;
}

static void contact_ok(lf_unit *u, int64_t now)
{
    u->fails = 0;
    u->last_contact = now;
}

static int64_t json_i64(json_t *o, const char *k, int64_t def)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? json_integer_value(v) : def;
}

/* Unlocked HTTP call; the caller re-locks. lean: an http:// hub is spoken
 * to without libcurl (client.h), so the agent never maps it. */
static int call_hub(lf_unit *u, const char *path, const char *body, lf_http_result *res)
{
    char *url = lf_asprintf("%s/v1/units/%s/%s", u->hub_url, u->name, path);
    lf_http_opts o = {.bearer = u->token, .ca_file = u->ca_file, .timeout_ms = (int)u->timeout_ms};
    int rc = lf_http_call_lean("POST", url, body, &o, res);
    free(url);
    return rc;
}

static void do_heartbeat(lf_unit *u, int64_t now)
{
    char body[128];
    snprintf(body, sizeof body, "{\"seq_head\":%lld,\"config_version\":%lld}", (long long)u->head,
             (long long)u->st.config_version);
    u->next_hb = now + u->hb_ms;
    pthread_mutex_unlock(&u->mu);
    lf_http_result res;
    int rc = call_hub(u, "heartbeat", body, &res);
    pthread_mutex_lock(&u->mu);
    now = lf_mono_ms();
    if (rc == 0 && res.status == 200) {
        contact_ok(u, now);
        u->heartbeats_ok++;
        json_t *j = json_loadb(res.body.data ? res.body.data : "", res.body.len, 0, NULL);
        u->desired_config_version = json_i64(j, "desired_config_version", 0);
        json_decref(j);
    } else if (rc == 0 && (res.status == 429 || res.status == 503)) {
        backoff(u, now, res.retry_after_ms);
    } else {
        LF_DEBUG("unit", "%s: heartbeat failed: %s", u->name,
                 rc ? lf_err_get() : "unexpected HTTP status");
        backoff(u, now, -1);
    }
    lf_http_result_free(&res);
}

static void do_push(lf_unit *u, int64_t now)
{
    lf_buf body;
    lf_buf_init(&body, 0);
    int64_t head;
    int64_t from = u->cursor;
    pthread_mutex_unlock(&u->mu); /* lf_unit_events_json locks */
    lf_buf_append(&body, "{\"events\":", 10);
    int rc = lf_unit_events_json(u, from, LF_UNIT_BATCH_MAX, &body, &head);
    if (rc == 0) rc = lf_buf_append(&body, "}", 1);
    lf_http_result res = {0};
    lf_buf_init(&res.body, 0);
    if (rc == 0)
        rc = call_hub(u, "events", body.data, &res);
    else
        LF_ERROR("unit", "%s: cannot read events to push: %s", u->name, lf_err_get());
    pthread_mutex_lock(&u->mu);
    now = lf_mono_ms();
    json_t *j =
        rc == 0 ? json_loadb(res.body.data ? res.body.data : "", res.body.len, 0, NULL) : NULL;
    if (rc == 0 && res.status == 200) {
        int64_t acked = json_i64(j, "acked_seq", -1);
        contact_ok(u, now);
        u->pushes_ok++;
        if (acked >= 0) {
            set_acked(u, acked);
            u->cursor = acked > u->cursor ? (acked < u->head ? acked : u->head) : u->cursor;
        }
        /* A backlog drains batch after batch without waiting. */
        u->next_push = u->cursor < u->head ? now : now + u->push_ms;
    } else if (rc == 0 && res.status == 409) {
        int64_t exp = json_i64(j, "expected_seq", -1);
        if (exp < 0) exp = json_i64(json_object_get(j, "error"), "expected_seq", -1);
        int64_t has = exp - 1;
        contact_ok(u, now);
        if (exp < 1 || has > u->head) {
            LF_ERROR("unit", "%s: hub expects seq %lld but the local log ends at %lld", u->name,
                     (long long)exp, (long long)u->head);
            backoff(u, now, -1);
        } else if (has < u->pruned) {
            LF_ERROR("unit",
                     "%s: hub expects seq %lld, but events <= %lld were pruned after it "
                     "acknowledged them",
                     u->name, (long long)exp, (long long)u->pruned);
            u->cursor = u->pruned;
            backoff(u, now, -1);
        } else {
            LF_INFO("unit", "%s: hub expects seq %lld: resending from there", u->name,
                    (long long)exp);
            u->cursor = has;
            set_acked(u, has);
            u->cursor = has; /* may be below acked if the hub lost events */
            u->next_push = now;
        }
    } else if (rc == 0 && (res.status == 429 || res.status == 503)) {
        u->pushes_failed++;
        backoff(u, now, res.retry_after_ms);
    } else {
        u->pushes_failed++;
        if (rc == 0)
            LF_WARN("unit", "%s: push answered %ld: %.200s", u->name, res.status,
                    res.body.data ? res.body.data : "");
        else
            LF_DEBUG("unit", "%s: push failed: %s", u->name, lf_err_get());
        backoff(u, now, -1);
    }
    json_decref(j);
    lf_http_result_free(&res);
    lf_buf_free(&body);
}

int64_t lf_unit_uplink_step(lf_unit *u, int64_t now)
{
    bool expect = false;
    if (!atomic_compare_exchange_strong(&u->stepping, &expect, true)) return now + 100;
    pthread_mutex_lock(&u->mu);
    int64_t next = now + 1000;
    if (u->hub_url && !atomic_load(&u->offline) && now >= u->blocked_until) {
        if (u->hb_ms > 0 && now >= u->next_hb)
            do_heartbeat(u, now);
        else if (u->uplink == LF_UNIT_PUSH && now >= u->next_push) {
            if (u->cursor < u->head)
                do_push(u, now);
            else
                u->next_push = now + u->push_ms;
        }
        now = lf_mono_ms();
    }
    maybe_prune(u, now, false);
    if (u->hub_url && !atomic_load(&u->offline)) {
        if (u->blocked_until > now)
            next = u->blocked_until;
        else {
            next = now + 60000;
            if (u->hb_ms > 0 && u->next_hb < next) next = u->next_hb;
            if (u->uplink == LF_UNIT_PUSH && u->next_push < next) next = u->next_push;
        }
    }
    if (u->acked > u->pruned && u->last_prune + PRUNE_EVERY_MS < next)
        next = u->last_prune + PRUNE_EVERY_MS;
    if (next < now) next = now;
    pthread_mutex_unlock(&u->mu);
    atomic_store(&u->stepping, false);
    return next;
}
