/*
 * fleet_ping.c — one round of pings over libcurl's multi interface: every
 * URL is fetched concurrently from the calling thread, up to max_inflight
 * transfers at a time, each with its own timeout. Easy handles are pooled
 * and the multi handle's connection cache keeps connections alive between
 * rounds, so a steady fleet costs one request per unit per round.
 * Part of lockerfleet-curl.so (curl_mod.h); src/hub/fleet_ping.c forwards.
 */
#include "curl/curl_mod.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lf_fleet_pinger {
    CURLM *multi;
    CURL **pool; /* idle easy handles */
    CURL **all;  /* every easy handle created (to detach on a stop) */
    int npool, nall, max_inflight;
    char *ca_file; /* CA bundle for https units (NULL: the system's) */
};

static size_t sink(char *p, size_t sz, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return sz * n; /* the ping body is not needed: an answer is a sign of life */
}

lf_fleet_pinger *lf_curlmod_pinger_new(int max_inflight)
{
    lf_curlmod_global_init();
    lf_fleet_pinger *p = lf_xcalloc(1, sizeof *p);
    if (max_inflight < 1) max_inflight = 1;
    p->max_inflight = max_inflight;
    p->multi = curl_multi_init();
    p->pool = lf_xcalloc((size_t)max_inflight, sizeof *p->pool);
    p->all = lf_xcalloc((size_t)max_inflight, sizeof *p->all);
    if (!p->multi) {
        lf_curlmod_pinger_free(p);
        return NULL;
    }
    curl_multi_setopt(p->multi, CURLMOPT_MAXCONNECTS, (long)max_inflight);
    return p;
}

void lf_curlmod_pinger_free(lf_fleet_pinger *p)
{
    if (!p) return;
    for (int i = 0; i < p->nall; i++) {
        if (p->multi) curl_multi_remove_handle(p->multi, p->all[i]);
        curl_easy_cleanup(p->all[i]);
    }
    free(p->pool);
    free(p->all);
    free(p->ca_file);
    if (p->multi) curl_multi_cleanup(p->multi);
    free(p);
}

void lf_curlmod_pinger_set_ca_file(lf_fleet_pinger *p, const char *ca_file)
{
    free(p->ca_file);
    p->ca_file = ca_file ? lf_strdup(ca_file) : NULL;
}

void lf_curlmod_pinger_wake(lf_fleet_pinger *p)
{
    if (p) curl_multi_wakeup(p->multi);
}

static CURL *easy_get(lf_fleet_pinger *p)
{
    if (p->npool > 0) return p->pool[--p->npool];
    if (p->nall >= p->max_inflight) return NULL;
    CURL *e = curl_easy_init();
    if (!e) return NULL;
    p->all[p->nall++] = e;
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "lockerfleet-hub/" LF_VERSION);
    if (p->ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, p->ca_file);
    return e;
}

static void finish(CURL *e, CURLcode res, lf_fleet_ping_result *r)
{
    memset(r, 0, sizeof *r);
    curl_off_t us = 0;
    curl_easy_getinfo(e, CURLINFO_TOTAL_TIME_T, &us);
    r->response_ms = (int64_t)(us / 1000);
    if (res == CURLE_OK) {
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
        if (r->status >= 200 && r->status < 300) {
            r->ok = 1;
            return;
        }
        r->reason = "error";
        snprintf(r->detail, sizeof r->detail, "HTTP %ld", r->status);
        return;
    }
    if (res == CURLE_OPERATION_TIMEDOUT)
        r->reason = "timeout";
    else if (res == CURLE_COULDNT_CONNECT)
        r->reason = "refused";
    else
        r->reason = "error";
    snprintf(r->detail, sizeof r->detail, "%s", curl_easy_strerror(res));
}

int lf_curlmod_pinger_round(lf_fleet_pinger *p, const char *const *urls, size_t n,
                            int64_t timeout_ms, lf_fleet_ping_cb cb, void *ctx,
                            const atomic_int *stop)
{
    int rc = 0;
    size_t next = 0, done = 0;
    int running = 0, inflight = 0;
    while (done < n) {
        if (stop && atomic_load(stop)) {
            rc = LF_ECLOSED;
            goto out;
        }
        while (next < n && inflight < p->max_inflight) {
            CURL *e = easy_get(p);
            if (!e) {
                lf_fleet_ping_result r = {0};
                r.reason = "error";
                snprintf(r.detail, sizeof r.detail, "out of curl handles");
                cb(next++, &r, ctx);
                done++;
                continue;
            }
            curl_easy_setopt(e, CURLOPT_URL, urls[next]);
            curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
            curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
            curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)(uintptr_t)next);
            if (curl_multi_add_handle(p->multi, e) != CURLM_OK) {
                lf_fleet_ping_result r = {0};
                r.reason = "error";
                snprintf(r.detail, sizeof r.detail, "curl_multi_add_handle failed");
                p->pool[p->npool++] = e;
                cb(next++, &r, ctx);
                done++;
                continue;
            }
            next++;
            inflight++;
        }
        if (inflight == 0) continue;
        curl_multi_perform(p->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(p->multi, &left))) {
            if (m->msg != CURLMSG_DONE) continue;
            CURL *e = m->easy_handle;
            CURLcode res = m->data.result;
            void *priv = NULL;
            curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
            lf_fleet_ping_result r;
            finish(e, res, &r);
            curl_multi_remove_handle(p->multi, e);
            p->pool[p->npool++] = e;
            inflight--;
            done++;
            cb((size_t)(uintptr_t)priv, &r, ctx);
        }
        if (done < n && inflight > 0) curl_multi_poll(p->multi, NULL, 0, 100, NULL);
    }
out:
    /* a stopped round: drop what is still in flight */
    if (rc) {
        for (int i = 0; i < p->nall; i++) {
            curl_multi_remove_handle(p->multi, p->all[i]); /* no-op if idle */
            p->pool[i] = p->all[i];
        }
        p->npool = p->nall;
    }
    return rc;
}
