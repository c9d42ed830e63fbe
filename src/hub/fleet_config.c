/*
 * fleet_config.c — config delivery and heartbeats.
 *
 * PUT /v1/units/{name}/config appends ConfigDesired{version} to
 * unit-{name} (versions 1, 2, … per unit, allocated under f->cfg_mu), then
 * either calls the unit at once (live) or leaves it to the group worker
 * (queued). Every attempt is a ConfigDeliveryAttempted event; the unit's
 * answer becomes ConfigApplied or ConfigRejected. Only the newest desired
 * version is ever delivered (units apply versions idempotently and ignore
 * older ones). Failed attempts are retried on the retry schedule, only
 * while the unit is online, and at once when it comes back (fleet.c).
 *
 * The in-memory ledger (fleet_cfg) is a fold of those same events, which
 * is how it is rebuilt at start (lf_fleet_cfg_fold).
 */
#include "hub/fleet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CFG_LOG_MAX 20

void lf_fleet_cfg_free(fleet_cfg *c)
{
    json_decref(c->config);
    json_decref(c->log);
    c->config = c->log = NULL;
}

static void log_push(fleet_cfg *c, json_t *entry)
{
    if (!c->log) c->log = json_array();
    json_array_append_new(c->log, entry);
    while (json_array_size(c->log) > CFG_LOG_MAX)
        json_array_remove(c->log, 0);
}

static int64_t jint(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? json_integer_value(v) : 0;
}

static int64_t jtime(json_t *o, const char *k)
{
    int64_t ms = 0;
    json_t *v = json_object_get(o, k);
    if (json_is_string(v) && lf_time_parse(json_string_value(v), &ms)) ms = 0;
    return ms;
}

void lf_fleet_cfg_fold(fleet_unit *u, const lf_event *ev)
{
    fleet_cfg *c = &u->cfg;
    json_t *d = json_loads(ev->data, 0, NULL);
    if (!d) return;
    int64_t v = jint(d, "version");
    if (strcmp(ev->type, "ConfigDesired") == 0) {
        c->desired_version = v;
        json_decref(c->config);
        c->config = json_incref(json_object_get(d, "config"));
        json_t *m = json_object_get(d, "mode");
        snprintf(c->mode, sizeof c->mode, "%s", json_is_string(m) ? json_string_value(m) : "");
        c->attempts = 0;
        c->next_attempt_ms = 0;
        snprintf(c->state, sizeof c->state, "%s", c->applied_version >= v ? "applied" : "pending");
    } else if (strcmp(ev->type, "ConfigDeliveryAttempted") == 0) {
        json_t *res = json_object_get(d, "result");
        int sent = json_is_string(res) && strcmp(json_string_value(res), "sent") == 0;
        json_t *e =
            json_pack("{s:I,s:I,s:O,s:O,s:O}", "version", (json_int_t)v, "attempt",
                      (json_int_t)jint(d, "attempt"), "result", res ? res : json_null(), "reason",
                      json_object_get(d, "reason") ? json_object_get(d, "reason") : json_null(),
                      "next_attempt_at",
                      json_object_get(d, "next_attempt_at") ? json_object_get(d, "next_attempt_at")
                                                            : json_null());
        char t[LF_TIME_LEN];
        if (e) json_object_set_new(e, "at", json_string(lf_time_format(ev->time_ms, t)));
        if (e) log_push(c, e);
        if (v == c->desired_version) {
            c->attempts = (int)jint(d, "attempt");
            if (sent) {
                if (strcmp(c->state, "applied") != 0) snprintf(c->state, sizeof c->state, "sent");
                c->next_attempt_ms = 0;
            } else {
                snprintf(c->state, sizeof c->state, "pending");
                c->next_attempt_ms = jtime(d, "next_attempt_at");
                if (c->next_attempt_ms == 0) c->next_attempt_ms = ev->time_ms;
            }
        }
    } else if (strcmp(ev->type, "ConfigApplied") == 0) {
        int64_t av = jint(d, "applied_version");
        if (av < v) av = v;
        if (av > c->applied_version) c->applied_version = av;
        if (c->applied_version >= c->desired_version) {
            snprintf(c->state, sizeof c->state, "applied");
            c->next_attempt_ms = 0;
        }
    } else if (strcmp(ev->type, "ConfigRejected") == 0) {
        if (v == c->desired_version) {
            snprintf(c->state, sizeof c->state, "rejected");
            c->next_attempt_ms = 0;
        }
    }
    json_decref(d);
}

enum outcome { OUT_APPLIED, OUT_FAILED, OUT_REJECTED };

/* Records an attempt's outcome in memory and in the log. Returns the
 * position of the last event written (0 on failure). */
