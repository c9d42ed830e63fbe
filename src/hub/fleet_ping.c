/*
 * fleet_ping.c — the pinger (fleet.h) forwards to libcurl's multi interface
 * in the libcurl module (src/curl/curl_ping.c, loaded on the first
 * lf_fleet_pinger_new), so that only a process that pings maps libcurl.
 */
#include "hub/fleet.h"

#include "curl/curl_mod.h"

/* Every pinger was made by lf_fleet_pinger_new, so the table is loaded. */
static const lf_curl_ops *ops(void)
{
    return lf_curl_ops_get();
}

lf_fleet_pinger *lf_fleet_pinger_new(int max_inflight)
{
    const lf_curl_ops *o = ops();
    if (!o) return NULL; /* lf_err_get() names the module */
    lf_fleet_pinger *p = o->pinger_new(max_inflight);
    if (!p) lf_err_set("pinger: curl_multi_init failed");
    return p;
}

void lf_fleet_pinger_free(lf_fleet_pinger *p)
{
    if (p) ops()->pinger_free(p);
}

void lf_fleet_pinger_set_ca_file(lf_fleet_pinger *p, const char *ca_file)
{
    ops()->pinger_set_ca_file(p, ca_file);
}

void lf_fleet_pinger_wake(lf_fleet_pinger *p)
{
    if (p) ops()->pinger_wake(p);
}

int lf_fleet_pinger_round(lf_fleet_pinger *p, const char *const *urls, size_t n, int64_t timeout_ms,
                          lf_fleet_ping_cb cb, void *ctx, const atomic_int *stop)
{
    return ops()->pinger_round(p, urls, n, timeout_ms, cb, ctx, stop);
}
