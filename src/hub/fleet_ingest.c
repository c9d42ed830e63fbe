/*
 * fleet_ingest.c — the units' own events into unitlog-{name}, exactly once
 * and in order, whether they are pushed (POST /v1/units/{name}/events) or
 * pulled (GET {url}/events?after=SEQ by the group worker).
 *
 * Both paths end in ingest(): the stream version of unitlog-{name} is the
 * unit's seq, so the already-stored prefix of a batch is acknowledged as
 * duplicates and the rest is appended with expected version = last stored
 * seq (NO_STREAM when none). A retry, a crash between append and answer,
 * or a push racing a pull can therefore never store an event twice or out
 * of order: the store's expected-version check is the arbiter, and the
 * per-unit ingest_mu only saves pointless conflicts inside one process.
 */
#include "hub/fleet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PULL_LIMIT 500
#define PULL_PAGES_MAX 40

typedef struct {
    int status; /* 200, 409 (gap / id clash), 400, 503 */
    int64_t acked, accepted, dups, position, expected;
    char code[32];
    char msg[256];
} ingest_out;

static int64_t stored_seq(struct lf_fleet *f, fleet_unit *u, const char *stream, int fresh)
{
    if (fresh || u->seq_stored < 0) {
        int64_t v = 0;
        if (lf_store_stream_version(f->h->store, stream, &v)) return -1;
        u->seq_stored = v;
    }
    return u->seq_stored;
}

/* raw: the data text of each event when the fast path parsed the batch
 * (lf_fleet_batch_fast), else NULL and each ev[i].data is dumped. */
static void ingest(struct lf_fleet *f, fleet_unit *u, const lf_fleet_uevent *ev,
                   const char *const *raw, size_t n, const char *via, ingest_out *o)
{
    char stream[80], now_txt[LF_TIME_LEN];
    lf_event_in *in = NULL;
    char **data = NULL;
    char *metas = NULL;
    const size_t metalen = 256;
    memset(o, 0, sizeof *o);
    snprintf(stream, sizeof stream, "unitlog-%s", u->name);
    lf_time_format(lf_now_ms(), now_txt);
    pthread_mutex_lock(&u->ingest_mu);
    for (int round = 0; round < 3; round++) {
        int64_t stored = stored_seq(f, u, stream, round > 0);
        if (stored < 0) {
            o->status = 503;
            snprintf(o->code, sizeof o->code, "store_unavailable");
            snprintf(o->msg, sizeof o->msg, "reading %s: %s", stream, lf_err_get());
            goto out;
        }
        if (ev[0].seq > stored + 1) {
            o->status = 409;
            o->expected = stored + 1;
            snprintf(o->code, sizeof o->code, "seq_gap");
            snprintf(o->msg, sizeof o->msg, "the next seq of unit %s is %lld, got %lld", u->name,
                     (long long)(stored + 1), (long long)ev[0].seq);
            goto out;
        }
        size_t skip = (size_t)(stored - ev[0].seq + 1);
        if (skip > n) skip = n;
        o->dups = (int64_t)skip;
        o->acked = stored > ev[n - 1].seq ? stored : ev[n - 1].seq;
        if (skip == n) {
            o->status = 200;
            o->acked = stored;
            goto out;
        }
        size_t m = n - skip;
        if (!in) {
            in = lf_xcalloc(n, sizeof *in);
            data = lf_xcalloc(n, sizeof *data);
            metas = lf_xmalloc(n * metalen);
        }
        for (size_t i = 0; i < m; i++) {
            const lf_fleet_uevent *e = &ev[skip + i];
            if (!raw && !data[skip + i]) data[skip + i] = json_dumps(e->data, JSON_COMPACT);
            const char *dtext = raw ? raw[skip + i] : data[skip + i];
            char *meta = metas + (skip + i) * metalen;
            snprintf(meta, metalen,
                     "{\"source\":\"unit\",\"unit\":\"%s\",\"unit_seq\":%lld,"
                     "\"received_at\":\"%s\",\"via\":\"%s\"}",
                     u->name, (long long)e->seq, now_txt, via);
            in[i] = (lf_event_in){.id = e->id,
                                  .type = e->type,
                                  .data = dtext ? dtext : "{}",
                                  .meta = meta,
                                  .time_ms = e->time_ms};
        }
        lf_append_result res = {0};
        int rc =
            lf_hub_append(f->h, stream, stored == 0 ? LF_EXPECT_NO_STREAM : stored, in, m, &res);
        if (rc == LF_ECONFLICT) continue; /* another writer got there: re-read, skip again */
        if (rc == 0) {
            u->seq_stored = ev[n - 1].seq;
            o->status = 200;
            o->accepted = (int64_t)m;
            o->acked = ev[n - 1].seq;
            o->position = res.last_position;
            goto out;
        }
        u->seq_stored = -1;
        if (rc == LF_EEXIST) {
            o->status = 409;
            snprintf(o->code, sizeof o->code, "duplicate_id");
            snprintf(o->msg, sizeof o->msg, "an event id of this batch is already stored: %s",
                     lf_err_get());
        } else if (rc == LF_EINVAL) {
            o->status = 400;
            snprintf(o->code, sizeof o->code, "invalid_field");
            snprintf(o->msg, sizeof o->msg, "events: %s", lf_err_get());
        } else {
            o->status = 503;
            snprintf(o->code, sizeof o->code, "store_unavailable");
            snprintf(o->msg, sizeof o->msg, "storing the events: %s", lf_strerror(rc));
        }
        goto out;
    }
    o->status = 503;
    snprintf(o->code, sizeof o->code, "conflict");
    snprintf(o->msg, sizeof o->msg, "concurrent writers on %s; retry", stream);
out:
    pthread_mutex_unlock(&u->ingest_mu);
    if (o->accepted)
        lf_metric_inc("lockerfleet_unit_events_ingested_total",
                      strcmp(via, "pull") == 0 ? "via=\"pull\"" : "via=\"push\"",
                      (double)o->accepted);
    if (o->dups) lf_metric_inc("lockerfleet_unit_events_duplicate_total", NULL, (double)o->dups);
    if (data)
        for (size_t i = 0; i < n; i++)
            free(data[i]);
    free(data);
    free(in);
    free(metas);
}