static int64_t record(struct lf_fleet *f, const char *name, int64_t version, enum outcome o,
                      const char *reason, int64_t applied, const char *via, int64_t *next_out)
{
    int64_t now = lf_now_ms(), next = 0, pos = 0;
    int attempt = 1;
    pthread_mutex_lock(&f->mu);
    fleet_unit *u = lf_fleet_find(f, name);
    if (u) {
        fleet_cfg *c = &u->cfg;
        c->busy = 0;
        if (version == c->desired_version) {
            attempt = ++c->attempts;
            if (o == OUT_FAILED) {
                next = now + lf_fleet_retry_delay(f->h->cfg.retry_ms, f->h->cfg.nretry, attempt);
                c->next_attempt_ms = next;
                snprintf(c->state, sizeof c->state, "pending");
            } else {
                c->next_attempt_ms = 0;
                snprintf(c->state, sizeof c->state, "%s",
                         o == OUT_APPLIED ? "applied" : "rejected");
            }
        }
        if (o == OUT_APPLIED && applied > c->applied_version) c->applied_version = applied;
        char t[LF_TIME_LEN];
        json_t *e = json_pack("{s:I,s:i,s:s,s:s?,s:o,s:s}", "version", (json_int_t)version,
                              "attempt", attempt, "result", o == OUT_FAILED ? "failed" : "sent",
                              "reason", o == OUT_APPLIED ? NULL : reason, "next_attempt_at",
                              lf_fleet_time_json(next), "at", lf_time_format(now, t));
        if (e) log_push(c, e);
    }
    pthread_mutex_unlock(&f->mu);
    if (!u) return 0;
    if (next_out) *next_out = next;
    lf_metric_inc("lockerfleet_deliveries_total",
                  o == OUT_APPLIED  ? "kind=\"config\",result=\"applied\""
                  : o == OUT_FAILED ? "kind=\"config\",result=\"failed\""
                                    : "kind=\"config\",result=\"rejected\"",
                  1);
    json_t *d =
        json_pack("{s:I,s:i,s:s,s:s?,s:o}", "version", (json_int_t)version, "attempt", attempt,
                  "result", o == OUT_FAILED ? "failed" : "sent", "reason",
                  o == OUT_APPLIED ? NULL : reason, "next_attempt_at", lf_fleet_time_json(next));
    lf_fleet_emit(f, name, "ConfigDeliveryAttempted", d, &pos);
    if (o == OUT_APPLIED) {
        d = json_pack("{s:I,s:I,s:s}", "version", (json_int_t)version, "applied_version",
                      (json_int_t)applied, "via", via);
        lf_fleet_emit(f, name, "ConfigApplied", d, &pos);
    } else if (o == OUT_REJECTED) {
        d = json_pack("{s:I,s:s}", "version", (json_int_t)version, "reason", reason);
        lf_fleet_emit(f, name, "ConfigRejected", d, &pos);
    }
    return pos;
}

/* PUT {url}/config {"version","config"}. Fills reason (static or into
 * rbuf) and *applied. */
static enum outcome attempt(struct lf_fleet *f, const char *name, const char *url, int64_t version,
                            const char *config_text, char *rbuf, size_t rlen, int64_t *applied)
{
    enum outcome o = OUT_FAILED;
    lf_http_result r;
    char *full = lf_asprintf("%s/config", url);
    char *body = lf_asprintf("{\"version\":%lld,\"config\":%s}", (long long)version,
                             config_text ? config_text : "{}");
    int rc = lf_fleet_unit_call(f, name, "PUT", full, body, &r);
    snprintf(rbuf, rlen, "%s", lf_fleet_call_reason(rc, r.status));
    *applied = 0;
    if (rc == 0 && r.status >= 200 && r.status < 300) {
        json_t *j = json_loadb(r.body.data ? r.body.data : "", r.body.len, 0, NULL);
        json_t *av = j ? json_object_get(j, "applied_version") : NULL;
        *applied = json_is_integer(av) ? json_integer_value(av) : version;
        json_decref(j);
        if (*applied >= version)
            o = OUT_APPLIED;
        else
            snprintf(rbuf, rlen, "not_applied");
    } else if (rc == 0 && r.status >= 400 && r.status < 500 && r.status != 401 && r.status != 403 &&
               r.status != 404 && r.status != 429) {
        /* the unit looked at the config and said no: its error code is the reason */
        json_t *j = json_loadb(r.body.data ? r.body.data : "", r.body.len, 0, NULL);
        json_t *code = j ? json_object_get(json_object_get(j, "error"), "code") : NULL;
        if (json_is_string(code)) snprintf(rbuf, rlen, "%.48s", json_string_value(code));
        json_decref(j);
        o = OUT_REJECTED;
    }
    lf_http_result_free(&r);
    free(full);
    free(body);
    return o;
}

