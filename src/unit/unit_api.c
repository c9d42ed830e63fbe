/*
 * unit_api.c — the unit's HTTP API (DESIGN §7), relative to the unit's
 * root: /ping, /config, /events, /reservations, /status (the hub's side)
 * and /screen/..., /hardware/... (the touch screen and the simulated
 * hardware, which work with or without a network).
 *
 * Hub-facing endpoints other than /ping need the hub credential (Bearer
 * equal to the unit's hub token, compared in constant time) when one is
 * configured. A unit set offline does not answer them: the request is
 * held until the unit is back or ~30 s have passed (past any hub timeout).
 */
#include "unit/unit_int.h"

#include <stdio.h>
#include <string.h>

#define OFFLINE_HOLD_MS 30000

/* A string field: required, 1..max-1 bytes. Fills a 400 naming the field. */
static const char *str_field(json_t *o, const char *name, size_t max, bool required,
                             lf_http_resp *resp)
{
    json_t *v = json_object_get(o, name);
    if (!v && !required) return NULL;
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= max) {
        lf_http_error(resp, 400, "invalid_field", "'%s' must be a string of 1..%zu characters",
                      name, max - 1);
        return NULL;
    }
    return json_string_value(v);
}

static int time_field(json_t *o, const char *name, lf_http_resp *resp, int64_t *out)
{
    json_t *v = json_object_get(o, name);
    if (!json_is_string(v) || lf_time_parse(json_string_value(v), out) != 0) {
        lf_http_error(resp, 400, "invalid_field", "'%s' must be an RFC 3339 time", name);
        return LF_EINVAL;
    }
    return 0;
}

static bool authorized(lf_unit *u, lf_http_req *req, lf_http_resp *resp)
{
    const char *want = lf_unit_hub_token(u);
    if (!want) return true;
    const char *got = lf_http_bearer(req);
    if (got && strlen(got) == strlen(want) && lf_ct_equal(got, want)) return true;
    lf_http_header_add(resp, "WWW-Authenticate", "Bearer"); /* RFC 7235: a 401 names the scheme */
    lf_http_error(resp, 401, "unauthorized", "a valid hub credential (Bearer) is required");
    return false;
}

static void internal_error(lf_http_resp *resp, int rc)
{
    lf_http_error(resp, rc == LF_ENOMEM ? 503 : 500, "unit_store_error", "%s: %s", lf_strerror(rc),
                  lf_err_get());
}

static void h_ping(lf_unit *u, lf_http_resp *resp)
{
    lf_unit_status st;
    char ts[LF_TIME_LEN];
    lf_unit_note_hub_contact(u);
    lf_unit_get_status(u, &st);
    lf_http_json(resp, 200,
                 json_pack("{s:s,s:I,s:I,s:s}", "name", lf_unit_name(u), "seq_head",
                           (json_int_t)st.seq_head, "config_version", (json_int_t)st.config_version,
                           "time", lf_time_format(lf_now_ms(), ts)));
}

static void h_status(lf_unit *u, lf_http_resp *resp)
{
    lf_unit_status st;
    lf_unit_get_status(u, &st);
    lf_http_json(resp, 200,
                 json_pack("{s:s,s:I,s:I,s:I,s:I,s:i,s:i,s:i,s:b,s:I,s:I,s:I,s:b}", "name",
                           lf_unit_name(u), "seq_head", (json_int_t)st.seq_head, "acked_seq",
                           (json_int_t)st.acked_seq, "pruned_seq", (json_int_t)st.pruned_seq,
                           "config_version", (json_int_t)st.config_version, "lockers", st.nlockers,
                           "rentals", st.nrentals, "reservations", st.nreservations, "connected",
                           st.connected, "pushes_ok", (json_int_t)st.pushes_ok, "pushes_failed",
                           (json_int_t)st.pushes_failed, "heartbeats_ok",
                           (json_int_t)st.heartbeats_ok, "offline", lf_unit_is_offline(u)));
}

static void h_config(lf_unit *u, lf_http_req *req, lf_http_resp *resp)
{
    json_t *b = lf_http_body_json(req, resp);
    if (!b) return;
    json_t *v = json_object_get(b, "version"), *cfg = json_object_get(b, "config");
    int64_t applied = 0;
    if (!json_is_integer(v) || json_integer_value(v) < 1) {
        lf_http_error(resp, 400, "invalid_field", "'version' must be an integer >= 1");
    } else if (!json_is_object(cfg)) {
        lf_http_error(resp, 400, "invalid_field", "'config' must be an object");
    } else {
        lf_unit_note_hub_contact(u);
        int rc = lf_unit_apply_config(u, json_integer_value(v), cfg, &applied);
        if (rc)
            internal_error(resp, rc);
        else
            lf_http_json(resp, 200, json_pack("{s:I}", "applied_version", (json_int_t)applied));
    }
    json_decref(b);
}

