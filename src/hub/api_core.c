/*
 * api_core.c — the hub's core endpoints: /healthz, /metrics, the embedded
 * web assets (/, /app, /assets/FILE, /FILE), the log over HTTP
 * (GET /v1/events, GET /v1/events/live as server-sent events) and the
 * projections' status and rebuild.
 */
#include "hub/metrics_host.h"
#include "hub/router.h"
#include "projection/projection.h"

#include <stdlib.h>
#include <string.h>

struct lf_web_asset {
    const char *path, *mime;
    const unsigned char *data;
    size_t len;
};
extern const struct lf_web_asset lf_web_assets[];
extern const size_t lf_web_assets_n;

#define EVENTS_PAGE_MAX 10000
#define SSE_KEEPALIVE_MS 15000

static void healthz(lf_ctx *c)
{
    int64_t head = 0;
    int rc = lf_store_head(c->hub->store, &head);
    if (rc) {
        lf_http_error(c->resp, 503, "store_unavailable", "event store: %s", lf_strerror(rc));
        return;
    }
    lf_http_json(c->resp, 200,
                 json_pack("{s:s,s:s,s:I,s:I}", "status", "ok", "node_id", c->hub->cfg.node_id,
                           "position", (json_int_t)head, "uptime_ms",
                           (json_int_t)(lf_now_ms() - c->hub->started_ms)));
}

static void metrics(lf_ctx *c)
{
    int64_t head = 0;
    if (lf_store_head(c->hub->store, &head) == 0)
        lf_metric_set("lockerfleet_log_position", NULL, (double)head);
    json_t *st = lf_projections_status(c->hub->proj), *p;
    size_t i;
    json_array_foreach(st, i, p)
    {
        char labels[128];
        snprintf(labels, sizeof labels, "projection=\"%s\"",
                 json_string_value(json_object_get(p, "name")));
        lf_metric_set("lockerfleet_projection_position", labels,
                      (double)json_integer_value(json_object_get(p, "position")));
        lf_metric_set("lockerfleet_projection_lag", labels,
                      (double)json_integer_value(json_object_get(p, "lag")));
    }
    json_decref(st);
    lf_metrics_host_update(c->hub->data_dir);
    lf_buf b;
    lf_buf_init(&b, 0);
    lf_metrics_render(&b);
    lf_http_text(c->resp, 200, "text/plain; version=0.0.4; charset=utf-8", b.data ? b.data : "",
                 b.len);
    lf_buf_free(&b);
}

static const struct lf_web_asset *asset_find(const char *name)
{
    for (size_t i = 0; i < lf_web_assets_n; i++)
        if (strcmp(lf_web_assets[i].path, name) == 0) return &lf_web_assets[i];
    return NULL;
}

static void serve_asset(lf_ctx *c, const char *name)
{
    const struct lf_web_asset *a = asset_find(name);
    if (!a && !strchr(name, '.')) { /* /app -> app.html */
        char with[160];
        snprintf(with, sizeof with, "%.150s.html", name);
        a = asset_find(with);
    }
    if (!a) {
        lf_http_error(c->resp, 404, "not_found", "no such endpoint or asset");
        return;
    }
    lf_http_text(c->resp, 200, a->mime, a->data, a->len);
    lf_http_header_add(c->resp, "Cache-Control", "no-cache");
}

static void index_page(lf_ctx *c)
{
    serve_asset(c, "index.html");
}

static void asset(lf_ctx *c)
{
    serve_asset(c, c->params[0]);
}

/* ---- the log ------------------------------------------------------------ */

static json_t *event_json(const lf_event *e)
{
    char ts[LF_TIME_LEN];
    json_t *o = json_object();
    json_object_set_new(o, "position", json_integer(e->position));
    json_object_set_new(o, "stream", json_string(e->stream));
    json_object_set_new(o, "version", json_integer(e->version));
    json_object_set_new(o, "id", json_string(e->id));
    json_object_set_new(o, "type", json_string(e->type));
    json_object_set_new(o, "time", json_string(lf_time_format(e->time_ms, ts)));
    json_t *d = json_loads(e->data, 0, NULL);
    json_object_set_new(o, "data", d ? d : json_object());
    json_t *m = json_loads(e->meta, 0, NULL);
    json_object_set_new(o, "meta", m ? m : json_object());
    return o;
}

/* The first version of stream whose position is > after (positions grow
 * with versions inside a stream): a binary search over single reads. */
