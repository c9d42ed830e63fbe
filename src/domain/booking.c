/*
 * booking.c — the reservation domain: fold over `bookings-{unit}` and the
 * commands on it. Pure: no clock, no I/O (see booking.h). Events are
 * built as JSON text with jansson; times in data are RFC 3339 strings.
 */
#include "domain/booking.h"

#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

const char *lf_booking_code(int rc)
{
    switch (rc) {
    case 0:
        return "ok";
    case LF_BOOKING_EUNAVAILABLE:
        return "unavailable";
    case LF_BOOKING_EEXPIRED:
        return "hold_expired";
    case LF_BOOKING_ECANCELLED:
        return "reservation_cancelled";
    case LF_BOOKING_EALREADYCANC:
        return "already_cancelled";
    case LF_BOOKING_ENOTACTIVE:
        return "reservation_expired";
    case LF_BOOKING_EWINDOW:
        return "window_over";
    case LF_ENOTFOUND:
        return "not_found";
    case LF_EINVAL:
        return "invalid";
    case LF_ECONFLICT:
        return "conflict";
    default:
        return "error";
    }
}

const char *lf_res_status_name(enum lf_res_status s)
{
    switch (s) {
    case LF_RES_HELD:
        return "held";
    case LF_RES_CONFIRMED:
        return "confirmed";
    case LF_RES_CANCELLED:
        return "cancelled";
    case LF_RES_EXPIRED:
        return "expired";
    }
    return "unknown";
}

void lf_booking_events_free(lf_booking_events *e)
{
    if (!e) return;
    for (size_t i = 0; i < e->n; i++)
        free(e->ev[i].data);
    e->n = 0;
}

void lf_booking_state_init(lf_booking_state *st)
{
    memset(st, 0, sizeof *st);
}

void lf_booking_state_free(lf_booking_state *st)
{
    if (!st) return;
    free(st->res);
    free(st->rent);
    memset(st, 0, sizeof *st);
}

/* ---- helpers -------------------------------------------------------- */

static bool size_valid(char s)
{
    return s == 'S' || s == 'M' || s == 'L';
}

static bool overlaps(int64_t af, int64_t at, int64_t bf, int64_t bt)
{
    return af < bt && bf < at;
}

/* Copies a JSON string member into dst (bounded). false if absent, not a
 * string, empty or too long. */
static bool get_str(json_t *o, const char *k, char *dst, size_t cap)
{
    json_t *v = json_object_get(o, k);
    size_t n;
    if (!json_is_string(v)) return false;
    n = json_string_length(v);
    if (n == 0 || n >= cap) return false;
    memcpy(dst, json_string_value(v), n + 1);
    return true;
}

static bool get_time(json_t *o, const char *k, int64_t *ms)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) && lf_time_parse(json_string_value(v), ms) == 0;
}

static lf_reservation *find_mut(lf_booking_state *st, const char *id)
{
    /* newest first: commands mostly touch recent reservations */
    for (size_t i = st->n; i-- > 0;)
        if (strcmp(st->res[i].id, id) == 0) return &st->res[i];
    return NULL;
}

const lf_reservation *lf_booking_find(const lf_booking_state *st, const char *id)
{
    return id ? find_mut((lf_booking_state *)st, id) : NULL;
}

const lf_reservation *lf_booking_find_idem(const lf_booking_state *st, const char *user_id,
                                           const char *key)
{
    if (!user_id || !key || !*key) return NULL;
    for (size_t i = st->n; i-- > 0;) {
        const lf_reservation *r = &st->res[i];
        if (r->idem_key[0] && strcmp(r->idem_key, key) == 0 && strcmp(r->user_id, user_id) == 0)
            return r;
    }
    return NULL;
}

enum lf_res_status lf_booking_status_at(const lf_reservation *r, int64_t now_ms)
{
    if (r->status == LF_RES_HELD && now_ms >= r->hold_expires_ms) return LF_RES_EXPIRED;
    return r->status;
}

/* Does this reservation take its locker at now? */
static bool res_active(const lf_reservation *r, int64_t now_ms)
{
    enum lf_res_status s = lf_booking_status_at(r, now_ms);
    return s == LF_RES_HELD || s == LF_RES_CONFIRMED;
}

/* ---- fold ----------------------------------------------------------- */

