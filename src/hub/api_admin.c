/*
 * api_admin.c — the admin endpoints: users and units (registration,
 * listing, one unit) and the alerts list.
 *
 * Writes append one event (UserCreated / UnitRegistered) with
 * LF_EXPECT_NO_STREAM, so a second registration of a name is a 409 and
 * never a silent overwrite; then update the in-memory registry at once so
 * the new token works on the next request. Reads come from the units and
 * alerts projections (?min_position honoured), merged with the fleet's
 * live presence (lf_fleet_presence) for units.
 */
#include "hub/fleet.h"
#include "hub/registry.h"
#include "hub/router.h"
#include "projection/projection.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define LOCKERS_MAX 128
#define UNITS_PAGE_MAX 1000

/* ---- validation helpers ---------------------------------------------- */

/* Optional string field: absent/null -> def. 400 naming the field when not
 * a string or longer than max. */
static int field_str(lf_ctx *c, json_t *o, const char *key, size_t max, const char *def,
                     const char **out)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_string(v) || json_string_length(v) > max ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        lf_http_error(c->resp, 400, "invalid_field",
                      "field '%s' must be a string of at most %zu bytes", key, max);
        return LF_EINVAL;
    }
    *out = json_string_value(v);
    return 0;
}

static int has_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return 1;
    return 0;
}

static int locker_id_valid(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 15) return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_'))
            return 0;
    }
    return 1;
}

static json_t *position_of(const lf_append_result *r)
{
    return json_integer(r->last_position);
}

/* ---- POST /v1/users ----------------------------------------------------- */

static void users_create(lf_ctx *c)
{
    json_t *body = lf_http_body_json(c->req, c->resp), *data = NULL;
    char *text = NULL;
    const char *name;
    if (!body) goto out;
    if (field_str(c, body, "name", 128, NULL, &name)) goto out;
    if (!name || !*name || has_ctl(name)) {
        lf_http_error(c->resp, 400, "invalid_field",
                      "field 'name' is required: 1..128 bytes, no control characters");
        goto out;
    }
    char id[LF_UUID_LEN], tok[65], hash[65];
    lf_uuid_v4(id);
    lf_token_new(tok);
    lf_token_hash(tok, hash);
    data = json_pack("{s:s,s:s,s:s}", "user_id", id, "name", name, "token_hash", hash);
    text = json_dumps(data, JSON_COMPACT);
    char stream[100];
    snprintf(stream, sizeof stream, "user-%s", id);
    char meta[160];
    snprintf(meta, sizeof meta, "{\"source\":\"hub\",\"node\":\"%.40s\",\"request_id\":\"%s\"}",
             c->hub->cfg.node_id, c->req->request_id);
    lf_event_in ev = {.type = "UserCreated", .data = text, .meta = meta};
    lf_append_result res;
    int rc = lf_hub_append(c->hub, stream, LF_EXPECT_NO_STREAM, &ev, 1, &res);
    if (rc) {
        lf_hub_error_rc(c, rc, "creating the user");
        goto out;
    }
    lf_registry_apply(c->hub, "UserCreated", text);
    lf_http_json(c->resp, 201,
                 json_pack("{s:s,s:s,s:s,s:o}", "user_id", id, "name", name, "token", tok,
                           "position", position_of(&res)));
    sodium_memzero(tok, sizeof tok);
out:
    free(text);
    json_decref(data);
    json_decref(body);
}

/* ---- POST /v1/units -------------------------------------------------------- */

