/*
 * curl_mod.h — the libcurl module, lockerfleet-curl.so (src/core/module.h):
 * the synchronous client behind lf_http_call (curl_client.c, easy handles)
 * and the hub's pinger on libcurl's multi interface (curl_ping.c).
 *
 * Why a module: libcurl's DT_NEEDED tree (GnuTLS, nghttp2, libssh2 →
 * libcrypto, krb5, ldap, rtmp, psl, idn2, brotli…) was mapped into every
 * process, ~2.5 MiB of a unit agent's 8 MiB budget (DESIGN §8), although a
 * unit's uplink to an http:// hub needs none of it (client_plain.c). The
 * binary loads this module on the first lf_http_call or pinger (the hub,
 * the sim's registration, the benches, a unit with an https:// hub).
 *
 * The module exports one table, lf_curl_module_ops; src/http/client.c and
 * src/hub/fleet_ping.c forward to it. Programs that link the module's
 * objects directly (the unit tests) define the table themselves and the
 * binary's weak reference finds it without a module, like the store
 * backends (src/store/store.c).
 */
#ifndef LF_CURL_MOD_H
#define LF_CURL_MOD_H

#include "http/client.h"
#include "hub/fleet.h"

#define LF_CURL_MODULE "lockerfleet-curl"
#define LF_CURL_MODULE_SYM "lf_curl_module_ops"

typedef struct lf_curl_ops {
    size_t size; /* sizeof(lf_curl_ops) of the module: a stale module is refused */
    void (*global_init)(void);
    int (*call)(const char *method, const char *url, const char *body, const lf_http_opts *opts,
                lf_http_result *out);
    lf_fleet_pinger *(*pinger_new)(int max_inflight);
    void (*pinger_free)(lf_fleet_pinger *p);
    void (*pinger_set_ca_file)(lf_fleet_pinger *p, const char *ca_file);
    void (*pinger_wake)(lf_fleet_pinger *p);
    int (*pinger_round)(lf_fleet_pinger *p, const char *const *urls, size_t n, int64_t timeout_ms,
                        lf_fleet_ping_cb cb, void *ctx, const atomic_int *stop);
} lf_curl_ops;

/* Defined by the module (curl_client.c). */
extern const lf_curl_ops lf_curl_module_ops;

/* The module's table: the linked one, else lockerfleet-curl.so loaded on
 * first use (then cached). NULL with lf_err_get() set when the module
 * cannot be loaded. Thread-safe. (src/http/client.c) */
const lf_curl_ops *lf_curl_ops_get(void);

/* curl_ping.c, for the table */
lf_fleet_pinger *lf_curlmod_pinger_new(int max_inflight);
void lf_curlmod_pinger_free(lf_fleet_pinger *p);
void lf_curlmod_pinger_set_ca_file(lf_fleet_pinger *p, const char *ca_file);
void lf_curlmod_pinger_wake(lf_fleet_pinger *p);
int lf_curlmod_pinger_round(lf_fleet_pinger *p, const char *const *urls, size_t n,
                            int64_t timeout_ms, lf_fleet_ping_cb cb, void *ctx,
                            const atomic_int *stop);
void lf_curlmod_global_init(void);

#endif