static int fold_held(lf_booking_state *st, int64_t version, json_t *d)
{
    lf_reservation r;
    char size[4];
    json_t *idem;

    memset(&r, 0, sizeof r);
    if (!get_str(d, "reservation_id", r.id, sizeof r.id) ||
        !get_str(d, "user_id", r.user_id, sizeof r.user_id) ||
        !get_str(d, "locker", r.locker, sizeof r.locker) ||
        !get_str(d, "size", size, sizeof size) || !get_time(d, "from", &r.from_ms) ||
        !get_time(d, "to", &r.to_ms) || !get_time(d, "hold_expires_at", &r.hold_expires_ms))
        return LF_EINVAL;
    if (size[1] != '\0' || !size_valid(size[0])) return LF_EINVAL;
    r.size = size[0];
    idem = json_object_get(d, "idempotency_key");
    if (json_is_string(idem) && !get_str(d, "idempotency_key", r.idem_key, sizeof r.idem_key))
        r.idem_key[0] = '\0';
    r.status = LF_RES_HELD;
    r.version = version;
    if (find_mut(st, r.id)) return 0; /* the same decision twice: keep the first */
    if (st->n == st->cap) {
        st->cap = st->cap ? st->cap * 2 : 16;
        st->res = lf_xrealloc(st->res, st->cap * sizeof *st->res);
    }
    st->res[st->n++] = r;
    return 0;
}

static int fold_conflict(lf_booking_state *st, json_t *d)
{
    lf_booking_rental b;
    memset(&b, 0, sizeof b);
    if (!get_str(d, "rental_id", b.rental_id, sizeof b.rental_id) ||
        !get_str(d, "locker", b.locker, sizeof b.locker))
        return LF_EINVAL;
    /* from/to: the rental's window (older events may lack it: no block) */
    if (!get_time(d, "from", &b.from_ms) || !get_time(d, "to", &b.to_ms) || b.from_ms >= b.to_ms)
        return 0;
    for (size_t i = 0; i < st->nrent; i++)
        if (strcmp(st->rent[i].rental_id, b.rental_id) == 0) return 0;
    if (st->nrent == st->caprent) {
        st->caprent = st->caprent ? st->caprent * 2 : 4;
        st->rent = lf_xrealloc(st->rent, st->caprent * sizeof *st->rent);
    }
    st->rent[st->nrent++] = b;
    return 0;
}

/* The unit said r's locker is in use for r's window (a rejected
 * delivery): keep it blocked, so neither r nor a later reservation is
 * put back on it. Idempotent. */
static void block_rejected(lf_booking_state *st, const lf_reservation *r)
{
    lf_booking_rental b;
    memset(&b, 0, sizeof b);
    snprintf(b.rental_id, sizeof b.rental_id, "rj:%s:%s", r->id, r->locker);
    snprintf(b.locker, sizeof b.locker, "%s", r->locker);
    b.from_ms = r->from_ms;
    b.to_ms = r->to_ms;
    for (size_t i = 0; i < st->nrent; i++)
        if (strcmp(st->rent[i].rental_id, b.rental_id) == 0) return;
    if (st->nrent == st->caprent) {
        st->caprent = st->caprent ? st->caprent * 2 : 4;
        st->rent = lf_xrealloc(st->rent, st->caprent * sizeof *st->rent);
    }
    st->rent[st->nrent++] = b;
}

int lf_booking_apply(lf_booking_state *st, int64_t version, const char *type, const char *data)
{
    json_t *d = NULL;
    lf_reservation *r;
    char id[LF_UUID_LEN];
    int rc = 0;

    st->version = version;
    if (strncmp(type, "Reservation", 11) != 0 && strcmp(type, "ConflictDetected") != 0)
        goto out; /* RefundIssued and anything unknown: nothing to fold */
    d = json_loads(data, 0, NULL);
    if (!json_is_object(d)) {
        rc = LF_EINVAL;
        goto out;
    }
    if (strcmp(type, "ReservationHeld") == 0) {
        rc = fold_held(st, version, d);
        goto out;
    }
    if (strcmp(type, "ConflictDetected") == 0) {
        rc = fold_conflict(st, d);
        goto out;
    }
    if (!get_str(d, "reservation_id", id, sizeof id) || !(r = find_mut(st, id))) {
        rc = LF_EINVAL;
        goto out;
    }
    r->version = version;
    if (strcmp(type, "ReservationConfirmed") == 0) {
        json_t *a = json_object_get(d, "amount_cents");
        if (r->status == LF_RES_HELD) r->status = LF_RES_CONFIRMED;
        r->amount_cents = json_is_integer(a) ? json_integer_value(a) : 0;
    } else if (strcmp(type, "ReservationCancelled") == 0) {
        r->status = LF_RES_CANCELLED;
        if (!get_str(d, "reason", r->cancel_reason, sizeof r->cancel_reason))
            strcpy(r->cancel_reason, "user");
        if (strcmp(r->cancel_reason, "unit_rejected") == 0) block_rejected(st, r);
    } else if (strcmp(type, "ReservationExpired") == 0) {
        if (r->status == LF_RES_HELD) r->status = LF_RES_EXPIRED;
    } else if (strcmp(type, "ReservationReassigned") == 0) {
        char to[LF_BOOKING_LOCKER_MAX], why[16] = "";
        if (!get_str(d, "to_locker", to, sizeof to)) {
            rc = LF_EINVAL;
            goto out;
        }
        get_str(d, "reason", why, sizeof why);
        if (strcmp(why, "unit_rejected") == 0) block_rejected(st, r);
        memcpy(r->locker, to, sizeof to);
        r->reassigned++;
    }
out:
    json_decref(d);
    return rc;
}