static void h_events(lf_unit *u, lf_http_req *req, lf_http_resp *resp)
{
    int64_t after, limit, head = 0;
    if (lf_http_query_i64(req, resp, "after", 0, INT64_MAX, 0, &after) ||
        lf_http_query_i64(req, resp, "limit", 1, 1000, LF_UNIT_BATCH_MAX, &limit))
        return;
    lf_unit_ack_pulled(u, after);
    lf_buf arr;
    lf_buf_init(&arr, 0);
    int rc = lf_unit_events_json(u, after, (size_t)limit, &arr, &head);
    if (rc == LF_ESTATE) {
        lf_http_error(resp, 410, "pruned", "%s", lf_err_get());
    } else if (rc) {
        internal_error(resp, rc);
    } else {
        resp->status = 200;
        resp->content_type = "application/json";
        resp->body.len = 0;
        lf_buf_append(&resp->body, "{\"events\":", 10);
        lf_buf_append(&resp->body, arr.data, arr.len);
        lf_buf_printf(&resp->body, ",\"head\":%lld}", (long long)head);
    }
    lf_buf_free(&arr);
}

static void h_reserve(lf_unit *u, lf_http_req *req, lf_http_resp *resp)
{
    json_t *b = lf_http_body_json(req, resp);
    if (!b) return;
    int64_t from, to;
    const char *id = str_field(b, "id", LF_UUID_LEN, true, resp), *locker = NULL;
    if (!id) goto out;
    if (!lf_uuid_valid(id)) {
        lf_http_error(resp, 400, "invalid_field", "'id' must be a UUID");
        goto out;
    }
    if (!(locker = str_field(b, "locker", 16, true, resp))) goto out;
    if (time_field(b, "from", resp, &from) || time_field(b, "to", resp, &to)) goto out;
    if (from >= to) {
        lf_http_error(resp, 400, "invalid_field", "'to' must be after 'from'");
        goto out;
    }
    json_t *code = json_object_get(b, "code");
    if (code && !json_is_string(code)) {
        lf_http_error(resp, 400, "invalid_field", "'code' must be a string");
        goto out;
    }
    lf_unit_note_hub_contact(u);
    int rc = lf_unit_reserve(u, id, locker, from, to);
    if (rc == 0)
        lf_http_json(resp, 200,
                     json_pack("{s:s,s:s,s:s}", "id", id, "status", "accepted", "locker", locker));
    else if (rc == LF_ECONFLICT)
        lf_http_error(resp, 409, "locker_in_use", "%s", lf_err_get());
    else if (rc == LF_ENOTFOUND)
        lf_http_error(resp, 409, "unknown_locker", "%s", lf_err_get());
    else if (rc == LF_ESTATE)
        lf_http_error(resp, 409, "reservation_cancelled", "%s", lf_err_get());
    else
        internal_error(resp, rc);
out:
    json_decref(b);
}

static void h_cancel(lf_unit *u, const char *id, lf_http_resp *resp)
{
    if (!lf_uuid_valid(id)) {
        lf_http_error(resp, 400, "invalid_parameter", "reservation id in the path must be a UUID");
        return;
    }
    lf_unit_note_hub_contact(u);
    int rc = lf_unit_cancel_reservation(u, id);
    if (rc)
        internal_error(resp, rc);
    else
        lf_http_json(resp, 200, json_pack("{s:s,s:s}", "id", id, "status", "cancelled"));
}