void lf_fleet_cfg_deliver_due(struct lf_fleet *f, const char *name)
{
    char url[512];
    char *text = NULL;
    int64_t version = 0, now = lf_now_ms();
    pthread_mutex_lock(&f->mu);
    fleet_unit *u = lf_fleet_find(f, name);
    fleet_cfg *c = u ? &u->cfg : NULL;
    if (c && !c->busy && u->ps.online && u->url[0] && c->desired_version > c->applied_version &&
        c->next_attempt_ms > 0 && c->next_attempt_ms <= now && strcmp(c->state, "rejected") != 0) {
        c->busy = 1;
        version = c->desired_version;
        snprintf(url, sizeof url, "%s", u->url);
        text = c->config ? json_dumps(c->config, JSON_COMPACT) : NULL;
    }
    pthread_mutex_unlock(&f->mu);
    if (!version) return;
    char reason[64];
    int64_t applied;
    enum outcome o = attempt(f, name, url, version, text, reason, sizeof reason, &applied);
    record(f, name, version, o, reason, applied, "queued", NULL);
    free(text);
}

/* ---- HTTP ------------------------------------------------------------ */

void lf_fleet_route_config_put(lf_ctx *c)
{
    struct lf_fleet *f = c->hub->fleet;
    const char *name = c->params[0];
    json_t *body = NULL;
    char *text = NULL;
    const char *mode = lf_http_query(c->req, "mode");
    if (!mode) mode = "queued";
    if (strcmp(mode, "live") != 0 && strcmp(mode, "queued") != 0) {
        lf_http_error(c->resp, 400, "invalid_parameter", "mode must be 'live' or 'queued'");
        goto out;
    }
    /* live: calls the unit and waits for it, on a thread of its own in
     * pool mode (queued may deliver now too, from the same code) */
    if (lf_http_offload(c->resp)) return;
    fleet_unit *u = lf_fleet_get(f, name);
    if (!u) {
        lf_http_error(c->resp, 404, "not_found", "no unit named '%s'", name);
        goto out;
    }
    if (!(body = lf_http_body_json(c->req, c->resp))) goto out;
    json_t *cfg = json_object_get(body, "config");
    if (!json_is_object(cfg)) {
        lf_http_error(c->resp, 400, "invalid_field", "config: must be a JSON object");
        goto out;
    }
    text = json_dumps(cfg, JSON_COMPACT);
    if (!text) {
        lf_http_error(c->resp, 400, "invalid_field", "config: cannot be encoded");
        goto out;
    }

    /* allocate the version and log the desire */
    pthread_mutex_lock(&f->cfg_mu);
    pthread_mutex_lock(&f->mu);
    int64_t version = u->cfg.desired_version + 1;
    char url[512];
    snprintf(url, sizeof url, "%s", u->url);
    int group = u->group;
    pthread_mutex_unlock(&f->mu);
    int64_t pos = 0;
    json_t *d = json_pack("{s:I,s:O,s:s,s:s}", "version", (json_int_t)version, "config", cfg,
                          "mode", mode, "requested_by", c->who.id);
    int rc = lf_fleet_emit(f, name, "ConfigDesired", d, &pos);
    int live = strcmp(mode, "live") == 0 && url[0];
    if (rc == 0) {
        pthread_mutex_lock(&f->mu);
        fleet_cfg *fc = &u->cfg;
        fc->desired_version = version;
        json_decref(fc->config);
        fc->config = json_incref(cfg);
        snprintf(fc->mode, sizeof fc->mode, "%s", mode);
        fc->attempts = 0;
        fc->next_attempt_ms = lf_now_ms();
        fc->busy = live; /* the worker keeps off while we call */
        snprintf(fc->state, sizeof fc->state, "%s",
                 fc->applied_version >= version ? "applied" : "pending");
        pthread_mutex_unlock(&f->mu);
    }
    pthread_mutex_unlock(&f->cfg_mu);
    if (rc) {
        lf_hub_error_rc(c, rc, "storing the desired config");
        goto out;
    }
    if (live) {
        char reason[64];
        int64_t applied, next = 0;
        enum outcome o = attempt(f, name, url, version, text, reason, sizeof reason, &applied);
        int64_t p2 = record(f, name, version, o, reason, applied, "live", &next);
        if (p2 > 0) pos = p2;
        if (o == OUT_APPLIED) {
            lf_http_json(c->resp, 200,
                         json_pack("{s:I,s:b,s:I,s:s,s:I}", "version", (json_int_t)version,
                                   "delivered", 1, "applied_version", (json_int_t)applied, "state",
                                   "applied", "position", (json_int_t)pos));
            goto out;
        }
        if (o == OUT_REJECTED) {
            lf_http_json(c->resp, 200,
                         json_pack("{s:I,s:b,s:s,s:s,s:I}", "version", (json_int_t)version,
                                   "delivered", 0, "state", "rejected", "reason", reason,
                                   "position", (json_int_t)pos));
            goto out;
        }
        lf_http_json(c->resp, 202,
                     json_pack("{s:I,s:s,s:s,s:o,s:I}", "version", (json_int_t)version, "delivery",
                               "queued", "reason", reason, "next_attempt_at",
                               lf_fleet_time_json(next), "position", (json_int_t)pos));
        goto out;
    }
    lf_fleet_wake(f, group);
    lf_http_json(c->resp, 202,
                 json_pack("{s:I,s:s,s:o,s:I}", "version", (json_int_t)version, "delivery",
                           "queued", "next_attempt_at", lf_fleet_time_json(lf_now_ms()), "position",
                           (json_int_t)pos));
out:
    json_decref(body);
    free(text);
}

