/*
 * proj_revenue.c — the `revenue` projection: money per unit per day (UTC,
 * from the event time). Walk-up payments come from the unit's own log
 * (PaymentSucceeded in unitlog-{unit}); app reservations from
 * ReservationConfirmed.amount_cents in bookings-{unit}; refunds
 * (RefundIssued) are kept apart so net = walkup + reservations - refunds.
 * Amounts are integer cents; currency is not mixed per unit.
 */
#include "projection/proj_util.h"

#include <jansson.h>

static const char schema[] =
    "CREATE TABLE revenue("
    " unit TEXT NOT NULL, day TEXT NOT NULL,"
    " walkup_cents INTEGER NOT NULL DEFAULT 0, walkup_count INTEGER NOT NULL DEFAULT 0,"
    " reservation_cents INTEGER NOT NULL DEFAULT 0,"
    " reservation_count INTEGER NOT NULL DEFAULT 0,"
    " refund_cents INTEGER NOT NULL DEFAULT 0, refund_count INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY(unit, day)) WITHOUT ROWID;";

static const char *sql_walkup =
    "INSERT INTO revenue(unit, day, walkup_cents, walkup_count) VALUES (?, ?, ?, 1)"
    " ON CONFLICT(unit, day) DO UPDATE SET walkup_cents = walkup_cents + excluded.walkup_cents,"
    " walkup_count = walkup_count + 1";
static const char *sql_resv =
    "INSERT INTO revenue(unit, day, reservation_cents, reservation_count) VALUES (?, ?, ?, 1)"
    " ON CONFLICT(unit, day) DO UPDATE SET"
    " reservation_cents = reservation_cents + excluded.reservation_cents,"
    " reservation_count = reservation_count + 1";
static const char *sql_refund =
    "INSERT INTO revenue(unit, day, refund_cents, refund_count) VALUES (?, ?, ?, 1)"
    " ON CONFLICT(unit, day) DO UPDATE SET refund_cents = refund_cents + excluded.refund_cents,"
    " refund_count = refund_count + 1";

static int apply(sqlite3 *db, const lf_event *ev, void *ctx)
{
    (void)ctx;
    const char *sql = NULL, *unit;
    if ((unit = lf_proj_stream_tail(ev->stream, "unitlog-"))) {
        if (strcmp(ev->type, "PaymentSucceeded") == 0) sql = sql_walkup;
    } else if ((unit = lf_proj_stream_tail(ev->stream, "bookings-"))) {
        if (strcmp(ev->type, "ReservationConfirmed") == 0)
            sql = sql_resv;
        else if (strcmp(ev->type, "RefundIssued") == 0)
            sql = sql_refund;
    }
    if (!sql) return 0;
    json_t *d = json_loads(ev->data, 0, NULL);
    json_t *amt = json_object_get(d, "amount_cents");
    int rc = 0;
    if (!json_is_integer(amt)) goto out; /* nothing to count */
    char day[LF_TIME_LEN];
    lf_time_format(ev->time_ms, day);
    day[10] = '\0'; /* YYYY-MM-DD */
    sqlite3_stmt *st = lf_projection_stmt(db, sql);
    if (!st) {
        rc = LF_EIO;
        goto out;
    }
    sqlite3_bind_text(st, 1, unit, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, day, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, json_integer_value(amt));
    rc = lf_proj_step(db, st);
out:
    json_decref(d);
    return rc;
}

const lf_projection_def lf_proj_revenue = {"revenue", 1, schema, apply, NULL};
