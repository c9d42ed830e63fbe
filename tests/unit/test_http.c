/* test_http.c — the HTTP server wrapper and client against each other on
 * loopback: routing data, bodies, JSON errors, 413, headers, streaming.
 * Every client test runs twice: with lf_http_call (libcurl) and with
 * lf_http_call_plain (the unit's uplink without libcurl), which must give
 * the same results against libmicrohttpd (e.g. its chunked streams). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "http/client.h"
#include "http/http.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int streamed;

static ssize_t produce(void *ctx, char *buf, size_t max)
{
    int *n = ctx;
    if (*n >= 3) return -1;
    int len = snprintf(buf, max, "data: %d\n\n", (*n)++);
    return len;
}

static void produce_free(void *ctx)
{
    streamed = *(int *)ctx;
    free(ctx);
}

/* lf_http_later: the answer comes from another thread (or from this one,
 * before the handler returns, as a backend that appends at once does).
 * ?mode=inline|thread|rerun, ?n=N echoed back. rerun: the first run asks
 * for a rerun from another thread; the rerun answers. */
typedef struct {
    lf_http_resp *resp;
    int rerun;
    char n[16];
} later_job;

static _Atomic int rerun_seen[256]; /* by n: the first run asked for a rerun */

static void later_finish(later_job *j)
{
    if (j->rerun) {
        lf_http_later_rerun(j->resp);
    } else {
        lf_http_json(j->resp, 200, json_pack("{s:s}", "n", j->n));
        lf_http_later_log(j->resp, "position", j->n);
        lf_http_later_done(j->resp);
    }
    free(j);
}

static void *later_thread(void *arg)
{
    later_job *j = arg;
    if (atoi(j->n) % 3 == 0) lf_sleep_ms(5); /* some before, some after the handler returns */
    later_finish(j);
    return NULL;
}

static void later_route(lf_http_req *req, lf_http_resp *resp)
{
    const char *mode = lf_http_query(req, "mode"), *n = lf_http_query(req, "n");
    if (!mode || !n) {
        lf_http_error(resp, 400, "bad", "mode and n");
        return;
    }
    int idx = atoi(n) & 255;
    int again = strcmp(mode, "rerun") == 0 && atomic_load(&rerun_seen[idx]);
    if (again || !lf_http_later(resp)) { /* a rerun, or thread per connection */
        lf_http_json(resp, 200, json_pack("{s:s,s:b}", "n", n, "again", again));
        return;
    }
    later_job *j = calloc(1, sizeof *j);
    j->resp = resp;
    j->rerun = strcmp(mode, "rerun") == 0;
    snprintf(j->n, sizeof j->n, "%s", n);
    if (strcmp(mode, "inline") == 0) {
        later_finish(j);
        return;
    }
    if (j->rerun) atomic_store(&rerun_seen[idx], 1); /* the rerun answers */
    pthread_t t;
    pthread_create(&t, NULL, later_thread, j);
    pthread_detach(t);
}