int lf_booking_apply_events(lf_booking_state *st, const lf_booking_events *e)
{
    int rc = 0;
    for (size_t i = 0; i < e->n; i++) {
        int r = lf_booking_apply(st, st->version + 1, e->ev[i].type, e->ev[i].data);
        if (r != 0 && rc == 0) rc = r;
    }
    return rc;
}

/* ---- event building ------------------------------------------------- */

void lf_booking_event_id(const char *a, const char *b, const char *kind, char out[LF_UUID_LEN])
{
    static const char hx[] = "0123456789abcdef";
    crypto_generichash_state h;
    unsigned char d[16];
    int o = 0;

    crypto_generichash_init(&h, (const unsigned char *)"lf-booking-ev", 13, sizeof d);
    crypto_generichash_update(&h, (const unsigned char *)a, strlen(a) + 1);
    crypto_generichash_update(&h, (const unsigned char *)b, strlen(b) + 1);
    crypto_generichash_update(&h, (const unsigned char *)kind, strlen(kind) + 1);
    crypto_generichash_final(&h, d, sizeof d);
    d[6] = (unsigned char)((d[6] & 0x0f) | 0x80); /* version 8: custom */
    d[8] = (unsigned char)((d[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
        out[o++] = hx[d[i] >> 4];
        out[o++] = hx[d[i] & 15];
    }
    out[o] = '\0';
}

/* Adds an event; steals obj. */
static void push_ev(lf_booking_events *out, const char *id, const char *type, json_t *obj)
{
    lf_booking_event *e;
    if (out->n >= LF_BOOKING_EVENTS_MAX) abort(); /* a bug: callers bound their batches */
    e = &out->ev[out->n++];
    snprintf(e->id, sizeof e->id, "%s", id ? id : "");
    e->type = type;
    e->data = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (!e->data) {
        fprintf(stderr, "booking: out of memory\n");
        abort();
    }
}

static json_t *time_json(int64_t ms)
{
    char buf[LF_TIME_LEN];
    return json_string(lf_time_format(ms, buf));
}

/* ---- queries -------------------------------------------------------- */

int lf_booking_check_window(int64_t from_ms, int64_t to_ms, int64_t now_ms)
{
    if (from_ms < now_ms - LF_BOOKING_SKEW_MS) {
        lf_err_set("from: must not be in the past");
        return LF_EINVAL;
    }
    if (to_ms <= from_ms) {
        lf_err_set("to: must be after from (windows are [from, to))");
        return LF_EINVAL;
    }
    if (to_ms > now_ms + LF_BOOKING_MAX_AHEAD_MS) {
        lf_err_set("to: at most 30 days ahead");
        return LF_EINVAL;
    }
    return 0;
}

typedef struct {
    const char *locker;
    int64_t from_ms, to_ms;
} block;

static bool in_allotment(const lf_booking_lockers *lk, const char *id)
{
    for (size_t i = 0; i < lk->nallot; i++)
        if (strcmp(lk->allotment[i], id) == 0) return true;
    return false;
}

/* Is locker free for [from,to) at now? skip: a reservation not to count
 * (the one being moved); extra: blocks decided in this same command. */
static bool locker_free(const lf_booking_state *st, const char *locker, int64_t from, int64_t to,
                        int64_t now, const lf_reservation *skip, const block *extra, size_t nextra)
{
    for (size_t i = 0; i < st->n; i++) {
        const lf_reservation *r = &st->res[i];
        if (r == skip || strcmp(r->locker, locker) != 0) continue;
        if (res_active(r, now) && overlaps(r->from_ms, r->to_ms, from, to)) return false;
    }
    for (size_t i = 0; i < st->nrent; i++) {
        const lf_booking_rental *b = &st->rent[i];
        if (strcmp(b->locker, locker) == 0 && overlaps(b->from_ms, b->to_ms, from, to))
            return false;
    }
    for (size_t i = 0; i < nextra; i++)
        if (strcmp(extra[i].locker, locker) == 0 &&
            overlaps(extra[i].from_ms, extra[i].to_ms, from, to))
            return false;
    return true;
}

/* Picks a free locker of size: outside the allotment first (in the
 * order of lk), then from the allotment if allowed. -1 if none. */
static int pick_locker(const lf_booking_state *st, const lf_booking_lockers *lk, char size,
                       int64_t from, int64_t to, int allow_allot, int64_t now,
                       const lf_reservation *skip, const char *exclude, const block *extra,
                       size_t nextra)
{
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1 && !allow_allot) break;
        for (size_t i = 0; i < lk->n; i++) {
            if (lk->sizes[i] != size) continue;
            if (exclude && strcmp(lk->ids[i], exclude) == 0) continue;
            if (in_allotment(lk, lk->ids[i]) != (pass == 1)) continue;
            if (locker_free(st, lk->ids[i], from, to, now, skip, extra, nextra)) return (int)i;
        }
    }
    return -1;
}