void lf_fleet_route_config_get(lf_ctx *c)
{
    struct lf_fleet *f = c->hub->fleet;
    const char *name = c->params[0];
    fleet_unit *u = lf_fleet_get(f, name);
    if (!u) {
        lf_http_error(c->resp, 404, "not_found", "no unit named '%s'", name);
        return;
    }
    pthread_mutex_lock(&f->mu);
    fleet_cfg *fc = &u->cfg;
    json_t *o = json_pack(
        "{s:I,s:I,s:o,s:o,s:o,s:s,s:s,s:b}", "desired_version", (json_int_t)fc->desired_version,
        "applied_version", (json_int_t)fc->applied_version, "config",
        fc->config ? json_deep_copy(fc->config) : json_null(), "attempts",
        fc->log ? json_deep_copy(fc->log) : json_array(), "next_attempt_at",
        fc->desired_version > fc->applied_version ? lf_fleet_time_json(fc->next_attempt_ms)
                                                  : json_null(),
        "state", fc->state, "mode", fc->mode, "online", u->ps.online);
    pthread_mutex_unlock(&f->mu);
    lf_http_json(c->resp, 200, o);
}

void lf_fleet_route_heartbeat(lf_ctx *c)
{
    struct lf_fleet *f = c->hub->fleet;
    const char *name = c->params[0];
    json_t *body = NULL;
    if (!lf_fleet_check_unit(c, name)) goto out;
    fleet_unit *u = lf_fleet_get(f, name);
    if (!u) {
        lf_http_error(c->resp, 404, "not_found", "no unit named '%s'", name);
        goto out;
    }
    if (c->req->body_len == 0)
        body = json_object();
    else if (!(body = lf_http_body_json(c->req, c->resp)))
        goto out;
    json_t *sh = json_object_get(body, "seq_head"), *cv = json_object_get(body, "config_version");
    if (sh && (!json_is_integer(sh) || json_integer_value(sh) < 0)) {
        lf_http_error(c->resp, 400, "invalid_field", "seq_head: must be an integer >= 0");
        goto out;
    }
    if (cv && (!json_is_integer(cv) || json_integer_value(cv) < 0)) {
        lf_http_error(c->resp, 400, "invalid_field", "config_version: must be an integer >= 0");
        goto out;
    }
    lf_fleet_seen(f, name, "heartbeat", -1);
    lf_fleet_hb_relay(f, u); /* to the shard's owner, when that is another node */
    int64_t reported = cv ? json_integer_value(cv) : -1;
    int applied_now = 0, wake = 0;
    json_t *resp;
    pthread_mutex_lock(&f->mu);
    fleet_cfg *fc = &u->cfg;
    int64_t desired = fc->desired_version;
    if (reported >= 0 && desired > 0 && reported >= desired && fc->applied_version < desired) {
        fc->applied_version = reported;
        fc->next_attempt_ms = 0;
        snprintf(fc->state, sizeof fc->state, "applied");
        applied_now = 1;
    } else if (reported >= 0 && reported < desired && strcmp(fc->state, "rejected") != 0) {
        if (reported > fc->applied_version) fc->applied_version = reported;
        if (u->url[0] && !fc->busy) {
            fc->next_attempt_ms = lf_now_ms(); /* deliver at once */
            wake = 1;
        }
    }
    resp = json_pack("{s:I}", "desired_config_version", (json_int_t)desired);
    /* a unit without an API gets its config in the answer */
    if (reported >= 0 && reported < desired && fc->config)
        json_object_set_new(resp, "config", json_deep_copy(fc->config));
    int group = u->group;
    pthread_mutex_unlock(&f->mu);
    if (applied_now) {
        json_t *d = json_pack("{s:I,s:I,s:s}", "version", (json_int_t)desired, "applied_version",
                              (json_int_t)reported, "via", "heartbeat");
        lf_fleet_emit(f, name, "ConfigApplied", d, NULL);
    }
    if (wake) lf_fleet_wake(f, group);
    lf_http_json(c->resp, 200, resp);
out:
    json_decref(body);
}
