/*
 * http.c — lf_http server on libmicrohttpd (see http.h). One thread per
 * connection, so handlers may block on bounded waits. Bodies are read into
 * a capped buffer; past the cap the request is answered 413 without
 * running the handler. Every request gets one log line: method, path,
 * status, ms (never headers, so never a token).
 *
 * Pool mode (lf_http_config.pool_threads): a few MHD threads poll every
 * connection with epoll. A handler that has to wait calls lf_http_defer();
 * the connection is then suspended (MHD_suspend_connection) and put on a
 * list that one timer thread walks, resuming each when due, whereupon MHD
 * calls on_request again and the handler runs again on the same request.
 * A handler that blocks calls lf_http_offload() first: the connection is
 * suspended, the handler runs again on a thread of its own, and its answer
 * is sent when MHD calls on_request after the resume. A handler that
 * calls lf_http_later() is suspended at once; the thread that completes
 * it sets the answer (or asks for a rerun) and resumes the connection. A
 * streamed response
 * whose stream_fn has nothing to send is parked the same way (suspended,
 * resumed by the timer 100 ms later) instead of blocking a polling thread.
 */
#define _GNU_SOURCE
#include "http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

typedef struct {
    struct MHD_Connection *c;
    int64_t due_us;
} deferred;

/* Offload workers at most: past that, jobs queue for a free one. */
#define OFFLOAD_WORKERS_MAX 256

struct lf_http_server {
    struct MHD_Daemon *d;
    lf_http_handler handler;
    void *app;
    size_t body_max;
    int port;
    const char *component;
    int quiet;
    char *cert_pem, *key_pem;
    atomic_int active;   /* requests between arrival and completion */
    atomic_int stopping; /* set by lf_http_stop: streams end, waits end */
    /* pool mode: suspended connections and the thread that resumes them */
    int pool;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t timer;
    int timer_started, timer_stop; /* under mu */
    deferred *defers;              /* under mu */
    size_t ndefers, capdefers;
    atomic_int offloads; /* offloaded requests queued or running */
    atomic_int laters;   /* requests answered later (lf_http_later), not resumed yet */
    /* offload workers: started as needed, kept, stopped by lf_http_stop */
    pthread_mutex_t wmu;
    pthread_cond_t wcv;
    struct offload_job *qhead, *qtail; /* under wmu */
    pthread_t workers[OFFLOAD_WORKERS_MAX];
    int nworkers, idle, queued, wstop; /* under wmu */
};

typedef struct {
    lf_buf body;
    int too_big;
    int64_t start_us;
    char rid[17];
    lf_http_resp *done;  /* offloaded or answered later: the answer, set before the resume */
    lf_http_resp *stale; /* lf_http_later_rerun: the dropped response, freed on resume */
    int later;           /* the handler called lf_http_later (polling thread only) */
} reqctx;

#define STREAM_POLL_MS 100

int lf_http_parse_listen(const char *listen, char *host, int *port)
{
    if (!listen) return LF_EINVAL;
    const char *colon = strrchr(listen, ':');
    if (!colon) return LF_EINVAL;
    size_t hl = (size_t)(colon - listen);
    if (hl >= 256) return LF_EINVAL;
    memcpy(host, listen, hl);
    host[hl] = '\0';
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    int64_t p;
    if (lf_parse_i64(colon + 1, &p) || p < 0 || p > 65535) return LF_EINVAL;
    *port = (int)p;
    return 0;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    lf_buf b;
    lf_buf_init(&b, 1 << 20);
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        if (lf_buf_append(&b, tmp, n)) break;
    fclose(f);
    if (!b.data) lf_buf_append(&b, "", 0);
    return b.data;
}

