/* fuzz_router.c — the hub's path handling on arbitrary bytes: URL
 * unescaping (lf_http_unescape: %00 stays text), splitting into segments
 * (lf_http_split_path) and matching against every route table of the hub
 * (lf_router_match), as lf_router_dispatch does before any handler runs.
 * Never crashes; no segment is empty or holds '/' or NUL; a match binds
 * exactly the pattern's ":params", each one of the request's segments. */
#include "hub/router.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int count_params(const char *pattern)
{
    int n = 0;
    for (const char *p = pattern; *p; p++)
        if (*p == ':' && (p == pattern || p[-1] == '/')) n++;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192) return 0;
    char *url = malloc(size + 1);
    memcpy(url, data, size);
    url[size] = '\0';
    size_t len = lf_http_unescape(url);
    if (len != strlen(url)) abort();
    lf_http_req req = {0};
    req.method = "GET";
    req.path = url;
    char *copy = lf_strdup(url);
    lf_http_split_path(&req, copy);
    if (req.nsegs > LF_HTTP_MAX_SEGS) abort();
    for (int i = 0; i < req.nsegs; i++)
        if (!req.segs[i][0] || strchr(req.segs[i], '/')) abort();
    if (req.nsegs >= 0) {
        const lf_route *tables[] = {lf_api_admin_routes(), lf_api_reservation_routes(),
                                    lf_fleet_routes(), lf_api_core_routes()};
        for (size_t t = 0; t < sizeof tables / sizeof *tables; t++)
            for (const lf_route *r = tables[t]; r && r->pattern; r++) {
                const char *params[LF_ROUTE_MAX_PARAMS] = {0};
                if (!lf_router_match(r->pattern, &req, params)) continue;
                int np = count_params(r->pattern);
                for (int i = 0; i < LF_ROUTE_MAX_PARAMS; i++) {
                    if ((i < np) != (params[i] != NULL)) abort();
                    int found = 0;
                    for (int k = 0; params[i] && k < req.nsegs; k++)
                        found |= params[i] == req.segs[k];
                    if (params[i] && !found) abort();
                }
            }
    }
    free(copy);
    free(url);
    return 0;
}