static int stream_first_after(lf_store *s, const char *stream, int64_t after, int64_t *ver)
{
    int64_t lo = 1, hi, rc;
    rc = lf_store_stream_version(s, stream, &hi);
    if (rc) return (int)rc;
    hi++; /* answer in [1, version+1] */
    lf_event_list l;
    lf_event_list_init(&l);
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        rc = lf_store_read_stream(s, stream, mid, 1, &l);
        if (rc) break;
        if (l.n == 0 || l.ev[0].position > after)
            hi = mid;
        else
            lo = mid + 1;
        lf_event_list_free(&l);
    }
    lf_event_list_free(&l);
    *ver = lo;
    return (int)rc;
}

static void events_list(lf_ctx *c)
{
    int64_t after, limit;
    lf_event_list l;
    lf_event_list_init(&l);
    if (lf_http_query_i64(c->req, c->resp, "after", 0, INT64_MAX, 0, &after) ||
        lf_http_query_i64(c->req, c->resp, "limit", 1, EVENTS_PAGE_MAX, 100, &limit))
        goto out;
    const char *stream = lf_http_query(c->req, "stream");
    int rc;
    if (stream) {
        if (!*stream || strlen(stream) > LF_STREAM_MAX) {
            lf_http_error(c->resp, 400, "invalid_parameter",
                          "query parameter 'stream' must be 1..%d bytes", LF_STREAM_MAX);
            goto out;
        }
        int64_t ver;
        rc = stream_first_after(c->hub->store, stream, after, &ver);
        if (rc == 0) rc = lf_store_read_stream(c->hub->store, stream, ver, (size_t)limit, &l);
    } else {
        rc = lf_store_read_all(c->hub->store, after, (size_t)limit, &l);
    }
    int64_t head = 0;
    if (rc == 0) rc = lf_store_head(c->hub->store, &head);
    if (rc) {
        lf_hub_error_rc(c, rc, "reading the log");
        goto out;
    }
    json_t *arr = json_array();
    int64_t last = after;
    for (size_t i = 0; i < l.n; i++) {
        json_array_append_new(arr, event_json(&l.ev[i]));
        last = l.ev[i].position;
    }
    lf_http_json(c->resp, 200,
                 json_pack("{s:o,s:I,s:I}", "events", arr, "last_position", (json_int_t)last,
                           "head", (json_int_t)head));
out:
    lf_event_list_free(&l);
}

/* Server-sent events: each log event is one message whose id is its
 * position, so an EventSource resumes with Last-Event-ID on its own. */
struct sse {
    lf_hub *hub;
    const lf_http_resp *resp; /* the response it streams (lf_http_pooled) */
    int64_t pos;
    lf_buf out;
    size_t off;
    int64_t last_write_ms;
    char stream[LF_STREAM_MAX + 1]; /* optional stream filter */
};

static ssize_t sse_produce(void *ctx, char *buf, size_t max)
{
    struct sse *s = ctx;
    if (s->off < s->out.len) {
        size_t n = s->out.len - s->off;
        if (n > max) n = max;
        memcpy(buf, s->out.data + s->off, n);
        s->off += n;
        s->last_write_ms = lf_mono_ms();
        return (ssize_t)n;
    }
    s->out.len = 0;
    s->off = 0;
    if (atomic_load(&s->hub->stopping)) return -1;
    lf_event_list l;
    lf_event_list_init(&l);
    int rc = lf_store_read_all(s->hub->store, s->pos, 500, &l);
    if (rc) {
        lf_event_list_free(&l);
        return -1;
    }
    for (size_t i = 0; i < l.n; i++) {
        const lf_event *e = &l.ev[i];
        s->pos = e->position;
        if (s->stream[0] && strcmp(s->stream, e->stream) != 0) continue;
        json_t *o = event_json(e);
        char *txt = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (txt) {
            lf_buf_printf(&s->out, "id: %lld\nevent: %s\ndata: %s\n\n", (long long)e->position,
                          e->type, txt);
            free(txt);
        }
    }
    lf_event_list_free(&l);
    if (s->out.len) return sse_produce(ctx, buf, max);
    if (lf_mono_ms() - s->last_write_ms >= SSE_KEEPALIVE_MS) {
        lf_buf_printf(&s->out, ": keepalive\n\n");
        return sse_produce(ctx, buf, max);
    }
    /* Nothing new: block briefly so MHD does not spin, then say "later"
     * (a pool-mode server parks the connection itself instead) */
    rc = lf_store_wait(s->hub->store, s->pos, lf_http_pooled(s->resp) ? 0 : 1000);
    if (rc == LF_ECLOSED) return -1;
    return 0;
}

static void sse_free(void *ctx)
{
    struct sse *s = ctx;
    lf_buf_free(&s->out);
    free(s);
}