void lf_fleet_route_events(lf_ctx *c)
{
    struct lf_fleet *f = c->hub->fleet;
    const char *name = c->params[0];
    json_t *body = NULL;
    lf_fleet_uevent *evs = NULL;
    const char **raw = NULL;
    char *arena = NULL;
    int admitted = 0;
    if (!lf_fleet_check_unit(c, name)) goto out;
    fleet_unit *u = lf_fleet_get(f, name);
    if (!u) {
        lf_http_error(c->resp, 404, "not_found", "no unit named '%s'", name);
        goto out;
    }
    int max = c->hub->cfg.ingest_inflight_max > 0 ? c->hub->cfg.ingest_inflight_max : 64;
    admitted = 1;
    if (atomic_fetch_add(&f->inflight, 1) >= max) {
        lf_http_header_add(c->resp, "Retry-After", "1");
        lf_http_error(c->resp, 429, "overloaded",
                      "too many event batches in progress; retry after 1 s");
        lf_metric_inc("lockerfleet_ingest_rejected_total", "reason=\"overload\"", 1);
        goto out;
    }
    evs = lf_xmalloc(LF_FLEET_BATCH_MAX * sizeof *evs);
    size_t n = 0;
    /* The batch as units send it takes the fast path; anything else (and
     * every invalid batch, for its error) goes through jansson. */
    raw = lf_xmalloc(LF_FLEET_BATCH_MAX * sizeof *raw);
    if (!lf_fleet_batch_fast(c->req->body, c->req->body_len, LF_FLEET_BATCH_MAX, evs, raw, &n,
                             &arena)) {
        free(raw);
        raw = NULL;
    }
    char field[48], msg[160];
    if (raw) {
        /* parsed */
    } else if (!(body = lf_http_body_json(c->req, c->resp))) {
        goto out;
    } else if (lf_fleet_batch_parse(json_object_get(body, "events"), LF_FLEET_BATCH_MAX, evs, &n,
                                    field, sizeof field, msg, sizeof msg)) {
        char text[256];
        snprintf(text, sizeof text, "%s: %s", field, msg);
        lf_http_json(c->resp, 400,
                     json_pack("{s:{s:s,s:s,s:s}}", "error", "code", "invalid_field", "message",
                               text, "field", field));
        goto out;
    }
    /* A sign of life only once the batch is valid: bad input changes
     * nothing, not even presence (no UnitCameOnline for garbage). */
    lf_fleet_seen(f, name, "push", -1);
    ingest_out o;
    ingest(f, u, evs, raw, n, "push", &o);
    if (o.status == 200) {
        lf_http_json(c->resp, 200,
                     json_pack("{s:I,s:I,s:I,s:I}", "acked_seq", (json_int_t)o.acked, "accepted",
                               (json_int_t)o.accepted, "duplicates", (json_int_t)o.dups, "position",
                               (json_int_t)o.position));
    } else if (o.status == 409 && strcmp(o.code, "seq_gap") == 0) {
        lf_http_json(c->resp, 409,
                     json_pack("{s:{s:s,s:s},s:I}", "error", "code", o.code, "message", o.msg,
                               "expected_seq", (json_int_t)o.expected));
    } else {
        if (o.status == 503) lf_http_header_add(c->resp, "Retry-After", "1");
        lf_http_error(c->resp, o.status, o.code, "%s", o.msg);
    }
out:
    if (admitted) atomic_fetch_sub(&f->inflight, 1);
    free(evs);
    free(raw);
    free(arena);
    json_decref(body);
}

