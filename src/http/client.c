/* client.c — lf_http_call forwards to the libcurl module (curl/curl_mod.h),
 * lf_http_call_lean picks the built-in client for http:// URLs. */
#include "http/client.h"

#include "core/module.h"
#include "curl/curl_mod.h"

#include <stdatomic.h>
#include <string.h>
#include <strings.h>

/* Defined when the program links the module's objects (the unit tests);
 * NULL in the binary, which loads lockerfleet-curl.so instead. */
extern const lf_curl_ops lf_curl_module_ops __attribute__((weak));

static _Atomic(const lf_curl_ops *) loaded;

const lf_curl_ops *lf_curl_ops_get(void)
{
    if (&lf_curl_module_ops) return &lf_curl_module_ops;
    const lf_curl_ops *ops = atomic_load(&loaded);
    if (ops) return ops;
    ops = lf_module_sym(LF_CURL_MODULE, LF_CURL_MODULE_SYM);
    if (!ops) return NULL;
    if (ops->size != sizeof(lf_curl_ops)) {
        lf_err_set("module %s.so was built for another version of lockerfleet", LF_CURL_MODULE);
        return NULL;
    }
    atomic_store(&loaded, ops);
    return ops;
}

void lf_http_client_global_init(void)
{
    const lf_curl_ops *ops = lf_curl_ops_get();
    if (ops)
        ops->global_init();
    else /* lf_http_call will fail with the same text */
        LF_ERROR("http", "%s", lf_err_get());
}

int lf_http_call(const char *method, const char *url, const char *body, const lf_http_opts *opts,
                 lf_http_result *out)
{
    const lf_curl_ops *ops = lf_curl_ops_get();
    if (ops) return ops->call(method, url, body, opts, out);
    char why[512];
    snprintf(why, sizeof why, "%s", lf_err_get());
    memset(out, 0, sizeof *out);
    lf_buf_init(&out->body, 64u << 20);
    out->retry_after_ms = -1;
    lf_err_set("%s %s: %s", method, url, why);
    return LF_EIO;
}

int lf_http_call_lean(const char *method, const char *url, const char *body,
                      const lf_http_opts *opts, lf_http_result *out)
{
    if (strncasecmp(url, "http://", 7) == 0)
        return lf_http_call_plain(method, url, body, opts, out);
    return lf_http_call(method, url, body, opts, out);
}

void lf_http_result_free(lf_http_result *r)
{
    lf_buf_free(&r->body);
}
