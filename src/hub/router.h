/*
 * router.h — the hub's HTTP entry point (router.c) and small helpers the
 * hub's API files share.
 */
#ifndef LF_HUB_ROUTER_H
#define LF_HUB_ROUTER_H

#include "hub/hub.h"

/* The lf_http_handler of the hub: app is the lf_hub. */
void lf_router_dispatch(lf_http_req *req, lf_http_resp *resp, void *app);

/* Counts an answered request in the HTTP metrics (requests by route and
 * status, latency since start_us). The router does it for every answer
 * but those given later (lf_http_later): their completer calls it. */
void lf_router_observe(const char *route, int status, int64_t start_us);

/* 1 if req's path segments match pattern ("/v1/units/:name"), filling
 * params (LF_ROUTE_MAX_PARAMS, borrowed from req) in order; else 0.
 * Exposed for fuzz/fuzz_router.c. */
int lf_router_match(const char *pattern, const lf_http_req *req, const char **params);

#endif