void lf_fleet_pull_unit(struct lf_fleet *f, const char *name)
{
    char url[512];
    lf_fleet_uevent *evs = NULL;
    pthread_mutex_lock(&f->mu);
    fleet_unit *u = lf_fleet_find(f, name);
    int go = u && u->ps.online && u->url[0] && !u->pulling;
    if (go) {
        u->pulling = 1;
        snprintf(url, sizeof url, "%s", u->url);
    }
    pthread_mutex_unlock(&f->mu);
    if (!go) return;
    evs = lf_xmalloc(LF_FLEET_BATCH_MAX * sizeof *evs);
    char stream[80];
    snprintf(stream, sizeof stream, "unitlog-%s", name);
    for (int page = 0; page < PULL_PAGES_MAX && !atomic_load(&f->stop); page++) {
        pthread_mutex_lock(&u->ingest_mu);
        int64_t after = stored_seq(f, u, stream, 0);
        pthread_mutex_unlock(&u->ingest_mu);
        if (after < 0) break;
        char *full =
            lf_asprintf("%s/events?after=%lld&limit=%d", url, (long long)after, PULL_LIMIT);
        lf_http_result r;
        int rc = lf_fleet_unit_call(f, name, "GET", full, NULL, &r);
        free(full);
        json_t *j = NULL;
        size_t n = 0;
        char field[48], msg[160];
        int stop = 1;
        if (rc || r.status != 200) {
            LF_WARN("fleet", "pull from %s: %s", name, lf_fleet_call_reason(rc, r.status));
        } else if (!(j = json_loadb(r.body.data ? r.body.data : "", r.body.len, 0, NULL))) {
            LF_WARN("fleet", "pull from %s: the answer is not JSON", name);
        } else if (json_array_size(json_object_get(j, "events")) == 0) {
            /* nothing new */
        } else if (lf_fleet_batch_parse(json_object_get(j, "events"), LF_FLEET_BATCH_MAX, evs, &n,
                                        field, sizeof field, msg, sizeof msg)) {
            LF_WARN("fleet", "pull from %s: %s: %s", name, field, msg);
        } else {
            ingest_out o;
            ingest(f, u, evs, NULL, n, "pull", &o);
            if (o.status != 200)
                LF_WARN("fleet", "pull from %s: %s", name, o.msg);
            else {
                lf_fleet_seen(f, name, "pull", -1);
                stop = !(n >= PULL_LIMIT && o.accepted > 0); /* a full page: ask again */
            }
        }
        json_decref(j);
        lf_http_result_free(&r);
        if (stop) break;
    }
    pthread_mutex_lock(&f->mu);
    u->pulling = 0;
    pthread_mutex_unlock(&f->mu);
    free(evs);
}
