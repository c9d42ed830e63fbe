/*
 * unit_state.c — the unit's state as a pure fold over its own events
 * (docs/EVENTS.md, `unitlog-{name}`): lockers and their doors, active
 * rentals, reservations the hub gave it (and cancellations), the config
 * applied. No I/O, no clock: time comes in as arguments, so replaying the
 * same events always gives the same state.
 *
 * Snapshots (lf_unit_state_snapshot/restore) let the store prune events
 * the hub acknowledged: state = restore(snapshot) + fold(events after it).
 */
#include "unit/unit_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY_MS (24LL * 3600 * 1000)

void lf_unit_state_init(lf_unit_state *s)
{
    memset(s, 0, sizeof *s);
}

void lf_unit_state_free(lf_unit_state *s)
{
    free(s->lockers);
    free(s->rentals);
    free(s->resv);
    json_decref(s->config);
    memset(s, 0, sizeof *s);
}

/* Copies a string field of at most cap-1 bytes; false if absent/too long. */
static bool get_str(json_t *o, const char *key, char *out, size_t cap)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v)) return false;
    size_t n = json_string_length(v);
    if (n == 0 || n >= cap) return false;
    memcpy(out, json_string_value(v), n + 1);
    return true;
}

static bool get_time(json_t *o, const char *key, int64_t *out)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) && lf_time_parse(json_string_value(v), out) == 0;
}

static bool size_valid(char c)
{
    return c == 'S' || c == 'M' || c == 'L';
}

lf_unit_st_locker *lf_unit_state_locker(lf_unit_state *s, const char *id)
{
    for (int i = 0; i < s->nlockers; i++)
        if (strcmp(s->lockers[i].id, id) == 0) return &s->lockers[i];
    return NULL;
}

lf_unit_st_resv *lf_unit_state_resv(lf_unit_state *s, const char *id)
{
    for (int i = 0; i < s->nresv; i++)
        if (strcmp(s->resv[i].id, id) == 0) return &s->resv[i];
    return NULL;
}

bool lf_unit_state_locker_busy(const lf_unit_state *s, const char *locker, int64_t from_ms,
                               int64_t to_ms, const char *except_resv)
{
    /* A rental occupies its locker until it is ended by a pickup, whatever
     * its nominal end: the goods are still inside. */
    for (int i = 0; i < s->nrentals; i++)
        if (strcmp(s->rentals[i].locker, locker) == 0) return true;
    for (int i = 0; i < s->nresv; i++) {
        const lf_unit_st_resv *r = &s->resv[i];
        if (r->status != LF_RESV_ACCEPTED || strcmp(r->locker, locker) != 0) continue;
        if (except_resv && strcmp(r->id, except_resv) == 0) continue;
        if (r->from_ms < to_ms && from_ms < r->to_ms) return true;
    }
    return false;
}

static void set_allotment(lf_unit_state *s, json_t *arr)
{
    for (int i = 0; i < s->nlockers; i++)
        s->lockers[i].allot = false;
    size_t k;
    json_t *v;
    json_array_foreach(arr, k, v)
    {
        if (!json_is_string(v)) continue;
        lf_unit_st_locker *l = lf_unit_state_locker(s, json_string_value(v));
        if (l) l->allot = true;
    }
}

static int apply_provisioned(lf_unit_state *s, json_t *d)
{
    json_t *arr = json_object_get(d, "lockers");
    if (!json_is_array(arr) || json_array_size(arr) > LF_UNIT_LOCKERS_MAX) return LF_EINVAL;
    size_t n = json_array_size(arr);
    lf_unit_st_locker *nl = calloc(n ? n : 1, sizeof *nl);
    if (!nl) return LF_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i);
        char size[4];
        if (!get_str(o, "id", nl[i].id, sizeof nl[i].id) ||
            !get_str(o, "size", size, sizeof size) || size[1] || !size_valid(size[0])) {
            free(nl);
            return LF_EINVAL;
        }
        nl[i].size = size[0];
        /* A door keeps its state across re-provisioning. */
        lf_unit_st_locker *old = lf_unit_state_locker(s, nl[i].id);
        if (old) {
            nl[i].door_open = old->door_open;
            memcpy(nl[i].open_reason, old->open_reason, sizeof nl[i].open_reason);
        }
    }
    free(s->lockers);
    s->lockers = nl;
    s->nlockers = (int)n;
    json_t *allot = json_object_get(d, "allotment");
    if (json_is_array(allot)) set_allotment(s, allot);
    return 0;
}

static lf_unit_st_resv *resv_slot(lf_unit_state *s, const char *id)
{
    lf_unit_st_resv *r = lf_unit_state_resv(s, id);
    if (r) return r;
    if (s->nresv == s->capresv) {
        int nc = s->capresv ? s->capresv * 2 : 8;
        lf_unit_st_resv *nr = realloc(s->resv, (size_t)nc * sizeof *nr);
        if (!nr) return NULL;
        s->resv = nr;
        s->capresv = nc;
    }
    r = &s->resv[s->nresv++];
    memset(r, 0, sizeof *r);
    memcpy(r->id, id, strlen(id) + 1);
    return r;
}