static void handler(lf_http_req *req, lf_http_resp *resp, void *app)
{
    (void)app;
    if (req->nsegs == 1 && strcmp(req->segs[0], "echo") == 0) {
        json_t *j = lf_http_body_json(req, resp);
        if (!j) return;
        json_object_set_new(j, "method", json_string(req->method));
        const char *q = lf_http_query(req, "q");
        if (q) json_object_set_new(j, "q", json_string(q));
        const char *tok = lf_http_bearer(req);
        if (tok) json_object_set_new(j, "token", json_string(tok));
        lf_http_json(resp, 200, j);
    } else if (req->nsegs == 2 && strcmp(req->segs[0], "seg") == 0) {
        lf_http_json(resp, 200, json_pack("{s:s}", "seg", req->segs[1]));
    } else if (req->nsegs == 1 && strcmp(req->segs[0], "num") == 0) {
        int64_t v;
        if (lf_http_query_i64(req, resp, "n", 0, 100, 7, &v)) return;
        lf_http_json(resp, 200, json_pack("{s:I}", "n", (json_int_t)v));
    } else if (req->nsegs == 1 && strcmp(req->segs[0], "busy") == 0) {
        lf_http_header_add(resp, "Retry-After", "3");
        lf_http_error(resp, 429, "busy", "try later");
    } else if (req->nsegs == 1 && strcmp(req->segs[0], "stream") == 0) {
        int *n = calloc(1, sizeof *n);
        resp->status = 200;
        resp->content_type = "text/event-stream";
        resp->stream_fn = produce;
        resp->stream_free = produce_free;
        resp->stream_ctx = n;
    } else if (req->nsegs == 1 && strcmp(req->segs[0], "wait") == 0) {
        /* answers ms after arrival: deferred on a pool server, else slept */
        int64_t ms;
        if (lf_http_query_i64(req, resp, "ms", 0, 60000, 0, &ms)) return;
        int64_t left = ms - (lf_mono_us() - req->start_us) / 1000;
        if (left > 0 && lf_http_defer(resp, left)) return;
        if (left > 5000) { /* a pool server stopping: do not hold a thread */
            lf_http_error(resp, 503, "gave_up", "not waiting");
            return;
        }
        if (left > 0) lf_sleep_ms(left);
        lf_http_json(resp, 200, json_pack("{s:s}", "method", req->method));
    } else if (req->nsegs == 1 && strcmp(req->segs[0], "later") == 0) {
        later_route(req, resp);
    } else {
        lf_http_error(resp, 404, "not_found", "no route for %s", req->path);
    }
}

static lf_http_server *srv;
static char base[64];

typedef int (*client_fn)(const char *method, const char *url, const char *body,
                         const lf_http_opts *opts, lf_http_result *out);
static client_fn client = lf_http_call;

static int setup(void **state)
{
    (void)state;
    lf_init();
    lf_log_set_level(LF_LOG_WARN);
    lf_http_config cfg = {.listen = "127.0.0.1:0", .body_max = 1024, .quiet = 1};
    srv = lf_http_start(&cfg, handler, NULL);
    if (!srv) return -1;
    snprintf(base, sizeof base, "http://127.0.0.1:%d", lf_http_port(srv));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    lf_http_stop(srv);
    return 0;
}

static json_t *call(const char *method, const char *path, const char *body, const char *bearer,
                    long *status, lf_http_result *keep)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", base, path);
    lf_http_opts o = {.bearer = bearer, .timeout_ms = 5000};
    lf_http_result r;
    assert_int_equal(client(method, url, body, &o, &r), 0);
    *status = r.status;
    json_t *j = r.body.data ? json_loads(r.body.data, 0, NULL) : NULL;
    if (keep)
        *keep = r;
    else
        lf_http_result_free(&r);
    return j;
}

static void test_echo(void **state)
{
    (void)state;
    long st;
    json_t *j = call("POST", "/echo?q=a%20b", "{\"x\":1}", "tok123", &st, NULL);
    assert_int_equal(st, 200);
    assert_int_equal(json_integer_value(json_object_get(j, "x")), 1);
    assert_string_equal(json_string_value(json_object_get(j, "q")), "a b");
    assert_string_equal(json_string_value(json_object_get(j, "token")), "tok123");
    json_decref(j);
}

static void test_bad_json(void **state)
{
    (void)state;
    long st;
    json_t *j = call("POST", "/echo", "{\"x\":", NULL, &st, NULL);
    assert_int_equal(st, 400);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                        "invalid_json");
    json_decref(j);
    j = call("POST", "/echo", "[1,2]", NULL, &st, NULL);
    assert_int_equal(st, 400);
    json_decref(j);
    j = call("POST", "/echo", NULL, NULL, &st, NULL);
    assert_int_equal(st, 400);
    json_decref(j);
}

