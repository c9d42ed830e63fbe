/*
 * http.h — the HTTP server every lockerfleet process uses (hub, unit, sim),
 * on libmicrohttpd, thread per connection: a handler may block (bounded
 * waits for ?min_position, live calls to a unit, server-sent events).
 * A server whose handlers never block long (the hub by default, the
 * simulator serving thousands of units' pings) can ask for a small thread
 * pool polling with epoll instead (lf_http_config.pool_threads); a handler
 * there that has to wait calls lf_http_defer() rather than sleeping, runs
 * itself on an offload worker (lf_http_offload), or leaves its answer to
 * another thread (lf_http_later).
 *
 * A handler gets a parsed request (method, path, query, headers, the whole
 * body, already bounded by body_max: bigger bodies are answered 413 before
 * the handler runs) and fills a response. JSON helpers build the error
 * contract {"error":{"code","message"}}.
 *
 * Streaming (SSE): lf_http_resp_stream() hands MHD a producer callback
 * that is called on the connection's own thread until it returns < 0.
 */
#ifndef LF_HTTP_H
#define LF_HTTP_H

#include "core/lf.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct lf_http_server lf_http_server;
typedef struct lf_http_req lf_http_req;

#define LF_HTTP_MAX_SEGS 16

struct lf_http_req {
    const char *method; /* "GET", "POST", ... */
    const char *path;   /* URL path, without the query string */
    const char *body;   /* NUL-terminated; "" when none */
    size_t body_len;
    const char *segs[LF_HTTP_MAX_SEGS]; /* path split on '/', URL-decoded */
    int nsegs;                          /* -1 when the path has too many segments */
    int64_t start_us;                   /* monotonic time the request arrived */
    const char *remote;                 /* peer address text */
    void *conn;                         /* internal (struct MHD_Connection *) */
    char request_id[17];                /* random hex id for logs */
};

typedef struct {
    int status;
    const char *content_type; /* default application/json */
    lf_buf body;
    char *headers[16][2]; /* extra headers (owned) */
    int nheaders;
    /* Streaming: when set, the body is produced by stream_fn. It writes up
     * to max bytes into buf and returns the count, 0 to be called again
     * later (it should block briefly first, unless lf_http_pooled), or -1
     * at the end. stream_free
     * is called with stream_ctx when the connection ends. */
    ssize_t (*stream_fn)(void *ctx, char *buf, size_t max);
    void (*stream_free)(void *ctx);
    void *stream_ctx;
    /* Text logged as the "what" of the request log line (e.g. route);
     * static string, optional. */
    const char *route;
    struct lf_http_server *server_; /* internal: set by the server */
    int64_t defer_ms_;              /* internal: set by lf_http_defer */
    int offload_;                   /* internal: set by lf_http_offload */
    int in_worker_;                 /* internal: running on an offload thread */
    int later_;                     /* internal: set by lf_http_later */
    void *conn_;                    /* internal: the MHD connection */
    void *rc_;                      /* internal: the request's context */
    lf_log_snap log_;               /* internal: the handler's log context, when log_saved_ */
    int log_saved_;
} lf_http_resp;

typedef void (*lf_http_handler)(lf_http_req *req, lf_http_resp *resp, void *app);

typedef struct {
    const char *listen;   /* "HOST:PORT"; port 0 picks a free port */
    size_t body_max;      /* bytes; 0 = 1 MiB */
    unsigned conn_limit;  /* 0 = 4096 */
    const char *tls_cert; /* PEM file paths: both set = HTTPS */
    const char *tls_key;
    const char *log_component; /* component name in request log lines */
    int quiet;                 /* 1: no per-request log line */
    /* 0: one thread per connection (handlers may block). N > 0: N threads
     * polling every connection with epoll, for servers whose handlers
     * never block long; waits go through lf_http_defer(). */
    unsigned pool_threads;
} lf_http_config;

/* Starts serving on its own threads. Returns NULL with lf_err_get() set. */
lf_http_server *lf_http_start(const lf_http_config *cfg, lf_http_handler h, void *app);
/* The port actually bound (useful with port 0). */
int lf_http_port(const lf_http_server *s);
/* Graceful stop: stops accepting, lets in-flight requests finish (up to
 * about 10 s), then frees. NULL is a no-op. */
void lf_http_stop(lf_http_server *s);
/* Stop accepting new connections (first half of a graceful stop). */
void lf_http_quiesce(lf_http_server *s);