int lf_booking_available(const lf_booking_state *st, const lf_booking_lockers *lk, char size,
                         int64_t from_ms, int64_t to_ms, int online, int64_t now_ms)
{
    int n = 0;
    if (!size_valid(size) || from_ms >= to_ms) return LF_EINVAL;
    for (size_t i = 0; i < lk->n; i++) {
        if (lk->sizes[i] != size) continue;
        if (!online && in_allotment(lk, lk->ids[i])) continue;
        if (locker_free(st, lk->ids[i], from_ms, to_ms, now_ms, NULL, NULL, 0)) n++;
    }
    return n;
}

/* ---- commands ------------------------------------------------------- */

int lf_booking_reserve(const lf_booking_state *st, const lf_booking_lockers *lk,
                       const lf_booking_reserve_cmd *cmd, int64_t now_ms, lf_booking_events *out)
{
    char sz[2] = {cmd->size, '\0'};
    json_t *o;
    int rc, li;

    if (!cmd->reservation_id || !lf_uuid_valid(cmd->reservation_id)) {
        lf_err_set("reservation_id: not a UUID");
        return LF_EINVAL;
    }
    if (!cmd->user_id || !*cmd->user_id || strlen(cmd->user_id) >= LF_BOOKING_USER_MAX) {
        lf_err_set("user_id: missing or too long");
        return LF_EINVAL;
    }
    if (!size_valid(cmd->size)) {
        lf_err_set("size: must be S, M or L");
        return LF_EINVAL;
    }
    if (cmd->idem_key && strlen(cmd->idem_key) >= LF_BOOKING_IDEM_MAX) {
        lf_err_set("Idempotency-Key: at most %d bytes", LF_BOOKING_IDEM_MAX - 1);
        return LF_EINVAL;
    }
    if (cmd->hold_ms <= 0) {
        lf_err_set("hold: must be positive");
        return LF_EINVAL;
    }
    if ((rc = lf_booking_check_window(cmd->from_ms, cmd->to_ms, now_ms)) != 0) return rc;
    li = pick_locker(st, lk, cmd->size, cmd->from_ms, cmd->to_ms, cmd->online, now_ms, NULL, NULL,
                     NULL, 0);
    if (li < 0) return LF_BOOKING_EUNAVAILABLE;
    o = json_object();
    json_object_set_new(o, "reservation_id", json_string(cmd->reservation_id));
    json_object_set_new(o, "user_id", json_string(cmd->user_id));
    json_object_set_new(o, "unit", json_string(cmd->unit ? cmd->unit : ""));
    json_object_set_new(o, "locker", json_string(lk->ids[li]));
    json_object_set_new(o, "size", json_string(sz));
    json_object_set_new(o, "from", time_json(cmd->from_ms));
    json_object_set_new(o, "to", time_json(cmd->to_ms));
    json_object_set_new(o, "hold_expires_at", time_json(now_ms + cmd->hold_ms));
    json_object_set_new(o, "idempotency_key",
                        cmd->idem_key && *cmd->idem_key ? json_string(cmd->idem_key) : json_null());
    push_ev(out, cmd->reservation_id, "ReservationHeld", o);
    return 0;
}