static void units_create(lf_ctx *c)
{
    json_t *body = lf_http_body_json(c->req, c->resp), *data = NULL, *lockers = NULL, *allot = NULL,
           *out = NULL;
    char *text = NULL;
    const char *name, *dn, *url, *presence, *uplink;
    lf_hub *h = c->hub;
    if (!body) goto done;
    if (field_str(c, body, "name", 64, NULL, &name)) goto done;
    if (!name || !lf_name_valid(name)) {
        lf_http_error(c->resp, 400, "invalid_field",
                      "field 'name' is required and must match [a-z0-9-]{1,64}");
        goto done;
    }
    if (field_str(c, body, "display_name", 128, name, &dn)) goto done;
    if (has_ctl(dn)) {
        lf_http_error(c->resp, 400, "invalid_field", "field 'display_name' has control characters");
        goto done;
    }
    if (field_str(c, body, "url", 500, "", &url)) goto done;
    if (url[0] && strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        lf_http_error(c->resp, 400, "invalid_field",
                      "field 'url' must be an http:// or https:// URL");
        goto done;
    }
    if (url[0] && has_ctl(url)) {
        lf_http_error(c->resp, 400, "invalid_field", "field 'url' has control characters");
        goto done;
    }
    if (field_str(c, body, "presence", 16, url[0] ? "poll" : "heartbeat", &presence)) goto done;
    if (strcmp(presence, "poll") != 0 && strcmp(presence, "heartbeat") != 0) {
        lf_http_error(c->resp, 400, "invalid_field",
                      "field 'presence' must be \"poll\" or \"heartbeat\"");
        goto done;
    }
    if (strcmp(presence, "poll") == 0 && !url[0]) {
        lf_http_error(c->resp, 400, "invalid_field",
                      "field 'url' is required with presence \"poll\"");
        goto done;
    }
    if (field_str(c, body, "uplink", 8, "push", &uplink)) goto done;
    if (strcmp(uplink, "push") != 0 && strcmp(uplink, "pull") != 0) {
        lf_http_error(c->resp, 400, "invalid_field", "field 'uplink' must be \"push\" or \"pull\"");
        goto done;
    }
    if (strcmp(uplink, "pull") == 0 && !url[0]) {
        lf_http_error(c->resp, 400, "invalid_field",
                      "field 'url' is required with uplink \"pull\"");
        goto done;
    }
    json_t *hbi = json_object_get(body, "heartbeat_interval_ms");
    int64_t hb_ms = 10000;
    if (hbi && !json_is_null(hbi)) {
        if (!json_is_integer(hbi) || json_integer_value(hbi) < 100 ||
            json_integer_value(hbi) > 86400000) {
            lf_http_error(c->resp, 400, "invalid_field",
                          "field 'heartbeat_interval_ms' must be an integer in [100, 86400000]");
            goto done;
        }
        hb_ms = json_integer_value(hbi);
    }
    json_t *ls = json_object_get(body, "lockers");
    if (!json_is_array(ls) || json_array_size(ls) < 1 || json_array_size(ls) > LOCKERS_MAX) {
        lf_http_error(c->resp, 400, "invalid_field",
                      "field 'lockers' must be an array of 1..%d {\"id\",\"size\"}", LOCKERS_MAX);
        goto done;
    }
    lockers = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(ls, i, v)
    {
        const char *id = json_string_value(json_object_get(v, "id"));
        const char *sz = json_string_value(json_object_get(v, "size"));
        if (!json_is_object(v) || !id || !locker_id_valid(id)) {
            lf_http_error(c->resp, 400, "invalid_field",
                          "field 'lockers[%zu].id' must match [A-Za-z0-9_-]{1,15}", i);
            goto done;
        }
        if (!sz || (strcmp(sz, "S") && strcmp(sz, "M") && strcmp(sz, "L"))) {
            lf_http_error(c->resp, 400, "invalid_field",
                          "field 'lockers[%zu].size' must be \"S\", \"M\" or \"L\"", i);
            goto done;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(json_string_value(json_object_get(json_array_get(lockers, j), "id")), id) ==
                0) {
                lf_http_error(c->resp, 400, "invalid_field",
                              "field 'lockers[%zu].id': duplicate '%s'", i, id);
                goto done;
            }
        json_array_append_new(lockers, json_pack("{s:s,s:s}", "id", id, "size", sz));
    }
    allot = json_array();
    json_t *al = json_object_get(body, "allotment");
    if (al && !json_is_null(al)) {
        if (!json_is_array(al) || json_array_size(al) > json_array_size(lockers)) {
            lf_http_error(c->resp, 400, "invalid_field",
                          "field 'allotment' must be an array of locker ids of this unit");
            goto done;
        }
        json_array_foreach(al, i, v)
        {
            const char *id = json_string_value(v);
            int known = 0;
            for (size_t j = 0; id && j < json_array_size(lockers); j++)
                known |=
                    strcmp(json_string_value(json_object_get(json_array_get(lockers, j), "id")),
                           id) == 0;
            if (!known) {
                lf_http_error(c->resp, 400, "invalid_field",
                              "field 'allotment[%zu]' is not a locker id of this unit", i);
                goto done;
            }
            json_array_append_new(allot, json_string(id));
        }
    }
    char tok[65], hash[65], shard[5];
    lf_token_new(tok);
    lf_token_hash(tok, hash);
    lf_shard_of(name, h->cfg.shard_digits, shard);
    data = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:O,s:O,s:s,s:s}", "name", name, "display_name", dn,
                     "url", url, "presence", presence, "uplink", uplink, "heartbeat_interval_ms",
                     (json_int_t)hb_ms, "lockers", lockers, "allotment", allot, "shard", shard,
                     "token_hash", hash);
    text = json_dumps(data, JSON_COMPACT);
    char stream[80], meta[160];
    snprintf(stream, sizeof stream, "unit-%s", name);
    snprintf(meta, sizeof meta, "{\"source\":\"hub\",\"node\":\"%.40s\",\"request_id\":\"%s\"}",
             h->cfg.node_id, c->req->request_id);
    lf_event_in ev = {.type = "UnitRegistered", .data = text, .meta = meta};
    lf_append_result res;
    int rc = lf_hub_append(h, stream, LF_EXPECT_NO_STREAM, &ev, 1, &res);
    if (rc == LF_ECONFLICT) {
        lf_http_error(c->resp, 409, "exists", "unit '%s' is already registered", name);
        goto done;
    }
    if (rc) {
        lf_hub_error_rc(c, rc, "registering the unit");
        goto done;
    }
    lf_registry_apply(h, "UnitRegistered", text);
    lf_fleet_unit_added(h, name);
    unsigned char key[32];
    char keyhex[65];
    lf_hub_booking_key(h, name, key);
    sodium_bin2hex(keyhex, sizeof keyhex, key, sizeof key);
    sodium_memzero(key, sizeof key);
    out = json_pack("{s:s,s:s,s:s,s:s,s:o}", "name", name, "shard", shard, "token", tok,
                    "booking_key", keyhex, "position", position_of(&res));
    /* Fleet hook: fields the fleet adds to the registration answer (e.g. a
     * token the hub presents to the unit) go here. */
    char hubtok[65];
    lf_fleet_hub_token(h, name, hubtok);
    json_object_set_new(out, "hub_token", json_string(hubtok));
    sodium_memzero(hubtok, sizeof hubtok);
    lf_http_json(c->resp, 201, out);
    out = NULL;
    sodium_memzero(tok, sizeof tok);
    sodium_memzero(keyhex, sizeof keyhex);