static void h_rent(lf_unit *u, lf_http_req *req, lf_http_resp *resp)
{
    json_t *b = lf_http_body_json(req, resp);
    if (!b) return;
    const char *size = str_field(b, "size", 2, true, resp), *pay;
    json_t *mins = json_object_get(b, "minutes");
    if (!size) goto out;
    if (size[0] != 'S' && size[0] != 'M' && size[0] != 'L') {
        lf_http_error(resp, 400, "invalid_field", "'size' must be S, M or L");
        goto out;
    }
    if (!json_is_integer(mins) || json_integer_value(mins) < 1 ||
        json_integer_value(mins) > 30 * 24 * 60) {
        lf_http_error(resp, 400, "invalid_field", "'minutes' must be an integer in [1, 43200]");
        goto out;
    }
    pay = json_object_get(b, "payment") ? str_field(b, "payment", 8, true, resp) : "ok";
    if (!pay) goto out;
    if (strcmp(pay, "ok") != 0 && strcmp(pay, "fail") != 0) {
        lf_http_error(resp, 400, "invalid_field", "'payment' must be \"ok\" or \"fail\"");
        goto out;
    }
    lf_unit_rental r;
    int rc = lf_unit_rent(u, size[0], json_integer_value(mins), strcmp(pay, "ok") == 0, &r);
    char t1[LF_TIME_LEN], t2[LF_TIME_LEN];
    if (rc == 0)
        lf_http_json(resp, 200,
                     json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:b}", "rental_id", r.rental_id, "locker",
                               r.locker, "code", r.code, "from", lf_time_format(r.from_ms, t1),
                               "to", lf_time_format(r.to_ms, t2), "amount_cents",
                               (json_int_t)r.amount_cents, "offline", r.offline));
    else if (rc == LF_EDENIED)
        lf_http_error(resp, 402, "payment_failed", "the payment was declined");
    else if (rc == LF_EUNAVAILABLE)
        lf_http_error(resp, 409, "no_locker_available", "%s", lf_err_get());
    else
        internal_error(resp, rc);
out:
    json_decref(b);
}

static void h_pickup(lf_unit *u, lf_http_req *req, lf_http_resp *resp)
{
    json_t *b = lf_http_body_json(req, resp);
    if (!b) return;
    json_t *c = json_object_get(b, "code");
    if (!json_is_string(c)) {
        lf_http_error(resp, 400, "invalid_field", "'code' must be a string");
    } else {
        lf_unit_pickup_result r;
        int rc = lf_unit_pickup(u, json_string_value(c), &r);
        if (rc == 0)
            lf_http_json(resp, 200,
                         json_pack("{s:s,s:s,s:s,s:s}", "locker", r.locker, "kind", r.kind, "id",
                                   r.id, "door", "open"));
        else if (rc == LF_ESTATE)
            lf_http_error(resp, 403, "outside_window", "the code is not valid at this time");
        else if (rc == LF_EDENIED)
            lf_http_error(resp, 403, "pickup_rejected", "%s", lf_err_get());
        else
            internal_error(resp, rc);
    }
    json_decref(b);
}

static void h_hardware(lf_unit *u, const char *what, lf_http_req *req, lf_http_resp *resp)
{
    json_t *b = lf_http_body_json(req, resp);
    if (!b) return;
    int rc = 0;
    if (strcmp(what, "door-open") == 0 || strcmp(what, "door-close") == 0) {
        const char *locker = str_field(b, "locker", 16, true, resp);
        if (!locker) goto out;
        bool open = strcmp(what, "door-open") == 0;
        rc = lf_unit_door(u, locker, open);
        if (rc == LF_ENOTFOUND) {
            lf_http_error(resp, 404, "unknown_locker", "%s", lf_err_get());
            goto out;
        }
        if (rc == 0)
            lf_http_json(
                resp, 200,
                json_pack("{s:s,s:s}", "locker", locker, "door", open ? "open" : "closed"));
    } else if (strcmp(what, "error") == 0) {
        const char *comp = str_field(b, "component", 32, true, resp), *msg, *locker;
        if (!comp) goto out;
        msg = json_object_get(b, "message") ? str_field(b, "message", 256, true, resp) : "";
        if (!msg) goto out;
        locker = json_object_get(b, "locker") ? str_field(b, "locker", 16, true, resp) : NULL;
        if (json_object_get(b, "locker") && !locker) goto out;
        rc = lf_unit_hw_error(u, comp, msg, locker);
    } else if (strcmp(what, "online") == 0 || strcmp(what, "offline") == 0) {
        const char *comp = str_field(b, "component", 32, true, resp);
        if (!comp) goto out;
        rc = lf_unit_record(u, what[1] == 'n' ? "HardwareOnline" : "HardwareOffline",
                            json_pack("{s:s}", "component", comp));
    } else if (strcmp(what, "payment-start") == 0 || strcmp(what, "payment-success") == 0) {
        const char *rid = str_field(b, "rental_id", LF_UUID_LEN, true, resp), *cur;
        json_t *amt = json_object_get(b, "amount_cents");
        if (!rid) goto out;
        if (!json_is_integer(amt) || json_integer_value(amt) < 0) {
            lf_http_error(resp, 400, "invalid_field", "'amount_cents' must be an integer >= 0");
            goto out;
        }
        cur = json_object_get(b, "currency") ? str_field(b, "currency", 4, true, resp) : "EUR";
        if (!cur) goto out;
        rc = lf_unit_record(
            u, strcmp(what, "payment-start") == 0 ? "PaymentStarted" : "PaymentSucceeded",
            json_pack("{s:s,s:O,s:s}", "rental_id", rid, "amount_cents", amt, "currency", cur));
    } else if (strcmp(what, "payment-fail") == 0) {
        const char *rid = str_field(b, "rental_id", LF_UUID_LEN, true, resp), *reason;
        if (!rid) goto out;
        reason = json_object_get(b, "reason") ? str_field(b, "reason", 64, true, resp) : "declined";
        if (!reason) goto out;
        rc = lf_unit_record(u, "PaymentFailed",
                            json_pack("{s:s,s:s}", "rental_id", rid, "reason", reason));
    } else {
        lf_http_error(resp, 404, "not_found", "no hardware action '%.40s'", what);
        goto out;
    }
    if (rc == LF_EINVAL)
        lf_http_error(resp, 400, "invalid_field", "%s", lf_err_get());
    else if (rc)
        internal_error(resp, rc);
    else if (resp->body.len == 0)
        lf_http_json(resp, 200, json_pack("{s:b}", "recorded", 1));
out:
    json_decref(b);
}