int lf_booking_confirm(const lf_booking_state *st, const char *id, int64_t amount_cents,
                       int64_t now_ms, lf_booking_events *out)
{
    const lf_reservation *r = lf_booking_find(st, id);
    json_t *o;

    if (!r) return LF_ENOTFOUND;
    switch (lf_booking_status_at(r, now_ms)) {
    case LF_RES_CONFIRMED:
        return 0; /* an idempotent retry */
    case LF_RES_CANCELLED:
        return LF_BOOKING_ECANCELLED;
    case LF_RES_EXPIRED:
        return LF_BOOKING_EEXPIRED;
    case LF_RES_HELD:
        break;
    }
    if (now_ms >= r->to_ms) return LF_BOOKING_EWINDOW;
    o = json_pack("{s:s, s:I}", "reservation_id", r->id, "amount_cents", (json_int_t)amount_cents);
    push_ev(out, NULL, "ReservationConfirmed", o);
    return 0;
}

int lf_booking_cancel(const lf_booking_state *st, const char *id, const char *by, int64_t now_ms,
                      lf_booking_events *out)
{
    const lf_reservation *r = lf_booking_find(st, id);
    enum lf_res_status s;

    if (!r) return LF_ENOTFOUND;
    s = lf_booking_status_at(r, now_ms);
    if (s == LF_RES_CANCELLED) return LF_BOOKING_EALREADYCANC;
    if (s == LF_RES_EXPIRED) return LF_BOOKING_ENOTACTIVE;
    push_ev(out, NULL, "ReservationCancelled",
            json_pack("{s:s, s:s, s:s}", "reservation_id", r->id, "reason", "user", "by",
                      by ? by : "user"));
    if (s == LF_RES_CONFIRMED && r->amount_cents > 0)
        push_ev(out, NULL, "RefundIssued",
                json_pack("{s:s, s:I, s:s}", "reservation_id", r->id, "amount_cents",
                          (json_int_t)r->amount_cents, "reason", "user"));
    return 0;
}

int lf_booking_expire_due(const lf_booking_state *st, int64_t now_ms, lf_booking_events *out,
                          int64_t *next_ms)
{
    int64_t next = INT64_MAX;
    char eid[LF_UUID_LEN];

    for (size_t i = 0; i < st->n; i++) {
        const lf_reservation *r = &st->res[i];
        if (r->status != LF_RES_HELD) continue;
        if (r->hold_expires_ms > now_ms || out->n >= LF_BOOKING_EVENTS_MAX) {
            if (r->hold_expires_ms < next) next = r->hold_expires_ms;
            continue;
        }
        lf_booking_event_id(r->id, "", "expired", eid);
        push_ev(out, eid, "ReservationExpired",
                json_pack("{s:s, s:o}", "reservation_id", r->id, "hold_expires_at",
                          time_json(r->hold_expires_ms)));
    }
    if (next_ms) *next_ms = next;
    return 0;
}

