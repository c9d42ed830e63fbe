/*
 * client.h — small synchronous HTTP clients, two implementations of one
 * call:
 *  - lf_http_call: libcurl (easy interface), for the hub's live calls to
 *    units, the sim's registration, the benches, and any https:// URL.
 *    libcurl lives in a loadable module (src/curl/curl_mod.h), loaded on
 *    first use, so a process that never calls it never maps libcurl's
 *    dependency tree. Each thread keeps one curl handle, so connections
 *    are reused (keep-alive). For thousands of concurrent calls from one
 *    thread (the hub's pinger) the module uses libcurl's multi interface.
 *  - lf_http_call_plain: HTTP/1.1 over a POSIX socket for http:// URLs
 *    (client_plain.c), no library: the unit agent's uplink
 *    (lf_http_call_lean), which must fit in 8 MiB RSS (DESIGN §8). Each
 *    thread keeps its last few keep-alive connections.
 * Both give the same results, return codes and error texts (curl's).
 */
#ifndef LF_HTTP_CLIENT_H
#define LF_HTTP_CLIENT_H

#include "core/lf.h"

#include <stdbool.h>

typedef struct {
    long status;            /* HTTP status, 0 if no response */
    lf_buf body;            /* response body (owned; lf_http_result_free) */
    int64_t retry_after_ms; /* from a Retry-After header in seconds; -1 if none */
    double total_ms;        /* time taken */
} lf_http_result;

typedef struct {
    const char *bearer;          /* Authorization: Bearer ... (optional) */
    const char *ca_file;         /* CA bundle to verify https peers (optional) */
    int timeout_ms;              /* whole-transfer timeout; 0 = 10 s */
    int connect_timeout_ms;      /* 0 = timeout_ms */
    const char *idempotency_key; /* Idempotency-Key header (optional) */
} lf_http_opts;

/* Performs one request. body may be NULL (no body); it is sent as JSON.
 * Returns 0 when a response arrived (whatever its status), LF_ETIMEDOUT,
 * LF_EUNAVAILABLE (connection refused / host unreachable) or LF_EIO, with
 * lf_err_get() describing the failure. out is always initialised; free it
 * with lf_http_result_free. The body is capped at 64 MiB. */
int lf_http_call(const char *method, const char *url, const char *body, const lf_http_opts *opts,
                 lf_http_result *out);
void lf_http_result_free(lf_http_result *r);

/* lf_http_call's contract for http:// URLs without libcurl: keep-alive
 * (a reused connection the server had closed is retried once on a new
 * one, as curl does), Content-Length, chunked and until-close bodies,
 * Retry-After in seconds or as an HTTP date, connect and total timeouts
 * (name resolution is getaddrinfo's, bounded by resolv.conf). Any other
 * scheme fails (LF_EIO, "Unsupported protocol"). */
int lf_http_call_plain(const char *method, const char *url, const char *body,
                       const lf_http_opts *opts, lf_http_result *out);

/* lf_http_call_plain for http:// URLs, lf_http_call (libcurl) otherwise. */
int lf_http_call_lean(const char *method, const char *url, const char *body,
                      const lf_http_opts *opts, lf_http_result *out);

/* Call once per process before threads start, in a process that will use
 * lf_http_call: loads the libcurl module and runs curl_global_init (logs
 * an error when the module cannot be loaded). Not needed for
 * lf_http_call_plain. */
void lf_http_client_global_init(void);

/* ---- response head parsing (client_plain.c; exposed for tests) ---- */
typedef struct {
    int minor;              /* HTTP/1.minor */
    long status;            /* 100..599 */
    int64_t content_length; /* -1 if none */
    bool chunked;           /* Transfer-Encoding ends in chunked */
    bool close;             /* the server closes after this response */
    int64_t retry_after_ms; /* -1 if none */
} lf_http_head;

/* Parses one response head at buf[0..len). Returns the head's length
 * (through its empty line) with *h filled, 0 if the head is not complete
 * yet, -1 if it is malformed (lf_err_get() says why). now_wall_ms (wall
 * clock) turns a Retry-After date into a delay. */
long lf_http_parse_head(const char *buf, size_t len, int64_t now_wall_ms, lf_http_head *h);

#endif