static void events_live(lf_ctx *c)
{
    int64_t after, head = 0;
    if (lf_http_query_i64(c->req, c->resp, "after", 0, INT64_MAX, -1, &after)) return;
    const char *lei = lf_http_header(c->req, "Last-Event-ID");
    if (lei && *lei) {
        int64_t v;
        if (lf_parse_i64(lei, &v) || v < 0) {
            lf_http_error(c->resp, 400, "invalid_header",
                          "header 'Last-Event-ID' must be a log position (integer >= 0)");
            return;
        }
        after = v; /* the client's own record of what it has seen wins */
    }
    const char *stream = lf_http_query(c->req, "stream");
    if (stream && (!*stream || strlen(stream) > LF_STREAM_MAX)) {
        lf_http_error(c->resp, 400, "invalid_parameter",
                      "query parameter 'stream' must be 1..%d bytes", LF_STREAM_MAX);
        return;
    }
    if (after < 0) {
        int rc = lf_store_head(c->hub->store, &head);
        if (rc) {
            lf_hub_error_rc(c, rc, "reading the log head");
            return;
        }
        after = head; /* no position given: live events only */
    }
    struct sse *s = lf_xcalloc(1, sizeof *s);
    s->hub = c->hub;
    s->resp = c->resp;
    s->pos = after;
    lf_buf_init(&s->out, 0);
    if (stream) snprintf(s->stream, sizeof s->stream, "%s", stream);
    /* Tell the client where it starts and how fast to reconnect. */
    lf_buf_printf(&s->out, "retry: 2000\n: stream after position %lld\n\n", (long long)after);
    s->last_write_ms = lf_mono_ms();
    c->resp->status = 200;
    c->resp->content_type = "text/event-stream";
    lf_http_header_add(c->resp, "Cache-Control", "no-cache");
    lf_http_header_add(c->resp, "X-Accel-Buffering", "no");
    c->resp->stream_fn = sse_produce;
    c->resp->stream_free = sse_free;
    c->resp->stream_ctx = s;
}

/* ---- projections ---------------------------------------------------------- */

/* ?digest=1 adds a digest of each projection's tables (reads them all:
 * for tests and operators comparing a rebuild with the live model). */
static void projections_list(lf_ctx *c)
{
    const char *dq = lf_http_query(c->req, "digest");
    if (dq && strcmp(dq, "1") == 0 && lf_http_offload(c->resp)) return; /* reads every table */
    json_t *st = lf_projections_status(c->hub->proj), *p;
    size_t i;
    if (dq && strcmp(dq, "1") == 0) {
        json_array_foreach(st, i, p)
        {
            char d[65];
            const char *name = json_string_value(json_object_get(p, "name"));
            if (lf_projection_digest(c->hub->proj, name, d) == 0)
                json_object_set_new(p, "digest", json_string(d));
        }
    }
    lf_http_json(c->resp, 200, st);
}

static void projection_rebuild(lf_ctx *c)
{
    const char *name = c->params[0];
    int rc = lf_projections_rebuild(c->hub->proj, name);
    if (rc == LF_ENOTFOUND) {
        lf_http_error(c->resp, 404, "not_found", "no projection named '%.64s'", name);
        return;
    }
    if (rc == LF_EBUSY) {
        lf_http_error(c->resp, 409, "rebuild_in_progress",
                      "projection '%.64s' is already rebuilding", name);
        return;
    }
    if (rc) {
        lf_hub_error_rc(c, rc, "starting the rebuild");
        return;
    }
    int64_t head = 0;
    lf_store_head(c->hub->store, &head);
    lf_http_json(c->resp, 202,
                 json_pack("{s:s,s:s,s:I}", "name", name, "state", "rebuilding", "position",
                           (json_int_t)head));
}

static const lf_route routes[] = {
    {"GET", "/healthz", LF_ROLE_PUBLIC, healthz, "healthz", 0},
    {"GET", "/metrics", LF_ROLE_PUBLIC, metrics, "metrics", 0},
    {"GET", "/v1/events", LF_ROLE_ADMIN, events_list, "events_list", 0},
    {"GET", "/v1/events/live", LF_ROLE_ADMIN, events_live, "events_live", 0},
    {"GET", "/v1/projections", LF_ROLE_ADMIN, projections_list, "projections_list", 0},
    {"POST", "/v1/projections/:name/rebuild", LF_ROLE_ADMIN, projection_rebuild,
     "projection_rebuild", 0},
    {"GET", "/", LF_ROLE_PUBLIC, index_page, "web", 0},
    {"GET", "/assets/:file", LF_ROLE_PUBLIC, asset, "web", 0},
    {"GET", "/:file", LF_ROLE_PUBLIC, asset, "web", 0},
    {0},
};

const lf_route *lf_api_core_routes(void)
{
    return routes;
}