const char *lf_http_query(lf_http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *lf_http_header(lf_http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *lf_http_bearer(lf_http_req *req)
{
    const char *a = lf_http_header(req, "Authorization");
    if (!a || strncasecmp(a, "Bearer ", 7) != 0) return NULL;
    a += 7;
    while (*a == ' ')
        a++;
    return *a ? a : NULL;
}

int lf_http_query_i64(lf_http_req *req, lf_http_resp *resp, const char *name, int64_t min,
                      int64_t max, int64_t def, int64_t *out)
{
    const char *v = lf_http_query(req, name);
    if (!v) {
        *out = def;
        return 0;
    }
    int64_t x;
    if (lf_parse_i64(v, &x) || x < min || x > max) {
        lf_http_error(resp, 400, "invalid_parameter",
                      "query parameter '%s' must be an integer in [%lld, %lld]", name,
                      (long long)min, (long long)max);
        return LF_EINVAL;
    }
    *out = x;
    return 0;
}

json_t *lf_http_body_json(lf_http_req *req, lf_http_resp *resp)
{
    if (req->body_len == 0) {
        lf_http_error(resp, 400, "invalid_json",
                      "request body is empty; a JSON object is required");
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        lf_http_error(resp, 400, "invalid_json", "body is not valid JSON (line %d, column %d): %s",
                      je.line, je.column, je.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        lf_http_error(resp, 400, "invalid_json", "body must be a JSON object");
        return NULL;
    }
    return j;
}

void lf_http_json(lf_http_resp *resp, int status, json_t *obj)
{
    resp->status = status;
    resp->content_type = "application/json";
    resp->body.len = 0;
    char *s = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (s) {
        lf_buf_append(&resp->body, s, strlen(s));
        free(s);
    }
}

void lf_http_error(lf_http_resp *resp, int status, const char *code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *e = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
    if (!e) /* message not valid UTF-8: say so without echoing it */
        e = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message",
                      "invalid request (details not representable)");
    lf_http_json(resp, status, e);
}

void lf_http_header_add(lf_http_resp *resp, const char *name, const char *value)
{
    if (resp->nheaders >= 16) return;
    resp->headers[resp->nheaders][0] = lf_strdup(name);
    resp->headers[resp->nheaders][1] = lf_strdup(value);
    resp->nheaders++;
}

void lf_http_text(lf_http_resp *resp, int status, const char *content_type, const void *data,
                  size_t len)
{
    resp->status = status;
    resp->content_type = content_type;
    resp->body.len = 0;
    lf_buf_append(&resp->body, data, len);
}

void lf_http_split_path(lf_http_req *req, char *copy)
{
    req->nsegs = 0;
    char *save = NULL;
    for (char *t = strtok_r(copy, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (req->nsegs >= LF_HTTP_MAX_SEGS) {
            req->nsegs = -1;
            return;
        }
        req->segs[req->nsegs++] = t;
    }
}

/* Pool mode: suspends c and lists it for the timer thread to resume in ms
 * milliseconds. False (nothing done) once the server is stopping. */
static bool park(lf_http_server *s, struct MHD_Connection *c, int64_t ms)
{
    bool parked = false;
    pthread_mutex_lock(&s->mu);
    if (!atomic_load(&s->stopping)) {
        if (s->ndefers == s->capdefers) {
            s->capdefers = s->capdefers ? s->capdefers * 2 : 256;
            s->defers = lf_xrealloc(s->defers, s->capdefers * sizeof *s->defers);
        }
        /* Suspended before the timer can see it: resuming a connection
         * that is not suspended yet is undefined. */
        MHD_suspend_connection(c);
        s->defers[s->ndefers++] = (deferred){c, lf_mono_us() + ms * 1000};
        parked = true;
        pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return parked;
}

static ssize_t stream_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    lf_http_resp *r = cls;
    if (r->server_ && atomic_load(&r->server_->stopping)) return MHD_CONTENT_READER_END_OF_STREAM;
    ssize_t n = r->stream_fn(r->stream_ctx, buf, max);
    if (n < 0) return MHD_CONTENT_READER_END_OF_STREAM;
    /* pool mode: nothing yet; returning 0 alone would make MHD spin */
    if (n == 0 && r->server_ && r->server_->pool) park(r->server_, r->conn_, STREAM_POLL_MS);
    return n;
}

static void stream_free_cb(void *cls)
{
    lf_http_resp *r = cls;
    if (r->stream_free) r->stream_free(r->stream_ctx);
    for (int i = 0; i < r->nheaders; i++) {
        free(r->headers[i][0]);
        free(r->headers[i][1]);
    }
    lf_buf_free(&r->body);
    free(r);
}

static enum MHD_Result send_resp(struct MHD_Connection *c, lf_http_resp *r)
{
    struct MHD_Response *mr;
    if (r->stream_fn) {
        mr = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_cb, r,
                                               stream_free_cb);
    } else {
        mr = MHD_create_response_from_buffer(r->body.len, r->body.data ? r->body.data : (void *)"",
                                             MHD_RESPMEM_MUST_COPY);
    }
    if (!mr) return MHD_NO;
    MHD_add_response_header(mr, "Content-Type",
                            r->content_type ? r->content_type : "application/json");
    for (int i = 0; i < r->nheaders; i++)
        MHD_add_response_header(mr, r->headers[i][0], r->headers[i][1]);
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)r->status, mr);
    MHD_destroy_response(mr);
    return ok;
}

