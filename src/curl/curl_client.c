/* curl_client.c — lf_http_call on libcurl easy handles, one per thread,
 * and the module's table (curl_mod.h). Part of lockerfleet-curl.so. */
#define _GNU_SOURCE
#include "curl/curl_mod.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static pthread_key_t handle_key;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void handle_free(void *h)
{
    curl_easy_cleanup(h);
}

static void init_once(void)
{
    /* Debian's libcurl links libssh2, and curl_global_init() calls
     * libssh2_init(0), which initialises all of OpenSSL's ciphers and
     * digests: ~1.5 MiB of libcrypto pages in every process, for SCP/SFTP
     * that we never use (a unit agent's budget is 8 MiB). Initialising
     * libssh2 first without crypto makes curl's call a no-op; OpenSSL >= 1.1
     * initialises itself on first use anyway. 1 = LIBSSH2_INIT_NO_CRYPTO. */
    /* The module is loaded RTLD_LOCAL, so libssh2 is not in the global
     * scope: ask for the copy libcurl already loaded. */
    void *ssh2 = dlopen("libssh2.so.1", RTLD_LAZY | RTLD_NOLOAD);
    if (!ssh2) ssh2 = RTLD_DEFAULT; /* linked directly (the unit tests) */
    int (*ssh2_init)(int) = (int (*)(int))dlsym(ssh2, "libssh2_init");
    if (ssh2_init) ssh2_init(1);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_key_create(&handle_key, handle_free);
}

void lf_curlmod_global_init(void)
{
    pthread_once(&once, init_once);
}

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    lf_http_result *r = ud;
    if (lf_buf_append(&r->body, p, sz * n)) return 0;
    return sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    lf_http_result *r = ud;
    size_t len = sz * n;
    if (len > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
        char tmp[32];
        size_t k = len - 12 < sizeof tmp - 1 ? len - 12 : sizeof tmp - 1;
        memcpy(tmp, p + 12, k);
        tmp[k] = '\0';
        long v = strtol(tmp, NULL, 10);
        if (v >= 0) r->retry_after_ms = v * 1000;
    }
    return len;
}

static int curl_call(const char *method, const char *url, const char *body,
                     const lf_http_opts *opts, lf_http_result *out)
{
    lf_http_opts def = {0};
    if (!opts) opts = &def;
    memset(out, 0, sizeof *out);
    lf_buf_init(&out->body, 64u << 20);
    out->retry_after_ms = -1;
    pthread_once(&once, init_once);
    CURL *h = pthread_getspecific(handle_key);
    if (!h) {
        h = curl_easy_init();
        if (!h) {
            lf_err_set("curl_easy_init failed");
            return LF_EIO;
        }
        pthread_setspecific(handle_key, h);
    } else {
        curl_easy_reset(h);
    }
    struct curl_slist *hdrs = NULL;
    char auth[600];
    if (opts->bearer) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", opts->bearer);
        hdrs = curl_slist_append(hdrs, auth);
    }
    if (opts->idempotency_key) {
        char ik[300];
        snprintf(ik, sizeof ik, "Idempotency-Key: %s", opts->idempotency_key);
        hdrs = curl_slist_append(hdrs, ik);
    }
    if (body) hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");
    int tmo = opts->timeout_ms > 0 ? opts->timeout_ms : 10000;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    } else if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)tmo);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : tmo));
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, out);
    if (opts->ca_file) curl_easy_setopt(h, CURLOPT_CAINFO, opts->ca_file);
    CURLcode cc = curl_easy_perform(h);
    curl_slist_free_all(hdrs);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
    double t = 0;
    curl_easy_getinfo(h, CURLINFO_TOTAL_TIME, &t);
    out->total_ms = t * 1000.0;
    if (cc == CURLE_OK) return 0;
    lf_err_set("%s %s: %s", method, url, curl_easy_strerror(cc));
    if (cc == CURLE_OPERATION_TIMEDOUT) return LF_ETIMEDOUT;
    if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST) return LF_EUNAVAILABLE;
    return LF_EIO;
}

const lf_curl_ops lf_curl_module_ops = {
    .size = sizeof(lf_curl_ops),
    .global_init = lf_curlmod_global_init,
    .call = curl_call,
    .pinger_new = lf_curlmod_pinger_new,
    .pinger_free = lf_curlmod_pinger_free,
    .pinger_set_ca_file = lf_curlmod_pinger_set_ca_file,
    .pinger_wake = lf_curlmod_pinger_wake,
    .pinger_round = lf_curlmod_pinger_round,
};