int lf_booking_resolve_rental(const lf_booking_state *st, const lf_booking_lockers *lk,
                              const char *rental_id, const char *locker, int64_t from_ms,
                              int64_t to_ms, int64_t now_ms, lf_booking_events *out)
{
    block extra[1 + 2];
    size_t nextra = 0, handled = 0;
    char eid[LF_UUID_LEN];

    if (!rental_id || !*rental_id || strlen(rental_id) >= sizeof st->rent->rental_id) {
        lf_err_set("rental_id: missing or too long");
        return LF_EINVAL;
    }
    if (!locker || !*locker || strlen(locker) >= LF_BOOKING_LOCKER_MAX || from_ms >= to_ms) {
        lf_err_set("rental: bad locker or window");
        return LF_EINVAL;
    }
    extra[nextra++] = (block){locker, from_ms, to_ms};
    for (size_t i = 0; i < st->n && handled < 2; i++) {
        const lf_reservation *r = &st->res[i];
        const char *resolution;
        json_t *cd;
        int li;

        if (strcmp(r->locker, locker) != 0 || !res_active(r, now_ms) ||
            !overlaps(r->from_ms, r->to_ms, from_ms, to_ms))
            continue;
        handled++;
        /* the unit is evidently online (its events arrived): allotment
         * lockers are acceptable, after the others */
        li =
            pick_locker(st, lk, r->size, r->from_ms, r->to_ms, 1, now_ms, r, locker, extra, nextra);
        if (li >= 0) {
            resolution = "reassigned";
            extra[nextra++] = (block){lk->ids[li], r->from_ms, r->to_ms};
            lf_booking_event_id(rental_id, r->id, "reassigned", eid);
            push_ev(out, eid, "ReservationReassigned",
                    json_pack("{s:s, s:s, s:s, s:s, s:s}", "reservation_id", r->id, "from_locker",
                              r->locker, "to_locker", lk->ids[li], "reason", "conflict",
                              "conflicting_rental_id", rental_id));
        } else {
            resolution = "cancelled";
            lf_booking_event_id(rental_id, r->id, "cancelled", eid);
            push_ev(out, eid, "ReservationCancelled",
                    json_pack("{s:s, s:s, s:s}", "reservation_id", r->id, "reason", "conflict",
                              "by", "hub"));
            lf_booking_event_id(rental_id, r->id, "refund", eid);
            push_ev(out, eid, "RefundIssued",
                    json_pack("{s:s, s:I, s:s}", "reservation_id", r->id, "amount_cents",
                              (json_int_t)(r->status == LF_RES_CONFIRMED ? r->amount_cents : 0),
                              "reason", "conflict"));
        }
        lf_booking_event_id(rental_id, r->id, "conflict", eid);
        cd = json_pack("{s:s, s:s, s:s, s:s}", "reservation_id", r->id, "locker", locker,
                       "rental_id", rental_id, "resolution", resolution);
        json_object_set_new(cd, "from", time_json(from_ms));
        json_object_set_new(cd, "to", time_json(to_ms));
        push_ev(out, eid, "ConflictDetected", cd);
    }
    return 0;
}

int lf_booking_resolve_rejection(const lf_booking_state *st, const lf_booking_lockers *lk,
                                 const char *id, const char *locker, int64_t now_ms,
                                 lf_booking_events *out)
{
    const lf_reservation *r = lf_booking_find(st, id);
    block extra[1];
    char eid[LF_UUID_LEN], kind[LF_BOOKING_LOCKER_MAX + 40];
    int li;

    if (!locker || !*locker || strlen(locker) >= LF_BOOKING_LOCKER_MAX) {
        lf_err_set("locker: missing or too long");
        return LF_EINVAL;
    }
    /* already moved, cancelled or over: the rejection is stale */
    if (!r || !res_active(r, now_ms) || strcmp(r->locker, locker) != 0 || now_ms >= r->to_ms)
        return 0;
    /* the unit says the locker is taken for this window: keep it blocked */
    extra[0] = (block){locker, r->from_ms, r->to_ms};
    li = pick_locker(st, lk, r->size, r->from_ms, r->to_ms, 1, now_ms, r, locker, extra, 1);
    if (li >= 0) {
        snprintf(kind, sizeof kind, "rejected-reassigned:%d:%s", r->reassigned, locker);
        lf_booking_event_id(r->id, "", kind, eid);
        push_ev(out, eid, "ReservationReassigned",
                json_pack("{s:s, s:s, s:s, s:s}", "reservation_id", r->id, "from_locker", r->locker,
                          "to_locker", lk->ids[li], "reason", "unit_rejected"));
        return 0;
    }
    snprintf(kind, sizeof kind, "rejected-cancelled:%d:%s", r->reassigned, locker);
    lf_booking_event_id(r->id, "", kind, eid);
    push_ev(out, eid, "ReservationCancelled",
            json_pack("{s:s, s:s, s:s}", "reservation_id", r->id, "reason", "unit_rejected", "by",
                      "hub"));
    if (r->status == LF_RES_CONFIRMED && r->amount_cents > 0) {
        snprintf(kind, sizeof kind, "rejected-refund:%d:%s", r->reassigned, locker);
        lf_booking_event_id(r->id, "", kind, eid);
        push_ev(out, eid, "RefundIssued",
                json_pack("{s:s, s:I, s:s}", "reservation_id", r->id, "amount_cents",
                          (json_int_t)r->amount_cents, "reason", "unit_rejected"));
    }
    return 0;
}
