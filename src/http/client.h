/*
 * client.h — a small synchronous HTTP client on libcurl (easy interface),
 * for the unit's uplink, the sim's registration and the hub's live calls.
 * Each thread keeps one curl handle, so connections are reused
 * (keep-alive). For thousands of concurrent calls from one thread (the
 * hub's pinger) use libcurl's multi interface directly.
 */
#ifndef LF_HTTP_CLIENT_H
#define LF_HTTP_CLIENT_H

#include "core/lf.h"

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

/* Call once per process before threads start (curl_global_init). */
void lf_http_client_global_init(void);

#endif
