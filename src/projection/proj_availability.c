/*
 * proj_availability.c — the `availability` read model: every unit's
 * lockers (from UnitRegistered) and the intervals that take them
 * (reservations held or confirmed, walk-up rentals learned through
 * conflicts). Free lockers of a size for [from, to) at time now:
 *
 *   SELECT count(*) FROM lockers l WHERE l.unit = :u AND l.size = :s
 *     AND NOT EXISTS (SELECT 1 FROM taken t WHERE t.unit = l.unit
 *       AND t.locker = l.locker AND t.from_ms < :to AND t.to_ms > :from
 *       AND (t.kind != 'held' OR t.hold_expires_ms > :now))
 *
 * The hub answers GET /v1/availability from the booking service's memory
 * (faster, and the same state decisions use); this projection is for
 * dashboards, reports and rebuild checks, and its position is what
 * ?min_position waits for on that endpoint.
 */
#include "projection/proj_util.h"

#include <string.h>

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS lockers(unit TEXT NOT NULL, locker TEXT NOT NULL,"
    " size TEXT NOT NULL, allotment INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(unit, locker));"
    "CREATE TABLE IF NOT EXISTS taken(id TEXT PRIMARY KEY, unit TEXT NOT NULL,"
    " locker TEXT NOT NULL, kind TEXT NOT NULL, from_ms INTEGER NOT NULL,"
    " to_ms INTEGER NOT NULL, hold_expires_ms INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS taken_locker ON taken(unit, locker, from_ms);";

static const char *str(json_t *d, const char *k)
{
    json_t *v = json_object_get(d, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int run(sqlite3 *db, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : LF_EIO;
    if (rc) lf_err_set("availability projection: %s", sqlite3_errmsg(db));
    sqlite3_reset(st);
    return rc;
}

/* sql is a string literal: the runner caches its statement by pointer. */
static sqlite3_stmt *prep(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = lf_projection_stmt(db, sql);
    if (!st) lf_err_set("availability projection: %s", sqlite3_errmsg(db));
    return st;
}

static int apply_unit(sqlite3 *db, json_t *d)
{
    const char *unit = str(d, "name");
    json_t *lockers = json_object_get(d, "lockers"), *allot = json_object_get(d, "allotment");
    size_t i;
    json_t *l;
    if (!unit || !json_is_array(lockers)) return 0;
    json_array_foreach(lockers, i, l)
    {
        const char *id = str(l, "id"), *size = str(l, "size");
        int in_allot = 0;
        size_t j;
        json_t *a;
        sqlite3_stmt *st;
        if (!id || !size) continue;
        if (json_is_array(allot))
            json_array_foreach(allot, j, a) if (json_is_string(a) &&
                                                strcmp(json_string_value(a), id) == 0) in_allot = 1;
        if (!(st = prep(db, "INSERT OR REPLACE INTO lockers(unit, locker, size, allotment)"
                            " VALUES(?, ?, ?, ?)")))
            return LF_EIO;
        sqlite3_bind_text(st, 1, unit, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, size, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 4, in_allot);
        if (run(db, st) != 0) return LF_EIO;
    }
    return 0;
}

/* The members of a booking event this projection reads, by index: from
 * the top-level scanner, or from jansson when it cannot decide. */
enum { F_ID, F_LOCKER, F_FROM, F_TO, F_HOLD, F_TO_LOCKER, F_RENTAL, NF };
static const char *const fkeys[NF] = {"reservation_id",  "locker",    "from",     "to",
                                      "hold_expires_at", "to_locker", "rental_id"};

static int64_t time_at(const char *s)
{
    int64_t ms = 0;
    if (!s || lf_time_parse(s, &ms) != 0) return 0;
    return ms;
}

static int apply_booking(sqlite3 *db, const lf_event *ev, const char *const *f)
{
    const char *id = f[F_ID], *t = ev->type, *unit = ev->stream + 9;
    sqlite3_stmt *st = NULL;
    if (!id) return 0;
    if (strcmp(t, "ReservationHeld") == 0) {
        const char *locker = f[F_LOCKER];
        if (!locker) return 0;
        if (!(st = prep(db, "INSERT OR IGNORE INTO taken(id, unit, locker, kind, from_ms, to_ms,"
                            " hold_expires_ms) VALUES(?, ?, ?, 'held', ?, ?, ?)")))
            return LF_EIO;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, unit, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, locker, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, time_at(f[F_FROM]));
        sqlite3_bind_int64(st, 5, time_at(f[F_TO]));
        sqlite3_bind_int64(st, 6, time_at(f[F_HOLD]));
        return run(db, st);
    }
    if (strcmp(t, "ReservationConfirmed") == 0) {
        if (!(st = prep(db, "UPDATE taken SET kind = 'confirmed' WHERE id = ?"))) return LF_EIO;
    } else if (strcmp(t, "ReservationCancelled") == 0 || strcmp(t, "ReservationExpired") == 0) {
        if (!(st = prep(db, "DELETE FROM taken WHERE id = ?"))) return LF_EIO;
    } else if (strcmp(t, "ReservationReassigned") == 0) {
        const char *to = f[F_TO_LOCKER];
        if (!to || !(st = prep(db, "UPDATE taken SET locker = ?2 WHERE id = ?1")))
            return to ? LF_EIO : 0;
        sqlite3_bind_text(st, 2, to, -1, SQLITE_STATIC);
    } else if (strcmp(t, "ConflictDetected") == 0) {
        const char *rental = f[F_RENTAL], *locker = f[F_LOCKER];
        int64_t from = time_at(f[F_FROM]), to = time_at(f[F_TO]);
        if (!rental || !locker || from >= to) return 0;
        if (!(st = prep(db, "INSERT OR IGNORE INTO taken(id, unit, locker, kind, from_ms, to_ms)"
                            " VALUES('rental:' || ?, ?, ?, 'rental', ?, ?)")))
            return LF_EIO;
        sqlite3_bind_text(st, 1, rental, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, unit, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, locker, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, from);
        sqlite3_bind_int64(st, 5, to);
        return run(db, st);
    } else {
        return 0;
    }
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    return run(db, st);
}

static int apply(sqlite3 *db, const lf_event *ev, void *ctx)
{
    json_t *d = NULL;
    int rc = 0, booking = strncmp(ev->stream, "bookings-", 9) == 0;
    (void)ctx;
    if (!booking &&
        !(strncmp(ev->stream, "unit-", 5) == 0 && strcmp(ev->type, "UnitRegistered") == 0))
        return 0;
    if (booking && strncmp(ev->type, "Reservation", 11) != 0 &&
        strcmp(ev->type, "ConflictDetected") != 0)
        return 0;
    if (booking) {
        /* the hot path (two booking events per reservation): no tree */
        char buf[1024];
        const char *f[NF];
        if (lf_proj_json_strs(ev->data, fkeys, NF, f, buf, sizeof buf) == 0)
            return apply_booking(db, ev, f);
    }
    d = json_loads(ev->data, 0, NULL);
    if (!json_is_object(d)) goto out;
    if (booking) {
        const char *f[NF];
        for (int i = 0; i < NF; i++)
            f[i] = str(d, fkeys[i]);
        rc = apply_booking(db, ev, f);
    } else {
        rc = apply_unit(db, d);
    }
out:
    json_decref(d);
    return rc;
}

const lf_projection_def lf_proj_availability = {"availability", 1, schema, apply, NULL, NULL};
