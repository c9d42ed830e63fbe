/*
 * router.c — the hub's request dispatcher: matches the request against the
 * route tables of the hub's modules (lf_route, hub.h), authenticates the
 * bearer token, answers 401/403/404/405 itself, calls the handler, and
 * records the request metrics (count by route and status, latency
 * histogram by route). The request log line is written by src/http.
 *
 * Tables are searched in order admin, reservations, fleet, core: core
 * comes last because it holds the catch-all static-asset routes ("/:file").
 */
#include "hub/router.h"
#include "hub/cluster.h"

#include <string.h>

#define MAX_TABLES 8

/* Matches pattern against the request's segments; fills params. */
int lf_router_match(const char *pattern, const lf_http_req *req, const char **params)
{
    int seg = 0, np = 0;
    const char *p = pattern;
    while (*p == '/')
        p++;
    while (*p) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (seg >= req->nsegs) return 0;
        if (p[0] == ':') {
            if (np >= LF_ROUTE_MAX_PARAMS) return 0;
            params[np++] = req->segs[seg];
        } else if (strlen(req->segs[seg]) != len || memcmp(req->segs[seg], p, len) != 0) {
            return 0;
        }
        seg++;
        p += len;
        while (*p == '/')
            p++;
    }
    return seg == req->nsegs;
}

lf_principal lf_hub_authenticate(lf_hub *h, lf_http_req *req)
{
    lf_principal who = {LF_ROLE_NONE, ""};
    const char *tok = lf_http_bearer(req);
    if (!tok || strlen(tok) > 256) goto out;
    char hash[65];
    lf_token_hash(tok, hash);
    if (h->admin_hash[0] && lf_ct_equal(hash, h->admin_hash)) {
        who.role = LF_ROLE_ADMIN;
        snprintf(who.id, sizeof who.id, "admin");
        goto out;
    }
    char name[65];
    if (lf_registry_unit_by_token(h, hash, name) == 0) {
        who.role = LF_ROLE_UNIT;
        snprintf(who.id, sizeof who.id, "%s", name);
        goto out;
    }
    if (lf_registry_user_by_token(h, hash, who.id) == 0) who.role = LF_ROLE_USER;
out:
    return who;
}

void lf_hub_error_rc(lf_ctx *c, int rc, const char *what)
{
    const char *detail = lf_err_get();
    int status = 500;
    const char *code = "internal";
    switch (rc) {
    case LF_EINVAL:
        status = 400, code = "invalid_request";
        break;
    case LF_ENOTFOUND:
        status = 404, code = "not_found";
        break;
    case LF_EEXIST:
        status = 409, code = "exists";
        break;
    case LF_ECONFLICT:
        status = 409, code = "conflict";
        break;
    case LF_EUNAVAILABLE:
        status = 409, code = "unavailable";
        break;
    case LF_ESTATE:
        status = 409, code = "invalid_state";
        break;
    case LF_EDENIED:
        status = 403, code = "forbidden";
        break;
    case LF_EBUSY:
        status = 503, code = "overloaded";
        lf_http_header_add(c->resp, "Retry-After", "1");
        break;
    case LF_ETIMEDOUT:
        status = 503, code = "timeout";
        break;
    case LF_ECLOSED:
        status = 503, code = "shutting_down";
        break;
    case LF_EIO:
        status = 503, code = "store_unavailable";
        break;
    default:
        break;
    }
    if (status >= 500) LF_ERROR("hub", "%s: %s: %s", what, lf_strerror(rc), detail);
    lf_http_error(c->resp, status, code, "%s: %s%s%s", what, lf_strerror(rc), detail[0] ? ": " : "",
                  detail);
}

void lf_router_dispatch(lf_http_req *req, lf_http_resp *resp, void *app)
{
    lf_hub *h = app;
    const lf_route *tables[MAX_TABLES];
    int nt = 0;
    tables[nt++] = lf_api_admin_routes();
    tables[nt++] = lf_api_reservation_routes();
    tables[nt++] = lf_fleet_routes();
    tables[nt++] = lf_cluster_routes();
    tables[nt++] = lf_api_core_routes();
    lf_ctx c = {.hub = h, .req = req, .resp = resp};
    const lf_route *hit = NULL;
    /* This connection's thread logs for this request from here on. */
    lf_log_ctx_clear();
    lf_log_ctx_set("request_id", req->request_id);
    char allow[128] = "";
    for (int t = 0; t < nt && !hit; t++) {
        for (const lf_route *r = tables[t]; r && r->pattern; r++) {
            const char *params[LF_ROUTE_MAX_PARAMS] = {0};
            if (!lf_router_match(r->pattern, req, params)) continue;
            if (strcmp(r->method, req->method) != 0) {
                if (!strstr(allow, r->method) &&
                    strlen(allow) + strlen(r->method) + 3 < sizeof allow) {
                    if (allow[0]) strcat(allow, ", ");
                    strcat(allow, r->method);
                }
                continue;
            }
            hit = r;
            memcpy(c.params, params, sizeof params);
            if (strncmp(r->pattern, "/v1/units/:", 11) == 0 && params[0])
                lf_log_ctx_set("unit", params[0]);
            break;
        }
    }
    /* Pool mode (--http-threads): a write appends to the store and waits
     * for its commit, so it runs on an offload worker, unless its handler
     * answers later instead of waiting (LF_ROUTE_NONBLOCKING); reads run
     * on the polling threads and never block (?min_position defers). */
    if (hit && strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0 &&
        !(hit->flags & LF_ROUTE_NONBLOCKING) && lf_http_offload(resp))
        return;
    const char *route = hit ? hit->name : allow[0] ? "method_not_allowed" : "not_found";
    if (!hit) {
        if (allow[0]) {
            lf_http_header_add(resp, "Allow", allow);
            lf_http_error(resp, 405, "method_not_allowed", "%s is not allowed here; allowed: %s",
                          req->method, allow);
        } else {
            lf_http_error(resp, 404, "not_found", "no such endpoint");
        }
        goto out;
    }
    if (hit->roles != LF_ROLE_PUBLIC) {
        c.who = lf_hub_authenticate(h, req);
        if (c.who.role == LF_ROLE_NONE) {
            lf_http_header_add(resp, "WWW-Authenticate", "Bearer");
            lf_http_error(resp, 401, "unauthorized",
                          "a valid bearer token is required (Authorization: Bearer TOKEN)");
            goto out;
        }
        if (!(hit->roles & (int)c.who.role)) {
            lf_http_error(resp, 403, "forbidden", "this token's role may not call %s %s",
                          hit->method, hit->pattern);
            goto out;
        }
    }
    resp->route = hit->name;
    hit->fn(&c);
out:
    if (route && !lf_http_pending(resp)) /* counted when it is answered */
        lf_router_observe(route, resp->status, req->start_us);
}

void lf_router_observe(const char *route, int status, int64_t start_us)
{
    char labels[160];
    snprintf(labels, sizeof labels, "route=\"%s\",status=\"%d\"", route, status);
    lf_metric_inc("lockerfleet_http_requests_total", labels, 1);
    snprintf(labels, sizeof labels, "route=\"%s\"", route);
    lf_metric_observe("lockerfleet_http_request_duration_seconds", labels,
                      (double)(lf_mono_us() - start_us) / 1e6);
}
