/*
 * proj_reservations.c — the `reservations` read model: one row per
 * reservation (status, locker, window, amounts, delivery state to the
 * unit), from the `bookings-{unit}` streams and the reservation delivery
 * ledger of `unit-{name}`; plus the conflicts that touched them.
 * Serves GET /v1/reservations and GET /v1/reservations/{id}.
 *
 * "held" rows stay "held" here after their hold expiry until the
 * ReservationExpired event arrives (apply reads no clock); readers show a
 * held row past hold_expires_ms as "expired".
 */
#include "projection/proj_util.h"

#include <string.h>

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS reservations("
    " id TEXT PRIMARY KEY, user_id TEXT NOT NULL, unit TEXT NOT NULL, locker TEXT NOT NULL,"
    " size TEXT NOT NULL, from_ms INTEGER NOT NULL, to_ms INTEGER NOT NULL,"
    " status TEXT NOT NULL, hold_expires_ms INTEGER NOT NULL, amount_cents INTEGER NOT NULL "
    " DEFAULT 0, refunded_cents INTEGER NOT NULL DEFAULT 0, reason TEXT,"
    " delivery TEXT NOT NULL DEFAULT 'pending', reassigned INTEGER NOT NULL DEFAULT 0,"
    " idempotency_key TEXT, created_position INTEGER NOT NULL, position INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS reservations_user ON reservations(user_id, created_position);"
    "CREATE TABLE IF NOT EXISTS reservation_conflicts("
    " reservation_id TEXT NOT NULL, rental_id TEXT NOT NULL, unit TEXT NOT NULL,"
    " locker TEXT NOT NULL, resolution TEXT NOT NULL, position INTEGER NOT NULL,"
    " PRIMARY KEY(reservation_id, rental_id));";

static const char *str(json_t *d, const char *k)
{
    json_t *v = json_object_get(d, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Runs sql (a string literal: the runner caches its prepared statement by
 * pointer) with the bound values: 's' text (NULL binds NULL), 'i' int64. */
static int exec(sqlite3 *db, const char *sql, const char *fmt, ...)
{
    sqlite3_stmt *st = lf_projection_stmt(db, sql);
    va_list ap;
    int rc = LF_EIO;

    if (!st) {
        lf_err_set("reservations projection: %s", sqlite3_errmsg(db));
        return LF_EIO;
    }
    va_start(ap, fmt);
    for (int i = 0; fmt[i]; i++) {
        if (fmt[i] == 's') {
            const char *v = va_arg(ap, const char *);
            if (v)
                sqlite3_bind_text(st, i + 1, v, -1, SQLITE_STATIC); /* stepped before return */
            else
                sqlite3_bind_null(st, i + 1);
        } else {
            sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
        }
    }
    va_end(ap);
    if (sqlite3_step(st) != SQLITE_DONE) {
        lf_err_set("reservations projection: %s", sqlite3_errmsg(db));
        goto out;
    }
    rc = 0;
out:
    sqlite3_reset(st);
    return rc;
}

/* The members of a booking event this projection reads, by index: from
 * the top-level scanner, or from jansson when it cannot decide. */
enum {
    F_ID,
    F_USER,
    F_LOCKER,
    F_SIZE,
    F_FROM,
    F_TO,
    F_HOLD,
    F_IDEM,
    F_REASON,
    F_TO_LOCKER,
    F_RENTAL,
    F_RESOLUTION,
    NF
};
static const char *const fkeys[NF] = {
    "reservation_id",  "user_id",         "locker", "size",      "from",      "to",
    "hold_expires_at", "idempotency_key", "reason", "to_locker", "rental_id", "resolution"};

static int64_t time_at(const char *s)
{
    int64_t ms = 0;
    if (!s || lf_time_parse(s, &ms) != 0) return 0;
    return ms;
}

/* amount_cents of ev (d: its parsed data, or NULL: scan the text); 0 when
 * absent or not an integer. */
static int64_t amount_of(const lf_event *ev, json_t *d)
{
    int64_t v = 0;
    if (!d) {
        int got = lf_proj_json_i64(ev->data, "amount_cents", &v);
        if (got >= 0) return got ? v : 0;
        json_t *p = json_loads(ev->data, 0, NULL);
        v = p ? amount_of(ev, p) : 0;
        json_decref(p);
        return v;
    }
    json_t *a = json_object_get(d, "amount_cents");
    return json_is_integer(a) ? (int64_t)json_integer_value(a) : 0;
}

static int apply_booking(sqlite3 *db, const lf_event *ev, const char *const *f, json_t *d)
{
    const char *id = f[F_ID], *t = ev->type;
    int64_t pos = ev->position;

    if (!id) return 0; /* malformed: nothing to show */
    if (strcmp(t, "ReservationHeld") == 0) {
        const char *user = f[F_USER], *locker = f[F_LOCKER], *size = f[F_SIZE];
        if (!user || !locker || !size) return 0;
        return exec(db,
                    "INSERT OR IGNORE INTO reservations(id, user_id, unit, locker, size, from_ms,"
                    " to_ms, status, hold_expires_ms, idempotency_key, created_position, position)"
                    " VALUES(?, ?, ?, ?, ?, ?, ?, 'held', ?, ?, ?, ?)",
                    "sssssiiisii", id, user, ev->stream + 9, locker, size, time_at(f[F_FROM]),
                    time_at(f[F_TO]), time_at(f[F_HOLD]), f[F_IDEM], pos, pos);
    }
    if (strcmp(t, "ReservationConfirmed") == 0)
        return exec(db,
                    "UPDATE reservations SET status = 'confirmed', amount_cents = ?, position = ?"
                    " WHERE id = ? AND status = 'held'",
                    "iis", amount_of(ev, d), pos, id);
    if (strcmp(t, "ReservationCancelled") == 0)
        return exec(db,
                    "UPDATE reservations SET status = 'cancelled', reason = ?, position = ?"
                    " WHERE id = ?",
                    "sis", f[F_REASON] ? f[F_REASON] : "user", pos, id);
    if (strcmp(t, "ReservationExpired") == 0)
        return exec(db,
                    "UPDATE reservations SET status = 'expired', position = ?"
                    " WHERE id = ? AND status = 'held'",
                    "is", pos, id);
    if (strcmp(t, "ReservationReassigned") == 0) {
        const char *to = f[F_TO_LOCKER];
        if (!to) return 0;
        return exec(db,
                    "UPDATE reservations SET locker = ?, reassigned = reassigned + 1,"
                    " reason = 'reassigned_conflict', delivery = 'pending', position = ?"
                    " WHERE id = ?",
                    "sis", to, pos, id);
    }
    if (strcmp(t, "RefundIssued") == 0)
        return exec(db,
                    "UPDATE reservations SET refunded_cents = refunded_cents + ?, position = ?"
                    " WHERE id = ?",
                    "iis", amount_of(ev, d), pos, id);
    if (strcmp(t, "ConflictDetected") == 0) {
        const char *rental = f[F_RENTAL], *locker = f[F_LOCKER];
        const char *res = f[F_RESOLUTION];
        if (!rental || !locker || !res) return 0;
        return exec(db,
                    "INSERT OR IGNORE INTO reservation_conflicts(reservation_id, rental_id, unit,"
                    " locker, resolution, position) VALUES(?, ?, ?, ?, ?, ?)",
                    "sssssi", id, rental, ev->stream + 9, locker, res, pos);
    }
    return 0;
}

static int apply_delivery(sqlite3 *db, const lf_event *ev, json_t *d)
{
    const char *id = str(d, "reservation_id"), *action = str(d, "action");
    if (!id || (action && strcmp(action, "reserve") != 0)) return 0;
    if (strcmp(ev->type, "ReservationDelivered") == 0) {
        const char *result = str(d, "result");
        const char *state = result && strcmp(result, "rejected") == 0 ? "rejected" : "delivered";
        return exec(db, "UPDATE reservations SET delivery = ?, position = ? WHERE id = ?", "sis",
                    state, ev->position, id);
    }
    return 0;
}

static int apply(sqlite3 *db, const lf_event *ev, void *ctx)
{
    json_t *d = NULL;
    int rc = 0;
    int booking = strncmp(ev->stream, "bookings-", 9) == 0;
    (void)ctx;

    if (!booking &&
        !(strncmp(ev->stream, "unit-", 5) == 0 && strncmp(ev->type, "ReservationDeliver", 18) == 0))
        return 0;
    if (booking) {
        /* the hot path (two booking events per reservation): no tree */
        char buf[2048];
        const char *f[NF];
        if (lf_proj_json_strs(ev->data, fkeys, NF, f, buf, sizeof buf) == 0)
            return apply_booking(db, ev, f, NULL);
    }
    d = json_loads(ev->data, 0, NULL);
    if (!json_is_object(d)) goto out;
    if (booking) {
        const char *f[NF];
        for (int i = 0; i < NF; i++)
            f[i] = str(d, fkeys[i]);
        rc = apply_booking(db, ev, f, d);
    } else {
        rc = apply_delivery(db, ev, d);
    }
out:
    json_decref(d);
    return rc;
}

const lf_projection_def lf_proj_reservations = {"reservations", 1, schema, apply, NULL, NULL};
