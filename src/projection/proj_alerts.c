/*
 * proj_alerts.c — the `alerts` projection: what an operator should look
 * at. One row per alert, id = the position of the event that raised it.
 *   hardware_error   HardwareError (unitlog-*); cleared by HardwareOnline
 *                    of the same component
 *   conflict         ConflictDetected (bookings-*); informational, already
 *                    resolved by compensating events (active = 0)
 *   unit_offline     UnitWentOffline (unit-*); cleared by UnitCameOnline.
 *                    "Offline too long" is a read-time filter (the API's
 *                    ?min_offline_ms), since apply may not read the clock.
 *   config_rejected  ConfigRejected (unit-*); cleared by ConfigApplied
 */
#include "projection/proj_util.h"

#include <jansson.h>
#include <stdio.h>

static const char schema[] =
    "CREATE TABLE alerts("
    " id INTEGER PRIMARY KEY, unit TEXT NOT NULL, kind TEXT NOT NULL, component TEXT,"
    " message TEXT NOT NULL, at INTEGER NOT NULL, active INTEGER NOT NULL,"
    " cleared_at INTEGER);"
    "CREATE INDEX alerts_unit ON alerts(unit, kind, active);"
    "CREATE INDEX alerts_active ON alerts(active, id);";

static int raise_alert(sqlite3 *db, const lf_event *ev, const char *unit, const char *kind,
                       const char *component, const char *msg, int active)
{
    sqlite3_stmt *st = lf_projection_stmt(
        db, "INSERT OR IGNORE INTO alerts(id, unit, kind, component, message, at, active,"
            " cleared_at) VALUES (?,?,?,?,?,?,?,?)");
    if (!st) return LF_EIO;
    sqlite3_bind_int64(st, 1, ev->position);
    sqlite3_bind_text(st, 2, unit, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
    if (component)
        sqlite3_bind_text(st, 4, component, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, 4);
    sqlite3_bind_text(st, 5, msg, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 6, ev->time_ms);
    sqlite3_bind_int(st, 7, active);
    if (active)
        sqlite3_bind_null(st, 8);
    else
        sqlite3_bind_int64(st, 8, ev->time_ms);
    return lf_proj_step(db, st);
}

static int clear_alerts(sqlite3 *db, const lf_event *ev, const char *unit, const char *kind,
                        const char *component)
{
    sqlite3_stmt *st = lf_projection_stmt(
        db, "UPDATE alerts SET active = 0, cleared_at = ? WHERE unit = ? AND kind = ?"
            " AND active = 1 AND (? IS NULL OR component = ?)");
    if (!st) return LF_EIO;
    sqlite3_bind_int64(st, 1, ev->time_ms);
    sqlite3_bind_text(st, 2, unit, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
    if (component) {
        sqlite3_bind_text(st, 4, component, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 5, component, -1, SQLITE_TRANSIENT);
    }
    return lf_proj_step(db, st);
}

static const char *jstr(json_t *d, const char *k, const char *def)
{
    const char *s = json_string_value(json_object_get(d, k));
    return s ? s : def;
}

static int apply(sqlite3 *db, const lf_event *ev, void *ctx)
{
    (void)ctx;
    const char *t = ev->type, *unit;
    int which = 0;
    if ((unit = lf_proj_stream_tail(ev->stream, "unitlog-"))) {
        if (strcmp(t, "HardwareError") == 0)
            which = 1;
        else if (strcmp(t, "HardwareOnline") == 0)
            which = 2;
    } else if ((unit = lf_proj_stream_tail(ev->stream, "bookings-"))) {
        if (strcmp(t, "ConflictDetected") == 0) which = 3;
    } else if ((unit = lf_proj_stream_tail(ev->stream, "unit-"))) {
        if (strcmp(t, "UnitWentOffline") == 0)
            which = 4;
        else if (strcmp(t, "UnitCameOnline") == 0)
            which = 5;
        else if (strcmp(t, "ConfigRejected") == 0)
            which = 6;
        else if (strcmp(t, "ConfigApplied") == 0)
            which = 7;
    }
    if (!which) return 0;
    json_t *d = json_loads(ev->data, 0, NULL);
    char msg[512];
    int rc = 0;
    switch (which) {
    case 1: {
        const char *comp = jstr(d, "component", "unknown");
        const char *locker = jstr(d, "locker", NULL);
        snprintf(msg, sizeof msg, "%.64s: %.300s%s%.16s", comp, jstr(d, "message", ""),
                 locker ? " (locker " : "", locker ? locker : "");
        if (locker) strncat(msg, ")", sizeof msg - strlen(msg) - 1);
        rc = raise_alert(db, ev, unit, "hardware_error", comp, msg, 1);
        break;
    }
    case 2:
        rc = clear_alerts(db, ev, unit, "hardware_error", jstr(d, "component", "unknown"));
        break;
    case 3:
        snprintf(msg, sizeof msg,
                 "reservation %.40s on locker %.16s collided with rental %.40s: %.20s",
                 jstr(d, "reservation_id", "?"), jstr(d, "locker", "?"), jstr(d, "rental_id", "?"),
                 jstr(d, "resolution", "?"));
        rc = raise_alert(db, ev, unit, "conflict", NULL, msg, 0);
        break;
    case 4:
        rc = clear_alerts(db, ev, unit, "unit_offline", NULL); /* one open at a time */
        snprintf(msg, sizeof msg, "offline: %.32s%s%.300s", jstr(d, "reason", "unknown"),
                 jstr(d, "detail", "")[0] ? " — " : "", jstr(d, "detail", ""));
        if (rc == 0) rc = raise_alert(db, ev, unit, "unit_offline", NULL, msg, 1);
        break;
    case 5:
        rc = clear_alerts(db, ev, unit, "unit_offline", NULL);
        break;
    case 6:
        snprintf(msg, sizeof msg, "config version %lld rejected: %.300s",
                 (long long)json_integer_value(json_object_get(d, "version")),
                 jstr(d, "reason", ""));
        rc = raise_alert(db, ev, unit, "config_rejected", NULL, msg, 1);
        break;
    case 7:
        rc = clear_alerts(db, ev, unit, "config_rejected", NULL);
        break;
    }
    json_decref(d);
    return rc;
}

const lf_projection_def lf_proj_alerts = {"alerts", 1, schema, apply, NULL, NULL};