static bool method_is(lf_http_req *req, lf_http_resp *resp, const char *m)
{
    if (strcmp(req->method, m) == 0) return true;
    lf_http_error(resp, 405, "method_not_allowed", "use %s", m);
    return false;
}

void lf_unit_handle(lf_unit *u, lf_http_req *req, lf_http_resp *resp, int first)
{
    int n = req->nsegs - first;
    const char *const *s = req->segs + first;
    if (n <= 0) {
        lf_http_error(resp, 404, "not_found", "no such unit endpoint");
        return;
    }
    bool local = strcmp(s[0], "screen") == 0 || strcmp(s[0], "hardware") == 0;
    if (!local) {
        /* No network: hold the request, answer nothing useful. On a pooled
         * server (the sim) the wait suspends the connection, not a thread:
         * the handler is called again later with the same req->start_us. */
        int64_t waited = (lf_mono_us() - req->start_us) / 1000;
        if (lf_unit_is_offline(u) && waited < OFFLINE_HOLD_MS) {
            if (lf_http_defer(resp, 250)) return;
            int64_t until = lf_mono_ms() + OFFLINE_HOLD_MS - waited;
            while (lf_unit_is_offline(u) && lf_mono_ms() < until)
                lf_sleep_ms(50);
            waited = (lf_mono_us() - req->start_us) / 1000;
        }
        if (lf_unit_is_offline(u)) {
            lf_http_error(resp, 503, "offline", "unit is offline");
            return;
        }
        /* a slow unit answers `slow` ms after the request arrived */
        int64_t left = lf_unit_slow_ms(u) - waited;
        if (left > 0 && lf_http_defer(resp, left)) return;
        if (left > 0) lf_sleep_ms(left);
    }
    resp->route = s[0];
    if (n == 1 && strcmp(s[0], "ping") == 0) {
        if (method_is(req, resp, "GET")) h_ping(u, resp);
    } else if (n == 1 && strcmp(s[0], "status") == 0) {
        if (method_is(req, resp, "GET") && authorized(u, req, resp)) h_status(u, resp);
    } else if (n == 1 && strcmp(s[0], "config") == 0) {
        if (method_is(req, resp, "PUT") && authorized(u, req, resp)) h_config(u, req, resp);
    } else if (n == 1 && strcmp(s[0], "events") == 0) {
        if (method_is(req, resp, "GET") && authorized(u, req, resp)) h_events(u, req, resp);
    } else if (n == 1 && strcmp(s[0], "reservations") == 0) {
        if (method_is(req, resp, "POST") && authorized(u, req, resp)) h_reserve(u, req, resp);
    } else if (n == 3 && strcmp(s[0], "reservations") == 0 && strcmp(s[2], "cancel") == 0) {
        if (method_is(req, resp, "POST") && authorized(u, req, resp)) h_cancel(u, s[1], resp);
    } else if (n == 2 && strcmp(s[0], "screen") == 0 && strcmp(s[1], "rent") == 0) {
        if (method_is(req, resp, "POST")) h_rent(u, req, resp);
    } else if (n == 2 && strcmp(s[0], "screen") == 0 && strcmp(s[1], "pickup") == 0) {
        if (method_is(req, resp, "POST")) h_pickup(u, req, resp);
    } else if (n == 2 && strcmp(s[0], "hardware") == 0) {
        if (method_is(req, resp, "POST")) h_hardware(u, s[1], req, resp);
    } else {
        lf_http_error(resp, 404, "not_found", "no such unit endpoint");
    }
}