done:
    json_decref(out);
    free(text);
    json_decref(data);
    json_decref(lockers);
    json_decref(allot);
    json_decref(body);
}

/* ---- GET /v1/units, GET /v1/units/{name} ----------------------------------- */

#define UNIT_COLS                                                                                  \
    "name, hash, display_name, url, presence, uplink, heartbeat_interval_ms, lockers,"             \
    " n_lockers, n_s, n_m, n_l, registered_at, online, last_online_at, last_offline_at,"           \
    " offline_reason, last_response_ms, config_desired, config_applied, last_config_pushed_at,"    \
    " config_last_result, config_next_attempt_at, config_attempts, config_rejected_reason"

static json_t *time_or_null(sqlite3_stmt *st, int col)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL) return json_null();
    char ts[LF_TIME_LEN];
    return json_string(lf_time_format(sqlite3_column_int64(st, col), ts));
}

static json_t *text_or_null(sqlite3_stmt *st, int col)
{
    const unsigned char *s = sqlite3_column_text(st, col);
    return s ? json_string((const char *)s) : json_null();
}

/* One unit's row: projection columns + live presence. live: filled. */
static json_t *unit_row(lf_hub *h, sqlite3_stmt *st, int detail, int *online_out)
{
    const char *name = (const char *)sqlite3_column_text(st, 0);
    const char *hash = (const char *)sqlite3_column_text(st, 1);
    char shard[5];
    snprintf(shard, sizeof shard, "%.*s", h->cfg.shard_digits, hash);
    lf_presence_state ps;
    int known = lf_fleet_presence(h, name, &ps) == 0 && ps.known;
    int online = known ? ps.online : sqlite3_column_int(st, 13);
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(name));
    json_object_set_new(o, "display_name", json_string((const char *)sqlite3_column_text(st, 2)));
    json_object_set_new(o, "shard", json_string(shard));
    json_object_set_new(o, "online", json_boolean(online));
    json_object_set_new(o, "presence", json_string((const char *)sqlite3_column_text(st, 4)));
    json_object_set_new(o, "lockers",
                        json_pack("{s:i,s:i,s:i,s:i}", "count", sqlite3_column_int(st, 8), "S",
                                  sqlite3_column_int(st, 9), "M", sqlite3_column_int(st, 10), "L",
                                  sqlite3_column_int(st, 11)));
    json_t *lr = json_null();
    if (online) {
        if (known && ps.last_response_ms >= 0)
            lr = json_integer(ps.last_response_ms);
        else if (sqlite3_column_type(st, 17) != SQLITE_NULL)
            lr = json_integer(sqlite3_column_int64(st, 17));
    }
    json_object_set_new(o, "last_response_ms", lr);
    json_t *reason = json_null();
    if (!online) {
        if (known && ps.offline_reason[0])
            reason = json_string(ps.offline_reason);
        else if (sqlite3_column_type(st, 16) != SQLITE_NULL)
            reason = text_or_null(st, 16);
        else if (!known && sqlite3_column_type(st, 14) == SQLITE_NULL)
            reason = json_string("never_seen");
    }
    json_object_set_new(o, "offline_reason", reason);
    json_object_set_new(o, "last_config_pushed_at", time_or_null(st, 20));
    json_object_set_new(o, "config_version",
                        json_pack("{s:I,s:I}", "desired", (json_int_t)sqlite3_column_int64(st, 18),
                                  "applied", (json_int_t)sqlite3_column_int64(st, 19)));
    int64_t lo = sqlite3_column_type(st, 14) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 14);
    if (known && ps.last_online_at_ms > lo) lo = ps.last_online_at_ms;
    if (known && online && ps.last_seen_at_ms > lo) lo = ps.last_seen_at_ms;
    char ts[LF_TIME_LEN];
    json_object_set_new(o, "last_online_at",
                        lo ? json_string(lf_time_format(lo, ts)) : json_null());
    if (detail) {
        json_object_set_new(o, "url", json_string((const char *)sqlite3_column_text(st, 3)));
        json_object_set_new(o, "uplink", json_string((const char *)sqlite3_column_text(st, 5)));
        json_object_set_new(o, "heartbeat_interval_ms", json_integer(sqlite3_column_int64(st, 6)));
        json_t *ls = json_loads((const char *)sqlite3_column_text(st, 7), 0, NULL);
        json_object_set_new(o, "locker_list", ls ? ls : json_array());
        json_object_set_new(o, "registered_at", time_or_null(st, 12));
        json_object_set_new(o, "last_offline_at", time_or_null(st, 15));
        json_object_set_new(o, "config",
                            json_pack("{s:I,s:I,s:o,s:o,s:I,s:o}", "desired_version",
                                      (json_int_t)sqlite3_column_int64(st, 18), "applied_version",
                                      (json_int_t)sqlite3_column_int64(st, 19), "last_result",
                                      text_or_null(st, 21), "next_attempt_at", time_or_null(st, 22),
                                      "attempts", (json_int_t)sqlite3_column_int64(st, 23),
                                      "rejected_reason", text_or_null(st, 24)));
        lf_unit_info u;
        if (lf_registry_unit(h, name, &u) == 0) {
            json_t *al = json_array();
            for (int i = 0; i < u.nallotment; i++)
                json_array_append_new(al, json_string(u.allotment[i]));
            json_object_set_new(o, "allotment", al);
        }
    }
    if (online_out) *online_out = online;
    return o;
}