static void log_line(lf_http_server *s, const char *method, const char *url, int status,
                     int64_t start_us, const char *rid)
{
    if (s->quiet) return;
    double ms = (double)(lf_mono_us() - start_us) / 1000.0;
    /* The path only: never headers or bodies, so never a token. Paths
     * carry no secrets in our API (codes travel in bodies). */
    char safe[256];
    size_t j = 0;
    for (size_t i = 0; url[i] && j < sizeof safe - 1; i++)
        safe[j++] = (url[i] < 0x20 || url[i] == 0x7f) ? '?' : url[i];
    safe[j] = '\0';
    lf_log(LF_LOG_INFO, s->component, "%s %s %d %.1fms rid=%s", method, safe, status, ms, rid);
}

/* URL unescaping for the path and the query (MHD_OPTION_UNESCAPE_CALLBACK):
 * like MHD's own, except that %00 is left as the three characters "%00".
 * Decoded, a NUL would silently cut a path segment or a query value short
 * in every C string that follows ("bad-u%00x" read as "bad-u"); kept, it is
 * just an invalid character that the handlers' checks reject. */
static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

size_t lf_http_unescape(char *s)
{
    char *w = s;
    for (const char *r = s; *r; r++) {
        int hi, lo;
        if (r[0] == '%' && (hi = hexval(r[1])) >= 0 && (lo = hexval(r[2])) >= 0 && (hi | lo)) {
            *w++ = (char)(hi * 16 + lo);
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}

static size_t unescape_cb(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return lf_http_unescape(s);
}

static lf_http_resp *resp_new(lf_http_server *s, struct MHD_Connection *c)
{
    lf_http_resp *resp = lf_xcalloc(1, sizeof *resp);
    resp->server_ = s;
    resp->conn_ = c;
    lf_buf_init(&resp->body, 0);
    resp->status = 200;
    return resp;
}

/* Builds the request and runs the application's handler into resp. */
static void run_handler(lf_http_server *s, struct MHD_Connection *c, const char *url,
                        const char *method, reqctx *rc, lf_http_resp *resp)
{
    if (rc->too_big) {
        lf_http_error(resp, 413, "body_too_large", "request body exceeds %zu bytes", s->body_max);
        return;
    }
    lf_http_req req = {0};
    req.method = method;
    req.path = url;
    req.body = rc->body.data ? rc->body.data : "";
    req.body_len = rc->body.len;
    req.start_us = rc->start_us;
    req.conn = c;
    memcpy(req.request_id, rc->rid, sizeof rc->rid);
    char *copy = lf_strdup(url);
    lf_http_split_path(&req, copy);
    char addr[INET6_ADDRSTRLEN] = "?";
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, addr,
                      sizeof addr);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, addr,
                      sizeof addr);
    }
    req.remote = addr;
    if (req.nsegs < 0)
        lf_http_error(resp, 404, "not_found", "path has too many segments");
    else
        s->handler(&req, resp, s->app);
    free(copy);
}

