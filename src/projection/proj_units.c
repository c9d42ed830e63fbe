/*
 * proj_units.c — the `units` projection: the operator's status table
 * (DESIGN §1.2) from the unit-{name} streams: registration (lockers and
 * sizes), presence transitions, config desired/delivery ledger. The live
 * part (last response time, online right now) comes from the fleet's
 * memory and is merged in by the API (api_admin.c).
 */
#include "projection/proj_util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

static const char schema[] =
    "CREATE TABLE units("
    " name TEXT PRIMARY KEY, hash TEXT NOT NULL, display_name TEXT NOT NULL,"
    " url TEXT NOT NULL, presence TEXT NOT NULL, uplink TEXT NOT NULL,"
    " heartbeat_interval_ms INTEGER, lockers TEXT NOT NULL, n_lockers INTEGER NOT NULL,"
    " n_s INTEGER NOT NULL, n_m INTEGER NOT NULL, n_l INTEGER NOT NULL,"
    " registered_at INTEGER NOT NULL,"
    " online INTEGER NOT NULL DEFAULT 0, last_online_at INTEGER, last_offline_at INTEGER,"
    " offline_reason TEXT, last_response_ms INTEGER,"
    " config_desired INTEGER NOT NULL DEFAULT 0, config_applied INTEGER NOT NULL DEFAULT 0,"
    " last_config_pushed_at INTEGER, config_last_result TEXT, config_next_attempt_at INTEGER,"
    " config_attempts INTEGER NOT NULL DEFAULT 0, config_rejected_reason TEXT);";

static int registered(sqlite3 *db, const char *name, json_t *d, int64_t t)
{
    static const char *sql =
        "INSERT INTO units(name, hash, display_name, url, presence, uplink, heartbeat_interval_ms,"
        " lockers, n_lockers, n_s, n_m, n_l, registered_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT(name) DO UPDATE SET display_name = excluded.display_name,"
        " url = excluded.url, presence = excluded.presence, uplink = excluded.uplink,"
        " heartbeat_interval_ms = excluded.heartbeat_interval_ms, lockers = excluded.lockers,"
        " n_lockers = excluded.n_lockers, n_s = excluded.n_s, n_m = excluded.n_m,"
        " n_l = excluded.n_l";
    json_t *ls = json_object_get(d, "lockers"), *v;
    size_t i;
    int ns = 0, nm = 0, nl = 0;
    json_array_foreach(ls, i, v)
    {
        const char *sz = json_string_value(json_object_get(v, "size"));
        if (!sz) continue;
        if (sz[0] == 'S')
            ns++;
        else if (sz[0] == 'M')
            nm++;
        else if (sz[0] == 'L')
            nl++;
    }
    char hash[17];
    lf_hash_hex(name, hash);
    char *lockers = json_dumps(ls ? ls : json_array(), JSON_COMPACT);
    const char *dn = json_string_value(json_object_get(d, "display_name"));
    const char *url = json_string_value(json_object_get(d, "url"));
    const char *pres = json_string_value(json_object_get(d, "presence"));
    const char *up = json_string_value(json_object_get(d, "uplink"));
    sqlite3_stmt *st = lf_projection_stmt(db, sql);
    int rc = LF_EIO;
    if (!st || !lockers) goto out;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, dn ? dn : name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, url ? url : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, pres ? pres : "poll", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, up ? up : "push", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, json_integer_value(json_object_get(d, "heartbeat_interval_ms")));
    sqlite3_bind_text(st, 8, lockers, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 9, (int)json_array_size(ls));
    sqlite3_bind_int(st, 10, ns);
    sqlite3_bind_int(st, 11, nm);
    sqlite3_bind_int(st, 12, nl);
    sqlite3_bind_int64(st, 13, t);
    rc = lf_proj_step(db, st);
out:
    free(lockers);
    return rc;
}

static int64_t jint(json_t *d, const char *k, int64_t def)
{
    json_t *v = json_object_get(d, k);
    return json_is_integer(v) ? json_integer_value(v) : def;
}