static int shard_valid(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 4) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

static void units_list(lf_ctx *c)
{
    lf_hub *h = c->hub;
    int64_t limit;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    json_t *arr = NULL;
    const char *online_q = lf_http_query(c->req, "online");
    const char *shard = lf_http_query(c->req, "shard");
    const char *after = lf_http_query(c->req, "after");
    int want_online = -1;
    if (lf_http_query_i64(c->req, c->resp, "limit", 1, UNITS_PAGE_MAX, 100, &limit)) goto out;
    if (online_q) {
        if (strcmp(online_q, "true") == 0 || strcmp(online_q, "1") == 0)
            want_online = 1;
        else if (strcmp(online_q, "false") == 0 || strcmp(online_q, "0") == 0)
            want_online = 0;
        else {
            lf_http_error(c->resp, 400, "invalid_parameter",
                          "query parameter 'online' must be true or false");
            goto out;
        }
    }
    if (shard && !shard_valid(shard)) {
        lf_http_error(c->resp, 400, "invalid_parameter",
                      "query parameter 'shard' must be 1..4 lowercase hex digits");
        goto out;
    }
    if (after && after[0] && !lf_name_valid(after)) {
        lf_http_error(c->resp, 400, "invalid_parameter", "query parameter 'after' is a unit name");
        goto out;
    }
    if (lf_hub_wait_projection(c, "units")) goto out;
    db = lf_projection_reader(h->proj, "units");
    if (!db) {
        lf_http_error(c->resp, 503, "projection_unavailable", "units projection: %s", lf_err_get());
        goto out;
    }
    if (sqlite3_prepare_v2(db,
                           "SELECT " UNIT_COLS " FROM units WHERE name > ?1 AND"
                           " (?2 IS NULL OR substr(hash, 1, length(?2)) = ?2) ORDER BY name",
                           -1, &st, NULL) != SQLITE_OK) {
        lf_http_error(c->resp, 503, "projection_unavailable", "units projection: %s",
                      sqlite3_errmsg(db));
        goto out;
    }
    sqlite3_bind_text(st, 1, after ? after : "", -1, SQLITE_STATIC);
    if (shard) sqlite3_bind_text(st, 2, shard, -1, SQLITE_STATIC);
    arr = json_array();
    json_t *next = json_null();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((int64_t)json_array_size(arr) == limit) {
            /* One more row matches? Then there is a next page. */
            int on;
            json_t *probe = unit_row(h, st, 0, &on);
            json_decref(probe);
            if (want_online >= 0 && on != want_online) continue;
            json_decref(next);
            next = json_string(json_string_value(
                json_object_get(json_array_get(arr, json_array_size(arr) - 1), "name")));
            break;
        }
        int on;
        json_t *row = unit_row(h, st, 0, &on);
        if (want_online >= 0 && on != want_online) {
            json_decref(row);
            continue;
        }
        json_array_append_new(arr, row);
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        json_decref(next);
        lf_http_error(c->resp, 503, "projection_unavailable", "units projection: %s",
                      sqlite3_errmsg(db));
        goto out;
    }
    lf_http_json(c->resp, 200, json_pack("{s:O,s:o}", "units", arr, "next", next));