static void test_too_big(void **state)
{
    (void)state;
    char big[4096];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    big[0] = '"';
    long st;
    json_t *j = call("POST", "/echo", big, NULL, &st, NULL);
    assert_int_equal(st, 413);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                        "body_too_large");
    json_decref(j);
}

static void test_segments_and_query(void **state)
{
    (void)state;
    long st;
    json_t *j = call("GET", "/seg/unit-7", NULL, NULL, &st, NULL);
    assert_int_equal(st, 200);
    assert_string_equal(json_string_value(json_object_get(j, "seg")), "unit-7");
    json_decref(j);
    j = call("GET", "/num?n=101", NULL, NULL, &st, NULL);
    assert_int_equal(st, 400);
    json_decref(j);
    j = call("GET", "/num?n=12x", NULL, NULL, &st, NULL);
    assert_int_equal(st, 400);
    json_decref(j);
    j = call("GET", "/num", NULL, NULL, &st, NULL);
    assert_int_equal(st, 200);
    assert_int_equal(json_integer_value(json_object_get(j, "n")), 7);
    json_decref(j);
    j = call("GET", "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r", NULL, NULL, &st, NULL);
    assert_int_equal(st, 404);
    json_decref(j);
}

static void test_retry_after(void **state)
{
    (void)state;
    long st;
    lf_http_result r;
    json_t *j = call("GET", "/busy", NULL, NULL, &st, &r);
    assert_int_equal(st, 429);
    assert_int_equal(r.retry_after_ms, 3000);
    lf_http_result_free(&r);
    json_decref(j);
}

static void test_stream(void **state)
{
    (void)state;
    long st;
    lf_http_result r;
    json_t *j = call("GET", "/stream", NULL, NULL, &st, &r);
    assert_null(j);
    assert_int_equal(st, 200);
    assert_string_equal(r.body.data, "data: 0\n\ndata: 1\n\ndata: 2\n\n");
    lf_http_result_free(&r);
}

static void test_refused(void **state)
{
    (void)state;
    lf_http_opts o = {.timeout_ms = 2000};
    lf_http_result r;
    /* Port 1 on loopback: nothing listens there. */
    int rc = client("GET", "http://127.0.0.1:1/ping", NULL, &o, &r);
    assert_int_equal(rc, LF_EUNAVAILABLE);
    assert_int_equal(r.status, 0);
    /* both clients word it as curl does */
    assert_string_equal(lf_err_get(), "GET http://127.0.0.1:1/ping: Couldn't connect to server");
    lf_http_result_free(&r);
}