static int apply(sqlite3 *db, const lf_event *ev, void *ctx)
{
    (void)ctx;
    const char *name = lf_proj_stream_tail(ev->stream, "unit-");
    if (!name) return 0;
    const char *t = ev->type;
    if (strcmp(t, "UnitRegistered") && strcmp(t, "UnitCameOnline") &&
        strcmp(t, "UnitWentOffline") && strcmp(t, "ConfigDesired") &&
        strcmp(t, "ConfigDeliveryAttempted") && strcmp(t, "ConfigApplied") &&
        strcmp(t, "ConfigRejected"))
        return 0;
    json_t *d = json_loads(ev->data, 0, NULL);
    if (!d) return 0; /* the store only holds objects; be lenient anyway */
    int rc = 0;
    sqlite3_stmt *st = NULL;
    if (strcmp(t, "UnitRegistered") == 0) {
        rc = registered(db, name, d, ev->time_ms);
        goto out;
    }
    if (strcmp(t, "UnitCameOnline") == 0) {
        st = lf_projection_stmt(db, "UPDATE units SET online = 1, last_online_at = ?,"
                                    " last_response_ms = ?, offline_reason = NULL WHERE name = ?");
        if (!st) goto fail;
        sqlite3_bind_int64(st, 1, ev->time_ms);
        json_t *r = json_object_get(d, "response_ms");
        if (json_is_number(r))
            sqlite3_bind_int64(st, 2, (int64_t)json_number_value(r));
        else
            sqlite3_bind_null(st, 2);
        sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
    } else if (strcmp(t, "UnitWentOffline") == 0) {
        st = lf_projection_stmt(db, "UPDATE units SET online = 0, last_offline_at = ?,"
                                    " offline_reason = ?, last_response_ms = NULL WHERE name = ?");
        if (!st) goto fail;
        const char *reason = json_string_value(json_object_get(d, "reason"));
        sqlite3_bind_int64(st, 1, ev->time_ms);
        sqlite3_bind_text(st, 2, reason ? reason : "unknown", -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
    } else if (strcmp(t, "ConfigDesired") == 0) {
        st = lf_projection_stmt(db, "UPDATE units SET config_desired = max(config_desired, ?),"
                                    " config_attempts = 0 WHERE name = ?");
        if (!st) goto fail;
        sqlite3_bind_int64(st, 1, jint(d, "version", 0));
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    } else if (strcmp(t, "ConfigDeliveryAttempted") == 0) {
        const char *res = json_string_value(json_object_get(d, "result"));
        int sent = res && strcmp(res, "sent") == 0;
        const char *next = json_string_value(json_object_get(d, "next_attempt_at"));
        int64_t next_ms = 0;
        st = lf_projection_stmt(
            db, "UPDATE units SET config_last_result = ?, config_next_attempt_at = ?,"
                " config_attempts = config_attempts + 1,"
                " last_config_pushed_at = CASE WHEN ? THEN ? ELSE last_config_pushed_at END"
                " WHERE name = ?");
        if (!st) goto fail;
        sqlite3_bind_text(st, 1, res ? res : "failed", -1, SQLITE_TRANSIENT);
        if (next && lf_time_parse(next, &next_ms) == 0)
            sqlite3_bind_int64(st, 2, next_ms);
        else
            sqlite3_bind_null(st, 2);
        sqlite3_bind_int(st, 3, sent);
        sqlite3_bind_int64(st, 4, ev->time_ms);
        sqlite3_bind_text(st, 5, name, -1, SQLITE_STATIC);
    } else if (strcmp(t, "ConfigApplied") == 0) {
        st = lf_projection_stmt(db, "UPDATE units SET config_applied = max(config_applied, ?),"
                                    " last_config_pushed_at = ?, config_last_result = 'applied',"
                                    " config_next_attempt_at = NULL WHERE name = ?");
        if (!st) goto fail;
        sqlite3_bind_int64(st, 1, jint(d, "applied_version", jint(d, "version", 0)));
        sqlite3_bind_int64(st, 2, ev->time_ms);
        sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
    } else { /* ConfigRejected */
        st = lf_projection_stmt(db, "UPDATE units SET config_rejected_reason = ?,"
                                    " config_last_result = 'rejected',"
                                    " config_next_attempt_at = NULL WHERE name = ?");
        if (!st) goto fail;
        const char *reason = json_string_value(json_object_get(d, "reason"));
        sqlite3_bind_text(st, 1, reason ? reason : "", -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    }
    rc = lf_proj_step(db, st);
    goto out;
fail:
    rc = LF_EIO;
out:
    json_decref(d);
    return rc;
}

const lf_projection_def lf_proj_units = {"units", 1, schema, apply, NULL, NULL};