/* Waiting without holding a thread, for pool_threads servers: the handler
 * calls lf_http_defer(resp, ms) and returns without filling resp; the
 * connection is suspended and the handler is called again with the same
 * request (same body, same req->start_us, so it can tell how long it has
 * waited) about ms milliseconds later. Returns false on a thread-per-
 * connection server or once the server is stopping: the handler must then
 * wait itself (briefly) or answer. */
bool lf_http_defer(lf_http_resp *resp, int64_t ms);

/* Running a handler that blocks (calls a unit, reads a whole projection)
 * on a pool_threads server: called first thing by such a handler, it
 * returns true when the handler must return at once without filling resp;
 * the connection is then suspended and the handler runs again, from the
 * start and with the same request, on a thread of its own, where this
 * returns false (as it does on a thread-per-connection server), so it may
 * block. The answer is sent when it returns. */
bool lf_http_offload(lf_http_resp *resp);

/* Answering later, on pool_threads servers: a handler that starts work
 * that another thread completes (an asynchronous append) calls
 * lf_http_later(resp) before starting it, and from then on leaves resp to
 * that thread. The connection stays suspended until that thread either
 * fills resp and calls lf_http_later_done(resp) (the answer is sent), or
 * calls lf_http_later_rerun(resp) (resp is dropped and the handler runs
 * again on the same request, as after lf_http_defer). Either may be called
 * before the handler has returned. Returns false — the handler must then
 * answer itself — on a thread-per-connection server, on an offload thread,
 * or once the server is stopping. */
bool lf_http_later(lf_http_resp *resp);
/* Adds a field ("position", "unit") to the request log line of a response
 * answered later, from the completing thread, before lf_http_later_done. */
void lf_http_later_log(lf_http_resp *resp, const char *key, const char *value);
void lf_http_later_done(lf_http_resp *resp);
void lf_http_later_rerun(lf_http_resp *resp);

/* True on a pool_threads server outside an offload thread: the handler
 * (or its stream_fn) must not block. A stream_fn that has nothing to send
 * returns 0 at once; the server then polls it again about every 100 ms. */
bool lf_http_pooled(const lf_http_resp *resp);

/* True when the handler deferred or offloaded the request (no answer in
 * resp yet: the handler runs again). */
bool lf_http_pending(const lf_http_resp *resp);

/* Request accessors; strings borrowed from the request. NULL if absent. */
const char *lf_http_query(lf_http_req *req, const char *name);
const char *lf_http_header(lf_http_req *req, const char *name);
/* The bearer token of the Authorization header, or NULL. */
const char *lf_http_bearer(lf_http_req *req);
/* Query parameter as int64 within [min,max]; absent -> def. Returns 0 ok,
 * or fills resp with a 400 naming the parameter and returns LF_EINVAL. */
int lf_http_query_i64(lf_http_req *req, lf_http_resp *resp, const char *name, int64_t min,
                      int64_t max, int64_t def, int64_t *out);

/* Parses the body as a JSON object. On failure fills resp with 400
 * (invalid_json, naming line/column) and returns NULL. Caller decrefs. */
json_t *lf_http_body_json(lf_http_req *req, lf_http_resp *resp);

/* Responses. lf_http_json steals obj. */
void lf_http_json(lf_http_resp *resp, int status, json_t *obj);
void lf_http_error(lf_http_resp *resp, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Adds a header (copied). */
void lf_http_header_add(lf_http_resp *resp, const char *name, const char *value);
void lf_http_text(lf_http_resp *resp, int status, const char *content_type, const void *data,
                  size_t len);

/* The server's path and query handling, exposed for fuzz/fuzz_router.c:
 * lf_http_unescape decodes %XX in place except %00 (kept as text, so no
 * NUL cuts a name short) and returns the new length; lf_http_split_path
 * splits copy (modified, borrowed by req) on '/' into req->segs/nsegs
 * (-1 past LF_HTTP_MAX_SEGS). */
size_t lf_http_unescape(char *s);
void lf_http_split_path(lf_http_req *req, char *copy);

/* Parses "HOST:PORT" (HOST may be empty, "*", a name or [v6]); returns
 * LF_EINVAL on junk. host must hold 256 bytes. */
int lf_http_parse_listen(const char *listen, char *host, int *port);

#endif