static int apply_rental(lf_unit_state *s, json_t *d)
{
    lf_unit_st_rental r = {0};
    char size[4];
    if (!get_str(d, "rental_id", r.id, sizeof r.id) ||
        !get_str(d, "locker", r.locker, sizeof r.locker) ||
        !get_str(d, "size", size, sizeof size) || !get_time(d, "from", &r.from_ms) ||
        !get_time(d, "to", &r.to_ms))
        return LF_EINVAL;
    r.size = size[0];
    get_str(d, "code_hash", r.code_hash, sizeof r.code_hash);
    r.offline = json_is_true(json_object_get(d, "offline"));
    if (s->nrentals == s->caprentals) {
        int nc = s->caprentals ? s->caprentals * 2 : 8;
        lf_unit_st_rental *nr = realloc(s->rentals, (size_t)nc * sizeof *nr);
        if (!nr) return LF_ENOMEM;
        s->rentals = nr;
        s->caprentals = nc;
    }
    s->rentals[s->nrentals++] = r;
    return 0;
}

static int apply_rental_end(lf_unit_state *s, json_t *d)
{
    char id[LF_UUID_LEN];
    if (!get_str(d, "rental_id", id, sizeof id)) return LF_EINVAL;
    for (int i = 0; i < s->nrentals; i++) {
        if (strcmp(s->rentals[i].id, id) == 0) {
            s->rentals[i] = s->rentals[--s->nrentals];
            break;
        }
    }
    return 0;
}

static int apply_door(lf_unit_state *s, json_t *d, bool open)
{
    char locker[16], reason[12] = "";
    if (!get_str(d, "locker", locker, sizeof locker)) return LF_EINVAL;
    get_str(d, "reason", reason, sizeof reason);
    lf_unit_st_locker *l = lf_unit_state_locker(s, locker);
    if (!l) return 0; /* a locker since removed: history is still history */
    l->door_open = open;
    memcpy(l->open_reason, open ? reason : "", open ? sizeof reason : 1);
    return 0;
}

static int apply_resv(lf_unit_state *s, json_t *d, int status, int64_t time_ms)
{
    char id[LF_UUID_LEN];
    if (!get_str(d, "reservation_id", id, sizeof id)) return LF_EINVAL;
    lf_unit_st_resv tmp = {0};
    if (status == LF_RESV_ACCEPTED &&
        (!get_str(d, "locker", tmp.locker, sizeof tmp.locker) ||
         !get_time(d, "from", &tmp.from_ms) || !get_time(d, "to", &tmp.to_ms)))
        return LF_EINVAL;
    lf_unit_st_resv *r = resv_slot(s, id);
    if (!r) return LF_ENOMEM;
    if (status == LF_RESV_ACCEPTED) {
        memcpy(r->locker, tmp.locker, sizeof r->locker);
        r->from_ms = tmp.from_ms;
        r->to_ms = tmp.to_ms;
    } else if (status == LF_RESV_REJECTED) {
        get_str(d, "locker", r->locker, sizeof r->locker);
        get_time(d, "from", &r->from_ms);
        get_time(d, "to", &r->to_ms);
    }
    r->status = status;
    r->at_ms = time_ms;
    return 0;
}

int lf_unit_state_apply(lf_unit_state *s, int64_t seq, const char *type, json_t *d, int64_t time_ms)
{
    int rc = 0;
    if (!json_is_object(d)) return LF_EINVAL;
    if (strcmp(type, "UnitProvisioned") == 0) {
        rc = apply_provisioned(s, d);
    } else if (strcmp(type, "ConfigApplied") == 0) {
        json_t *v = json_object_get(d, "version");
        if (!json_is_integer(v)) return LF_EINVAL;
        json_t *cfg = json_object_get(d, "config");
        s->config_version = json_integer_value(v);
        json_decref(s->config);
        s->config = json_is_object(cfg) ? json_incref(cfg) : NULL;
        json_t *allot = cfg ? json_object_get(cfg, "allotment") : NULL;
        if (json_is_array(allot)) set_allotment(s, allot);
    } else if (strcmp(type, "RentalStarted") == 0) {
        rc = apply_rental(s, d);
    } else if (strcmp(type, "RentalEnded") == 0) {
        rc = apply_rental_end(s, d);
    } else if (strcmp(type, "DoorOpened") == 0) {
        rc = apply_door(s, d, true);
    } else if (strcmp(type, "DoorClosed") == 0) {
        rc = apply_door(s, d, false);
    } else if (strcmp(type, "ReservationAccepted") == 0) {
        rc = apply_resv(s, d, LF_RESV_ACCEPTED, time_ms);
    } else if (strcmp(type, "ReservationRejected") == 0) {
        rc = apply_resv(s, d, LF_RESV_REJECTED, time_ms);
    } else if (strcmp(type, "ReservationCancelledLocally") == 0) {
        rc = apply_resv(s, d, LF_RESV_CANCELLED, time_ms);
    }
    /* Payment*, Pickup*, Hardware*: facts for the hub, no local state. */
    if (rc == 0 && seq > s->seq) s->seq = seq;
    return rc;
}