/* Logs and queues resp (freed here, or by MHD when streamed). */
static enum MHD_Result finish(lf_http_server *s, struct MHD_Connection *c, const char *method,
                              const char *url, reqctx *rc, lf_http_resp *resp)
{
    resp->in_worker_ = 0; /* its stream_fn (if any) runs on a polling thread */
    if (resp->log_saved_) lf_log_ctx_restore(&resp->log_); /* answered on another thread */
    log_line(s, method, url, resp->status, rc->start_us, rc->rid);
    enum MHD_Result ok = send_resp(c, resp);
    if (!resp->stream_fn)
        stream_free_cb(resp); /* streamed: freed by MHD */
    else if (ok != MHD_YES) {
        /* MHD did not take the response: it already called stream_free. */
    }
    return ok;
}

typedef struct offload_job {
    lf_http_server *s;
    struct MHD_Connection *c;
    reqctx *rc;
    char *url, *method;
    struct offload_job *next;
} offload_job;

/* An offloaded request: the handler again, allowed to block; then the
 * connection is resumed and on_request sends rc->done. */
static void offload_run(offload_job *j)
{
    lf_http_server *s = j->s;
    lf_http_resp *resp = resp_new(s, j->c);
    resp->in_worker_ = 1;
    run_handler(s, j->c, j->url, j->method, j->rc, resp);
    lf_log_ctx_save(&resp->log_);
    resp->log_saved_ = 1;
    resp->offload_ = 0;
    resp->defer_ms_ = 0;
    j->rc->done = resp;
    MHD_resume_connection(j->c); /* after this, j->rc belongs to MHD's thread */
    free(j->url);
    free(j->method);
    free(j);
    atomic_fetch_sub(&s->offloads, 1);
}

static void *worker_main(void *arg)
{
    lf_http_server *s = arg;
    pthread_mutex_lock(&s->wmu);
    for (;;) {
        offload_job *j = s->qhead;
        if (!j) {
            if (s->wstop) break;
            s->idle++;
            pthread_cond_wait(&s->wcv, &s->wmu);
            s->idle--;
            continue;
        }
        s->qhead = j->next;
        if (!s->qhead) s->qtail = NULL;
        s->queued--;
        pthread_mutex_unlock(&s->wmu);
        offload_run(j);
        pthread_mutex_lock(&s->wmu);
    }
    pthread_mutex_unlock(&s->wmu);
    return NULL;
}

/* Pool mode: suspends c and queues its handler for an offload worker (a
 * new one when none is idle, up to OFFLOAD_WORKERS_MAX). */