out:
    json_decref(arr);
    sqlite3_finalize(st);
    if (db) lf_projection_reader_put(h->proj, "units", db);
}

static void units_get(lf_ctx *c)
{
    lf_hub *h = c->hub;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    const char *name = c->params[0];
    if (!lf_name_valid(name)) {
        lf_http_error(c->resp, 404, "not_found", "no unit with that name");
        goto out;
    }
    if (lf_hub_wait_projection(c, "units")) goto out;
    db = lf_projection_reader(h->proj, "units");
    if (!db || sqlite3_prepare_v2(db, "SELECT " UNIT_COLS " FROM units WHERE name = ?", -1, &st,
                                  NULL) != SQLITE_OK) {
        lf_http_error(c->resp, 503, "projection_unavailable", "units projection unavailable");
        goto out;
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        lf_http_json(c->resp, 200, unit_row(h, st, 1, NULL));
    else if (rc == SQLITE_DONE)
        lf_http_error(c->resp, 404, "not_found", "no unit named '%s'", name);
    else
        lf_http_error(c->resp, 503, "projection_unavailable", "units: %s", sqlite3_errmsg(db));
out:
    sqlite3_finalize(st);
    if (db) lf_projection_reader_put(h->proj, "units", db);
}

/* ---- GET /v1/alerts ----------------------------------------------------------- */

static void alerts_list(lf_ctx *c)
{
    lf_hub *h = c->hub;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t limit, after, min_off;
    const char *unit = lf_http_query(c->req, "unit");
    const char *active = lf_http_query(c->req, "active");
    const char *kind = lf_http_query(c->req, "kind");
    int want_active = -1;
    if (lf_http_query_i64(c->req, c->resp, "limit", 1, 1000, 100, &limit) ||
        lf_http_query_i64(c->req, c->resp, "after", 0, INT64_MAX, 0, &after) ||
        lf_http_query_i64(c->req, c->resp, "min_offline_ms", 0, INT64_MAX, 0, &min_off))
        goto out;
    if (active) {
        if (strcmp(active, "true") == 0)
            want_active = 1;
        else if (strcmp(active, "false") == 0)
            want_active = 0;
        else {
            lf_http_error(c->resp, 400, "invalid_parameter",
                          "query parameter 'active' must be true or false");
            goto out;
        }
    }
    if (unit && !lf_name_valid(unit)) {
        lf_http_error(c->resp, 400, "invalid_parameter",
                      "query parameter 'unit' is not a unit name");
        goto out;
    }
    if (kind && strlen(kind) > 32) {
        lf_http_error(c->resp, 400, "invalid_parameter", "query parameter 'kind' is too long");
        goto out;
    }
    if (lf_hub_wait_projection(c, "alerts")) goto out;
    db = lf_projection_reader(h->proj, "alerts");
    if (!db ||
        sqlite3_prepare_v2(db,
                           "SELECT id, unit, kind, component, message, at, active, cleared_at"
                           " FROM alerts WHERE id > ?1 AND (?2 IS NULL OR unit = ?2) AND"
                           " (?3 < 0 OR active = ?3) AND (?4 IS NULL OR kind = ?4) AND"
                           " (?5 = 0 OR (kind = 'unit_offline' AND active = 1 AND at <= ?6))"
                           " ORDER BY id LIMIT ?7",
                           -1, &st, NULL) != SQLITE_OK) {
        lf_http_error(c->resp, 503, "projection_unavailable", "alerts projection unavailable");
        goto out;
    }
    sqlite3_bind_int64(st, 1, after);
    if (unit) sqlite3_bind_text(st, 2, unit, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, want_active);
    if (kind) sqlite3_bind_text(st, 4, kind, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, min_off);
    sqlite3_bind_int64(st, 6, lf_now_ms() - min_off);
    sqlite3_bind_int64(st, 7, limit);
    json_t *arr = json_array();
    int64_t last = after, now = lf_now_ms();
    while (sqlite3_step(st) == SQLITE_ROW) {
        json_t *o = json_object();
        last = sqlite3_column_int64(st, 0);
        json_object_set_new(o, "id", json_integer(last));
        json_object_set_new(o, "unit", text_or_null(st, 1));
        json_object_set_new(o, "kind", text_or_null(st, 2));
        json_object_set_new(o, "component", text_or_null(st, 3));
        json_object_set_new(o, "message", text_or_null(st, 4));
        json_object_set_new(o, "at", time_or_null(st, 5));
        int act = sqlite3_column_int(st, 6);
        json_object_set_new(o, "active", json_boolean(act));
        json_object_set_new(o, "cleared_at", time_or_null(st, 7));
        if (act) json_object_set_new(o, "age_ms", json_integer(now - sqlite3_column_int64(st, 5)));
        json_array_append_new(arr, o);
    }
    lf_http_json(
        c->resp, 200,
        json_pack("{s:o,s:o}", "alerts", arr, "next",
                  (int64_t)json_array_size(arr) == limit ? json_integer(last) : json_null()));
out:
    sqlite3_finalize(st);
    if (db) lf_projection_reader_put(h->proj, "alerts", db);
}

static const lf_route routes[] = {
    {"POST", "/v1/users", LF_ROLE_ADMIN, users_create, "users_create", 0},
    {"POST", "/v1/units", LF_ROLE_ADMIN, units_create, "units_create", 0},
    {"GET", "/v1/units", LF_ROLE_ADMIN, units_list, "units_list", 0},
    {"GET", "/v1/units/:name", LF_ROLE_ADMIN, units_get, "units_get", 0},
    {"GET", "/v1/alerts", LF_ROLE_ADMIN, alerts_list, "alerts_list", 0},
    {0},
};

const lf_route *lf_api_admin_routes(void)
{
    return routes;
}