static void test_listen_parse(void **state)
{
    (void)state;
    char host[256];
    int port;
    assert_int_equal(lf_http_parse_listen("127.0.0.1:8080", host, &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8080);
    assert_int_equal(lf_http_parse_listen("[::1]:9", host, &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(lf_http_parse_listen("nohost", host, &port), LF_EINVAL);
    assert_int_equal(lf_http_parse_listen("h:70000", host, &port), LF_EINVAL);
    assert_int_equal(lf_http_parse_listen("h:-1", host, &port), LF_EINVAL);
}

/* Pool mode: one polling thread, 16 requests that each wait 400 ms all
 * answer in about 400 ms (blocking, they would take 6.4 s), a POST body
 * survives the deferral, and a stop releases a deferred request at once. */
typedef struct {
    char url[128];
    const char *body;
    long status;
    char text[256];
} waiter;

static void *wait_call(void *arg)
{
    waiter *w = arg;
    lf_http_opts o = {.timeout_ms = 20000};
    lf_http_result r;
    if (client(w->body ? "POST" : "GET", w->url, w->body, &o, &r) == 0) {
        w->status = r.status;
        snprintf(w->text, sizeof w->text, "%s", r.body.data ? r.body.data : "");
    }
    lf_http_result_free(&r);
    return NULL;
}

static void test_pool_defer(void **state)
{
    (void)state;
    lf_http_config cfg = {.listen = "127.0.0.1:0", .quiet = 1, .pool_threads = 1};
    lf_http_server *ps = lf_http_start(&cfg, handler, NULL);
    assert_non_null(ps);
    enum { N = 16 };
    waiter w[N] = {0};
    pthread_t t[N];
    int64_t t0 = lf_mono_ms();
    for (int i = 0; i < N; i++) {
        snprintf(w[i].url, sizeof w[i].url, "http://127.0.0.1:%d/wait?ms=400", lf_http_port(ps));
        assert_int_equal(pthread_create(&t[i], NULL, wait_call, &w[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].status, 200);
    }
    int64_t took = lf_mono_ms() - t0;
    assert_true(took >= 400);
    assert_true(took < 3000); /* generous: a loaded 2-core machine */

    waiter e = {.body = "{\"a\":1}"};
    snprintf(e.url, sizeof e.url, "http://127.0.0.1:%d/echo", lf_http_port(ps));
    wait_call(&e);
    assert_int_equal(e.status, 200);
    assert_non_null(strstr(e.text, "\"a\":1"));

    waiter held = {0};
    snprintf(held.url, sizeof held.url, "http://127.0.0.1:%d/wait?ms=30000", lf_http_port(ps));
    pthread_t ht;
    assert_int_equal(pthread_create(&ht, NULL, wait_call, &held), 0);
    lf_sleep_ms(300);
    t0 = lf_mono_ms();
    lf_http_stop(ps);
    pthread_join(ht, NULL);
    assert_true(lf_mono_ms() - t0 < 3000);
    assert_int_equal(held.status, 503);
}

/* Pool mode, answering later: 96 concurrent requests on one polling
 * thread, answered inline (before the handler returns), from another
 * thread (before or after it returns), or run again; every one gets its
 * own answer. */
static void test_pool_later(void **state)
{
    (void)state;
    lf_http_config cfg = {.listen = "127.0.0.1:0", .quiet = 1, .pool_threads = 1};
    lf_http_server *ps = lf_http_start(&cfg, handler, NULL);
    assert_non_null(ps);
    enum { N = 96 };
    static const char *const modes[] = {"inline", "thread", "rerun"};
    for (int i = 0; i < 256; i++)
        atomic_store(&rerun_seen[i], 0);
    waiter w[N];
    pthread_t t[N];
    memset(w, 0, sizeof w);
    for (int i = 0; i < N; i++) {
        snprintf(w[i].url, sizeof w[i].url, "http://127.0.0.1:%d/later?mode=%s&n=%d",
                 lf_http_port(ps), modes[i % 3], i);
        w[i].body = i % 2 ? "{}" : NULL;
        assert_int_equal(pthread_create(&t[i], NULL, wait_call, &w[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].status, 200);
        char want[32];
        snprintf(want, sizeof want, "\"n\":\"%d\"", i);
        assert_non_null(strstr(w[i].text, want));
        if (i % 3 == 2) assert_non_null(strstr(w[i].text, "\"again\":true"));
    }
    lf_http_stop(ps);
}

/* Thread per connection: no deferral, the handler waits itself. */
static void test_defer_needs_pool(void **state)
{
    (void)state;
    lf_http_resp r = {0};
    assert_false(lf_http_defer(&r, 10));
    long st;
    json_t *j = call("GET", "/wait?ms=50", NULL, NULL, &st, NULL);
    assert_int_equal(st, 200);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo),        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_too_big),     cmocka_unit_test(test_segments_and_query),
        cmocka_unit_test(test_retry_after), cmocka_unit_test(test_stream),
        cmocka_unit_test(test_refused),     cmocka_unit_test(test_listen_parse),
        cmocka_unit_test(test_pool_defer),  cmocka_unit_test(test_defer_needs_pool),
        cmocka_unit_test(test_pool_later),
    };
    int rc = cmocka_run_group_tests_name("libcurl", tests, setup, teardown);
    client = lf_http_call_plain;
    rc |= cmocka_run_group_tests_name("plain", tests, setup, teardown);
    (void)streamed;
    return rc;
}