static void offload(lf_http_server *s, struct MHD_Connection *c, const char *url,
                    const char *method, reqctx *rc)
{
    offload_job *j = lf_xcalloc(1, sizeof *j);
    *j = (offload_job){s, c, rc, lf_strdup(url), lf_strdup(method), NULL};
    atomic_fetch_add(&s->offloads, 1);
    MHD_suspend_connection(c); /* before a worker can resume it */
    pthread_mutex_lock(&s->wmu);
    if (s->queued >= s->idle && s->nworkers < OFFLOAD_WORKERS_MAX &&
        pthread_create(&s->workers[s->nworkers], NULL, worker_main, s) == 0)
        s->nworkers++;
    if (s->nworkers == 0) { /* no worker could start: block this thread, not fail */
        pthread_mutex_unlock(&s->wmu);
        offload_run(j);
        return;
    }
    if (s->qtail)
        s->qtail->next = j;
    else
        s->qhead = j;
    s->qtail = j;
    s->queued++;
    pthread_cond_signal(&s->wcv);
    pthread_mutex_unlock(&s->wmu);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    lf_http_server *s = cls;
    reqctx *rc = *con_cls;
    if (!rc) {
        rc = lf_xcalloc(1, sizeof *rc);
        atomic_fetch_add(&s->active, 1);
        lf_buf_init(&rc->body, s->body_max);
        rc->start_us = lf_mono_us();
        snprintf(rc->rid, sizeof rc->rid, "%08x%08x", lf_random_u32(), lf_random_u32());
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        int64_t n;
        if (cl && lf_parse_i64(cl, &n) == 0 && (n < 0 || (uint64_t)n > s->body_max))
            rc->too_big = 1;
        *con_cls = rc;
        if (!rc->too_big) return MHD_YES;
    }
    if (*upload_data_size && !rc->too_big) {
        if (lf_buf_append(&rc->body, upload_data, *upload_data_size)) rc->too_big = 1;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (rc->done) { /* an offloaded handler's answer */
        lf_http_resp *resp = rc->done;
        rc->done = NULL;
        return finish(s, c, method, url, rc, resp);
    }
    if (rc->stale) { /* lf_http_later_rerun: the handler runs again */
        stream_free_cb(rc->stale);
        rc->stale = NULL;
    }
    lf_http_resp *resp = resp_new(s, c);
    resp->rc_ = rc;
    run_handler(s, c, url, method, rc, resp);
    if (rc->later) { /* suspended; resp belongs to whoever completes it */
        rc->later = 0;
        return MHD_YES;
    }
    if (resp->offload_) {
        if (!atomic_load(&s->stopping)) {
            stream_free_cb(resp);
            offload(s, c, url, method, rc);
            return MHD_YES;
        }
        lf_http_error(resp, 503, "stopping", "server is stopping");
    } else if (resp->defer_ms_ > 0) {
        if (park(s, c, resp->defer_ms_)) {
            stream_free_cb(resp);
            return MHD_YES;
        }
        lf_http_error(resp, 503, "stopping", "server is stopping");
    }
    return finish(s, c, method, url, rc, resp);
}

bool lf_http_offload(lf_http_resp *resp)
{
    lf_http_server *s = resp->server_;
    if (!s || !s->pool || resp->in_worker_ || atomic_load(&s->stopping)) return false;
    resp->offload_ = 1;
    return true;
}

bool lf_http_pending(const lf_http_resp *resp)
{
    return resp->offload_ || resp->defer_ms_ > 0 || resp->later_;
}

bool lf_http_later(lf_http_resp *resp)
{
    lf_http_server *s = resp->server_;
    if (!s || !s->pool || resp->in_worker_ || !resp->rc_ || atomic_load(&s->stopping)) return false;
    reqctx *rc = resp->rc_;
    resp->later_ = 1;
    rc->later = 1;
    lf_log_ctx_save(&resp->log_);
    resp->log_saved_ = 1;
    atomic_fetch_add(&s->laters, 1);
    /* Suspended here, in the access handler (the only safe place), before
     * the other thread can resume it; MHD acts on a resume only on this
     * connection's polling thread, so after the handler has returned. */
    MHD_suspend_connection(resp->conn_);
    return true;
}

void lf_http_later_log(lf_http_resp *resp, const char *key, const char *value)
{
    lf_log_snap_set(&resp->log_, key, value);
}

void lf_http_later_done(lf_http_resp *resp)
{
    lf_http_server *s = resp->server_;
    reqctx *rc = resp->rc_;
    rc->done = resp; /* sent by on_request after the resume */
    MHD_resume_connection(resp->conn_);
    atomic_fetch_sub(&s->laters, 1);
}

void lf_http_later_rerun(lf_http_resp *resp)
{
    lf_http_server *s = resp->server_;
    reqctx *rc = resp->rc_;
    /* freed by on_request on the polling thread: the handler that called
     * lf_http_later may still be returning through code that reads it */
    rc->stale = resp;
    MHD_resume_connection(resp->conn_);
    atomic_fetch_sub(&s->laters, 1);
}

bool lf_http_pooled(const lf_http_resp *resp)
{
    return resp->server_ && resp->server_->pool && !resp->in_worker_;
}

bool lf_http_defer(lf_http_resp *resp, int64_t ms)
{
    lf_http_server *s = resp->server_;
    if (!s || !s->pool || resp->in_worker_ || atomic_load(&s->stopping)) return false;
    resp->defer_ms_ = ms > 0 ? ms : 1;
    return true;
}

/* Pool mode: resumes suspended connections when due (all of them at once
 * when stopping), sleeping until the earliest is due. */
static void *timer_main(void *arg)
{
    lf_http_server *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->timer_stop || s->ndefers > 0) {
        int64_t now = lf_mono_us(), next = now + 1000000;
        bool all = atomic_load(&s->stopping);
        for (size_t i = 0; i < s->ndefers;) {
            if (all || s->defers[i].due_us <= now) {
                MHD_resume_connection(s->defers[i].c);
                s->defers[i] = s->defers[--s->ndefers];
            } else {
                if (s->defers[i].due_us < next) next = s->defers[i].due_us;
                i++;
            }
        }
        if (s->timer_stop && s->ndefers == 0) break;
        struct timespec ts;
        int64_t wait_us = next - now;
        if (wait_us < 1000) wait_us = 1000;
        lf_abstime_us(wait_us, &ts);
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    lf_http_server *s = cls;
    (void)c;
    (void)toe;
    reqctx *rc = *con_cls;
    if (!rc) return;
    atomic_fetch_sub(&s->active, 1);
    if (rc->done) stream_free_cb(rc->done); /* answered, never sent */
    if (rc->stale) stream_free_cb(rc->stale);
    lf_buf_free(&rc->body);
    free(rc);
    *con_cls = NULL;
}

lf_http_server *lf_http_start(const lf_http_config *cfg, lf_http_handler h, void *app)
{
    char host[256];
    int port;
    if (lf_http_parse_listen(cfg->listen, host, &port)) {
        lf_err_set("invalid listen address '%s' (want HOST:PORT)", cfg->listen ? cfg->listen : "");
        return NULL;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t slen;
    /* poll(), not select(): select() refuses every socket numbered past
     * FD_SETSIZE (1024), so a busy server dropped connections */
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ERROR_LOG | MHD_USE_ITC;
    if (!*host || strcmp(host, "*") == 0 || strcmp(host, "0.0.0.0") == 0) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(INADDR_ANY);
        sin->sin_port = htons((uint16_t)port);
        slen = sizeof *sin;
    } else {
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
        if (getaddrinfo(host, NULL, &hints, &ai) != 0 || !ai) {
            lf_err_set("cannot resolve listen host '%s'", host);
            return NULL;
        }
        memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
        slen = ai->ai_addrlen;
        freeaddrinfo(ai);
        if (ss.ss_family == AF_INET6) {
            ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
            flags |= MHD_USE_IPv6;
        } else {
            ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
        }
    }
    (void)slen;
    lf_http_server *s = lf_xcalloc(1, sizeof *s);
    s->handler = h;
    s->app = app;
    s->body_max = cfg->body_max ? cfg->body_max : (1u << 20);
    s->component = cfg->log_component ? cfg->log_component : "http";
    s->quiet = cfg->quiet;
    if (cfg->tls_cert || cfg->tls_key) {
        if (!cfg->tls_cert || !cfg->tls_key) {
            lf_err_set("TLS needs both a certificate and a key");
            free(s);
            return NULL;
        }
        s->cert_pem = read_file(cfg->tls_cert);
        s->key_pem = read_file(cfg->tls_key);
        if (!s->cert_pem || !s->key_pem) {
            lf_err_set("cannot read TLS certificate '%s' or key '%s'", cfg->tls_cert, cfg->tls_key);
            free(s->cert_pem);
            free(s->key_pem);
            free(s);
            return NULL;
        }
        flags |= MHD_USE_TLS;
    }
    unsigned limit = cfg->conn_limit ? cfg->conn_limit : 4096;
    struct MHD_OptionItem ops[16];
    int nops = 0;
#define OPT(o, v, p) ops[nops++] = (struct MHD_OptionItem){(o), (intptr_t)(v), (void *)(p)}
    OPT(MHD_OPTION_SOCK_ADDR, 0, &ss);
    OPT(MHD_OPTION_NOTIFY_COMPLETED, on_completed, s);
    OPT(MHD_OPTION_CONNECTION_LIMIT, limit, NULL);
    OPT(MHD_OPTION_CONNECTION_TIMEOUT, 120, NULL);
    OPT(MHD_OPTION_UNESCAPE_CALLBACK, unescape_cb, NULL);
    OPT(MHD_OPTION_THREAD_STACK_SIZE, 512 * 1024, NULL);
    OPT(MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096, NULL);
    if (s->cert_pem) {
        OPT(MHD_OPTION_HTTPS_MEM_CERT, 0, s->cert_pem);
        OPT(MHD_OPTION_HTTPS_MEM_KEY, 0, s->key_pem);
    }
    if (cfg->pool_threads > 0) {
        /* epoll, N polling threads, suspend/resume for lf_http_defer */
        flags &= ~(unsigned)(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL);
        flags |= MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
        if (cfg->pool_threads > 1) /* 1: MHD's own polling thread alone */
            OPT(MHD_OPTION_THREAD_POOL_SIZE, cfg->pool_threads, NULL);
        s->pool = 1;
        pthread_mutex_init(&s->mu, NULL);
        pthread_cond_init(&s->cv, NULL);
        pthread_mutex_init(&s->wmu, NULL);
        pthread_cond_init(&s->wcv, NULL);
    }
    OPT(MHD_OPTION_END, 0, NULL);
#undef OPT
    s->d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, s, MHD_OPTION_ARRAY, ops,
                            MHD_OPTION_END);
    if (s->d && s->pool) {
        if (pthread_create(&s->timer, NULL, timer_main, s) != 0) {
            MHD_stop_daemon(s->d);
            s->d = NULL;
        } else {
            s->timer_started = 1;
        }
    }
    if (!s->d) {
        lf_err_set("cannot listen on %s (address in use or not permitted)", cfg->listen);
        if (s->pool) {
            pthread_mutex_destroy(&s->mu);
            pthread_cond_destroy(&s->cv);
            pthread_mutex_destroy(&s->wmu);
            pthread_cond_destroy(&s->wcv);
        }
        free(s->cert_pem);
        free(s->key_pem);
        free(s);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : port;
    return s;
}

int lf_http_port(const lf_http_server *s)
{
    return s->port;
}

void lf_http_quiesce(lf_http_server *s)
{
    if (!s || !s->d) return;
    MHD_socket fd = MHD_quiesce_daemon(s->d);
    if (fd != MHD_INVALID_SOCKET) close(fd);
}

void lf_http_stop(lf_http_server *s)
{
    if (!s) return;
    lf_http_quiesce(s);
    /* Streams (SSE) end at their next chunk; requests being processed
     * finish (bounded, 10 s). Idle keep-alive connections are not
     * waited for: MHD_stop_daemon closes them. */
    atomic_store(&s->stopping, 1);
    if (s->pool) { /* resume every suspended connection now; none is added after */
        pthread_mutex_lock(&s->mu);
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
    for (int i = 0; i < 200 && atomic_load(&s->active) > 0; i++)
        lf_sleep_ms(50);
    /* an offload thread resumes its connection: the daemon must outlive it
     * (its handler's own waits are bounded) */
    while (atomic_load(&s->offloads) > 0 || atomic_load(&s->laters) > 0)
        lf_sleep_ms(10);
    if (s->pool) {
        pthread_mutex_lock(&s->wmu);
        s->wstop = 1;
        pthread_cond_broadcast(&s->wcv);
        pthread_mutex_unlock(&s->wmu);
        for (int i = 0; i < s->nworkers; i++)
            pthread_join(s->workers[i], NULL);
    }
    if (s->timer_started) {
        pthread_mutex_lock(&s->mu);
        s->timer_stop = 1;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->timer, NULL);
    }
    MHD_stop_daemon(s->d);
    if (s->pool) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->wmu);
        pthread_cond_destroy(&s->wcv);
    }
    free(s->defers);
    free(s->cert_pem);
    free(s->key_pem);
    free(s);
}