json_t *lf_unit_state_snapshot(const lf_unit_state *s, int64_t now_ms)
{
    char t1[LF_TIME_LEN], t2[LF_TIME_LEN];
    json_t *lk = json_array(), *al = json_array(), *doors = json_array();
    for (int i = 0; i < s->nlockers; i++) {
        const lf_unit_st_locker *l = &s->lockers[i];
        char size[2] = {l->size, 0};
        json_array_append_new(lk, json_pack("{s:s,s:s}", "id", l->id, "size", size));
        if (l->allot) json_array_append_new(al, json_string(l->id));
        if (l->door_open)
            json_array_append_new(
                doors, json_pack("{s:s,s:s}", "locker", l->id, "reason", l->open_reason));
    }
    json_t *rentals = json_array();
    for (int i = 0; i < s->nrentals; i++) {
        const lf_unit_st_rental *r = &s->rentals[i];
        char size[2] = {r->size, 0};
        json_array_append_new(rentals, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:b}", "rental_id",
                                                 r->id, "locker", r->locker, "size", size, "from",
                                                 lf_time_format(r->from_ms, t1), "to",
                                                 lf_time_format(r->to_ms, t2), "code_hash",
                                                 r->code_hash, "offline", r->offline));
    }
    json_t *resv = json_array();
    for (int i = 0; i < s->nresv; i++) {
        const lf_unit_st_resv *r = &s->resv[i];
        bool known = r->to_ms > 0;
        if (known && r->to_ms < now_ms - DAY_MS) continue;       /* finished */
        if (!known && r->at_ms < now_ms - 31 * DAY_MS) continue; /* old cancel */
        json_array_append_new(resv, json_pack("{s:s,s:s,s:I,s:I,s:i,s:I}", "id", r->id, "locker",
                                              r->locker, "from_ms", (json_int_t)r->from_ms, "to_ms",
                                              (json_int_t)r->to_ms, "status", r->status, "at_ms",
                                              (json_int_t)r->at_ms));
    }
    json_t *o = json_pack("{s:i,s:I,s:o,s:o,s:o,s:o,s:o,s:I}", "v", 1, "seq", (json_int_t)s->seq,
                          "lockers", lk, "allotment", al, "open_doors", doors, "rentals", rentals,
                          "reservations", resv, "config_version", (json_int_t)s->config_version);
    if (o && s->config) json_object_set(o, "config", s->config);
    return o;
}

int lf_unit_state_restore(lf_unit_state *s, json_t *snap)
{
    int rc = 0;
    lf_unit_state n;
    lf_unit_state_init(&n);
    if (!json_is_object(snap) || json_integer_value(json_object_get(snap, "v")) != 1) {
        rc = LF_ECORRUPT;
        goto out;
    }
    json_t *prov = json_pack("{s:O,s:O}", "lockers", json_object_get(snap, "lockers"), "allotment",
                             json_object_get(snap, "allotment"));
    if (!prov) {
        rc = LF_ECORRUPT;
        goto out;
    }
    rc = apply_provisioned(&n, prov);
    json_decref(prov);
    if (rc) goto out;
    size_t k;
    json_t *v;
    json_array_foreach(json_object_get(snap, "open_doors"), k, v)
    {
        if ((rc = apply_door(&n, v, true))) goto out;
    }
    json_array_foreach(json_object_get(snap, "rentals"), k, v)
    {
        if ((rc = apply_rental(&n, v))) goto out;
    }
    json_array_foreach(json_object_get(snap, "reservations"), k, v)
    {
        char id[LF_UUID_LEN];
        if (!get_str(v, "id", id, sizeof id)) {
            rc = LF_ECORRUPT;
            goto out;
        }
        lf_unit_st_resv *r = resv_slot(&n, id);
        if (!r) {
            rc = LF_ENOMEM;
            goto out;
        }
        json_t *lk = json_object_get(v, "locker");
        if (json_is_string(lk)) snprintf(r->locker, sizeof r->locker, "%s", json_string_value(lk));
        r->from_ms = json_integer_value(json_object_get(v, "from_ms"));
        r->to_ms = json_integer_value(json_object_get(v, "to_ms"));
        r->status = (int)json_integer_value(json_object_get(v, "status"));
        r->at_ms = json_integer_value(json_object_get(v, "at_ms"));
    }
    n.config_version = json_integer_value(json_object_get(snap, "config_version"));
    json_t *cfg = json_object_get(snap, "config");
    n.config = json_is_object(cfg) ? json_incref(cfg) : NULL;
    n.seq = json_integer_value(json_object_get(snap, "seq"));
out:
    if (rc) {
        lf_unit_state_free(&n);
        if (rc == LF_EINVAL) rc = LF_ECORRUPT;
        lf_err_set("unit state: snapshot is damaged");
        return rc;
    }
    lf_unit_state_free(s);
    *s = n;
    return 0;
}
