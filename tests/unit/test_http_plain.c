/* test_http_plain.c — lf_http_call_plain (the unit's uplink without
 * libcurl) against a scripted loopback server that answers each request
 * with given bytes: status line / headers / body parsing, keep-alive,
 * chunked and until-close bodies, Retry-After, timeouts, a server that
 * closes early, bad input. And lf_http_parse_head on its own. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "http/client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- scripted server --------------------------------------------------- */

#define HANG "<hang>"   /* read the request, answer nothing until stopped */
#define CLOSE "<close>" /* read the request, close without an answer */

typedef struct {
    int lfd, port;
    const char *answers[8]; /* one per request, in order (then 500s) */
    int close_each;         /* close the connection after each answer */
    atomic_int stop, accepts, requests;
    char req[8][2048]; /* the requests as received (head + body) */
    pthread_t thr;
} server;

/* Reads one request (head, then Content-Length bytes) into buf; length,
 * 0 when the client closed, -1 when stopped. */
static int read_request(server *s, int fd, char *buf, size_t cap)
{
    size_t len = 0;
    for (;;) {
        buf[len] = '\0';
        char *e = strstr(buf, "\r\n\r\n");
        if (e) {
            char *cl = strcasestr(buf, "\r\nContent-Length:");
            size_t want = (size_t)(e + 4 - buf) + (cl && cl < e ? strtoul(cl + 17, NULL, 10) : 0);
            if (len >= want) return (int)len;
        }
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int n = poll(&pf, 1, 50);
        if (atomic_load(&s->stop)) return -1;
        if (n <= 0) continue;
        ssize_t r = recv(fd, buf + len, cap - 1 - len, 0);
        if (r <= 0) return 0;
        len += (size_t)r;
    }
}

static void *serve(void *arg)
{
    server *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd pf = {.fd = s->lfd, .events = POLLIN};
        if (poll(&pf, 1, 50) <= 0) continue;
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0) continue;
        atomic_fetch_add(&s->accepts, 1);
        for (;;) {
            int i = atomic_load(&s->requests);
            char buf[2048];
            int n = read_request(s, fd, buf, sizeof buf);
            if (n <= 0) break;
            if (i < 8) memcpy(s->req[i], buf, (size_t)n + 1);
            atomic_fetch_add(&s->requests, 1);
            const char *a = i < 8 && s->answers[i] ? s->answers[i]
                                                   : "HTTP/1.1 500 No\r\nContent-Length: 0\r\n\r\n";
            if (strcmp(a, HANG) == 0) {
                while (!atomic_load(&s->stop))
                    usleep(10000);
                break;
            }
            if (strcmp(a, CLOSE) == 0) break;
            ssize_t w = send(fd, a, strlen(a), MSG_NOSIGNAL);
            (void)w;
            if (s->close_each) break;
        }
        close(fd);
    }
    return NULL;
}

static server *start(const char *const *answers, int close_each)
{
    server *s = calloc(1, sizeof *s);
    for (int i = 0; i < 8 && answers[i]; i++)
        s->answers[i] = answers[i];
    s->close_each = close_each;
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s->lfd, 16), 0);
    socklen_t al = sizeof a;
    getsockname(s->lfd, (struct sockaddr *)&a, &al);
    s->port = ntohs(a.sin_port);
    pthread_create(&s->thr, NULL, serve, s);
    return s;
}

static void stop(server *s)
{
    atomic_store(&s->stop, 1);
    pthread_join(s->thr, NULL);
    close(s->lfd);
    free(s);
}

/* One call to path on s; returns the rc, fills r (caller frees). */
static int call(server *s, const char *method, const char *path, const char *body, int timeout_ms,
                lf_http_result *r)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", s->port, path);
    lf_http_opts o = {.bearer = "tok", .idempotency_key = "ik-1", .timeout_ms = timeout_ms};
    return lf_http_call_plain(method, url, body, &o, r);
}

/* ---- tests ---------------------------------------------------------------- */

static void test_basic_and_keepalive(void **state)
{
    (void)state;
    const char *ans[] = {"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         "Content-Length: 11\r\n\r\n{\"acked\":1}",
                         "HTTP/1.1 201 Created\r\ncontent-length:   2  \r\n\r\nok", NULL};
    server *s = start(ans, 0);
    lf_http_result r;
    assert_int_equal(call(s, "POST", "/v1/units/u1/events", "{\"events\":[]}", 2000, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, 11);
    assert_string_equal(r.body.data, "{\"acked\":1}");
    assert_int_equal(r.retry_after_ms, -1);
    assert_true(r.total_ms >= 0);
    lf_http_result_free(&r);
    const char *q = s->req[0];
    assert_non_null(strstr(q, "POST /v1/units/u1/events HTTP/1.1\r\n"));
    assert_non_null(strstr(q, "\r\nHost: 127.0.0.1:"));
    assert_non_null(strstr(q, "\r\nAuthorization: Bearer tok\r\n"));
    assert_non_null(strstr(q, "\r\nIdempotency-Key: ik-1\r\n"));
    assert_non_null(strstr(q, "\r\nContent-Type: application/json\r\n"));
    assert_non_null(strstr(q, "\r\nContent-Length: 13\r\n"));
    assert_non_null(strstr(q, "\r\n\r\n{\"events\":[]}"));
    /* the second call reuses the connection */
    assert_int_equal(call(s, "GET", "?x=1", NULL, 2000, &r), 0);
    assert_int_equal(r.status, 201);
    assert_string_equal(r.body.data, "ok");
    lf_http_result_free(&r);
    assert_non_null(strstr(s->req[1], "GET /?x=1 HTTP/1.1\r\n"));
    assert_null(strstr(s->req[1], "Content-Length"));
    assert_int_equal(atomic_load(&s->accepts), 1);
    stop(s);
    /* a name, not an address: looked up (getaddrinfo_a), Host as written */
    const char *ans2[] = {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nn", NULL};
    s = start(ans2, 1);
    char url[128];
    snprintf(url, sizeof url, "http://localhost:%d/by-name", s->port);
    lf_http_opts o = {.timeout_ms = 5000};
    int rc = lf_http_call_plain("GET", url, NULL, &o, &r);
    /* localhost may come first as ::1, where nothing listens: then 127.0.0.1 */
    assert_int_equal(rc, 0);
    assert_string_equal(r.body.data, "n");
    lf_http_result_free(&r);
    assert_non_null(strstr(s->req[0], "\r\nHost: localhost:"));
    stop(s);
}

static void test_chunked_and_close(void **state)
{
    (void)state;
    const char *ans[] = {"HTTP/1.1 100 Continue\r\n\r\n"
                         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n",
                         "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok2", NULL};
    server *s = start(ans, 0);
    lf_http_result r;
    assert_int_equal(call(s, "GET", "/a", NULL, 2000, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "hello 0123456789");
    lf_http_result_free(&r);
    /* kept alive after a chunked body: the next call reuses it */
    assert_int_equal(call(s, "GET", "/a", NULL, 2000, &r), 0);
    lf_http_result_free(&r);
    assert_int_equal(atomic_load(&s->accepts), 1);
    stop(s);
    /* no length: the body ends when the server closes */
    const char *ans2[] = {"HTTP/1.0 200 OK\r\n\r\nuntil the end", NULL};
    s = start(ans2, 1);
    assert_int_equal(call(s, "GET", "/b", NULL, 2000, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "until the end");
    lf_http_result_free(&r);
    stop(s);
}

static void test_retry_after(void **state)
{
    (void)state;
    const char *ans[] = {"HTTP/1.1 429 Too Many\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n",
                         "HTTP/1.1 503 Busy\r\nRetry-After: soon\r\nContent-Length: 0\r\n\r\n",
                         "HTTP/1.1 503 Busy\r\nRetry-After: Fri, 01 Jan 2100 00:00:00 GMT\r\n"
                         "Content-Length: 0\r\n\r\n",
                         "HTTP/1.1 503 Busy\r\nRetry-After: Thu, 01 Jan 1970 00:00:00 GMT\r\n"
                         "Content-Length: 0\r\n\r\n",
                         "HTTP/1.1 429 Busy\r\nRetry-After: 99999999999999999999\r\n"
                         "Content-Length: 0\r\n\r\n",
                         NULL};
    server *s = start(ans, 0);
    lf_http_result r;
    assert_int_equal(call(s, "POST", "/hb", "{}", 2000, &r), 0);
    assert_int_equal(r.status, 429);
    assert_int_equal(r.retry_after_ms, 7000);
    lf_http_result_free(&r);
    assert_int_equal(call(s, "POST", "/hb", "{}", 2000, &r), 0);
    assert_int_equal(r.status, 503);
    assert_int_equal(r.retry_after_ms, -1);
    lf_http_result_free(&r);
    assert_int_equal(call(s, "POST", "/hb", "{}", 2000, &r), 0);
    assert_int_equal(r.retry_after_ms, 7 * 24 * 3600 * 1000LL); /* capped at a week */
    lf_http_result_free(&r);
    assert_int_equal(call(s, "POST", "/hb", "{}", 2000, &r), 0);
    assert_int_equal(r.retry_after_ms, 0); /* a date in the past: now */
    lf_http_result_free(&r);
    assert_int_equal(call(s, "POST", "/hb", "{}", 2000, &r), 0);
    assert_int_equal(r.retry_after_ms, 7 * 24 * 3600 * 1000LL);
    lf_http_result_free(&r);
    stop(s);
}

static void test_timeout(void **state)
{
    (void)state;
    const char *ans[] = {HANG, NULL};
    server *s = start(ans, 0);
    lf_http_result r;
    int64_t t0 = lf_mono_ms();
    assert_int_equal(call(s, "POST", "/slow", "{}", 300, &r), LF_ETIMEDOUT);
    int64_t took = lf_mono_ms() - t0;
    assert_true(took >= 290 && took < 2000);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(lf_err_get(), "/slow: Timeout was reached"));
    lf_http_result_free(&r);
    stop(s);
    /* a connect that never completes (a non-routable address): bounded
     * by connect_timeout_ms, not by the 5 s total. Where there is no route
     * at all it fails at once; a sandbox may even answer it: only the time
     * is checked. */
    lf_http_opts o = {.timeout_ms = 5000, .connect_timeout_ms = 200};
    t0 = lf_mono_ms();
    int rc = lf_http_call_plain("GET", "http://10.255.255.1:9/x", NULL, &o, &r);
    took = lf_mono_ms() - t0;
    assert_true(took < 2000);
    if (rc == LF_ETIMEDOUT) assert_non_null(strstr(lf_err_get(), "Timeout was reached"));
    lf_http_result_free(&r);
}

static void test_server_closes_early(void **state)
{
    (void)state;
    const char *ans[] = {CLOSE, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this",
                         "HTTP/1.1 200 OK\r\nContent-Len",
                         "HTTP/1.1 200 OK\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n10\r\nabc",
                         NULL};
    server *s = start(ans, 1);
    lf_http_result r;
    assert_int_equal(call(s, "POST", "/e", "{}", 2000, &r), LF_EIO);
    assert_non_null(strstr(lf_err_get(), "Server returned nothing (no headers, no data)"));
    lf_http_result_free(&r);
    assert_int_equal(call(s, "POST", "/e", "{}", 2000, &r), LF_EIO);
    assert_int_equal(r.status, 200); /* the head came, the body did not */
    assert_non_null(strstr(lf_err_get(), "Transferred a partial file"));
    lf_http_result_free(&r);
    assert_int_equal(call(s, "POST", "/e", "{}", 2000, &r), LF_EIO);
    assert_non_null(strstr(lf_err_get(), "Failure when receiving data from the peer"));
    lf_http_result_free(&r);
    assert_int_equal(call(s, "POST", "/e", "{}", 2000, &r), LF_EIO);
    assert_non_null(strstr(lf_err_get(), "Transferred a partial file"));
    lf_http_result_free(&r);
    stop(s);
}

/* The server closes every connection after its answer, without saying
 * so: the next call finds the cached connection dead and retries once on
 * a new one, transparently. */
static void test_stale_connection_retried(void **state)
{
    (void)state;
    const char *ans[] = {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na",
                         "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb",
                         "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nc", NULL};
    server *s = start(ans, 1);
    lf_http_result r;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(call(s, "POST", "/e", "{}", 2000, &r), 0);
        assert_int_equal(r.status, 200);
        assert_int_equal(r.body.data[0], 'a' + i);
        lf_http_result_free(&r);
        lf_sleep_ms(20); /* let the close arrive */
    }
    assert_int_equal(atomic_load(&s->accepts), 3);
    assert_int_equal(atomic_load(&s->requests), 3); /* nothing sent twice */
    stop(s);
    /* closed while the request was on its way (the idle check passed):
     * no byte of an answer came, so it is sent again on a new connection */
    const char *ans2[] = {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na", CLOSE,
                          "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nc", NULL};
    s = start(ans2, 0);
    assert_int_equal(call(s, "POST", "/e", "{}", 2000, &r), 0);
    lf_http_result_free(&r);
    assert_int_equal(call(s, "POST", "/e", "{}", 2000, &r), 0);
    assert_int_equal(r.body.data[0], 'c');
    lf_http_result_free(&r);
    assert_int_equal(atomic_load(&s->accepts), 2);
    assert_int_equal(atomic_load(&s->requests), 3);
    stop(s);
}

static void test_bad_answers(void **state)
{
    (void)state;
    const char *ans[] = {"SSH-2.0-OpenSSH_9.2\r\n\r\n",
                         "HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n",
                         "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                         "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                         "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
                         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                         NULL};
    server *s = start(ans, 1);
    lf_http_result r;
    for (int i = 0; i < 6; i++) {
        assert_int_equal(call(s, "GET", "/", NULL, 2000, &r), LF_EIO);
        assert_non_null(strstr(lf_err_get(), "Weird server reply"));
        lf_http_result_free(&r);
    }
    stop(s);
}

static void test_bad_urls(void **state)
{
    (void)state;
    const char *bad[] = {
        "http://",     "http://:80/",  "http://h:0/",  "http://h:65536/", "http://h:8x/",
        "http://u@h/", "http://h/a b", "http://[::1/", "http://[::1]x/",  "http://h\r\nX: y/",
        NULL};
    lf_http_result r;
    for (int i = 0; bad[i]; i++) {
        assert_int_equal(lf_http_call_plain("GET", bad[i], NULL, NULL, &r), LF_EIO);
        assert_non_null(strstr(lf_err_get(), "URL using bad/illegal format or missing URL"));
        lf_http_result_free(&r);
    }
    assert_int_equal(lf_http_call_plain("GET", "ftp://h/", NULL, NULL, &r), LF_EIO);
    assert_non_null(strstr(lf_err_get(), "Unsupported protocol"));
    lf_http_result_free(&r);
    lf_http_opts o = {.bearer = "a\r\nX-Evil: 1"};
    assert_int_equal(lf_http_call_plain("GET", "http://127.0.0.1:1/", NULL, &o, &r), LF_EIO);
    lf_http_result_free(&r);
    assert_int_equal(lf_http_call_plain("GET", "http://no-such-host.invalid/", NULL, NULL, &r),
                     LF_EUNAVAILABLE);
    assert_non_null(strstr(lf_err_get(), "Couldn't resolve host name"));
    lf_http_result_free(&r);
}

static void test_parse_head(void **state)
{
    (void)state;
    lf_http_head h;
    const char *ok = "HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\n\r\nbody";
    assert_int_equal(lf_http_parse_head(ok, strlen(ok), 0, &h), (long)strlen(ok) - 4);
    assert_int_equal(h.status, 200);
    assert_int_equal(h.minor, 1);
    assert_true(h.close);
    assert_int_equal(h.content_length, -1);
    /* incomplete: wait for more */
    assert_int_equal(lf_http_parse_head(ok, 20, 0, &h), 0);
    /* bare LF lines, HTTP/1.0 keep-alive, no reason phrase */
    const char *lf = "HTTP/1.0 204\nConnection: Keep-Alive\nRetry-After: 3\n\n";
    assert_int_equal(lf_http_parse_head(lf, strlen(lf), 0, &h), (long)strlen(lf));
    assert_int_equal(h.status, 204);
    assert_false(h.close);
    assert_int_equal(h.retry_after_ms, 3000);
    const char *te =
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
    assert_true(lf_http_parse_head(te, strlen(te), 0, &h) > 0);
    assert_true(h.chunked);
    assert_int_equal(h.content_length, -1);
    /* Retry-After as a date, relative to now */
    const char *d = "HTTP/1.1 503 x\r\nRetry-After: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n";
    assert_true(lf_http_parse_head(d, strlen(d), 784111777000LL - 2500, &h) > 0);
    assert_int_equal(h.retry_after_ms, 2500);
    const char *bad[] = {"HTTP/2 200 OK\r\n\r\n",
                         "HTTP/1.1 600 OK\r\n\r\n",
                         "HTTP/1.1 200OK\r\n\r\n",
                         "http/1.1 200 OK\r\n\r\n",
                         "HTTP/1.1 200 OK\r\n folded: x\r\n\r\n",
                         "HTTP/1.1 200 OK\r\n: empty name\r\n\r\n",
                         "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
                         "HTTP/1.1 200 OK\r\nX: a\001b\r\n\r\n",
                         "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
                         "HTTP/1.1 200 OK\r\nContent-Length: 9999999999999999999\r\n\r\n",
                         NULL};
    for (int i = 0; bad[i]; i++)
        assert_int_equal(lf_http_parse_head(bad[i], strlen(bad[i]), 0, &h), -1);
    /* a head that never ends is refused once past 64 KiB */
    size_t n = 70000;
    char *big = malloc(n);
    memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
    memset(big + 20, 'a', n - 20);
    assert_int_equal(lf_http_parse_head(big, n, 0, &h), -1);
    free(big);
}

/* lf_http_call_lean: http:// by the plain client, https:// by libcurl. */
static void test_lean_dispatch(void **state)
{
    (void)state;
    lf_http_opts o = {.timeout_ms = 2000};
    lf_http_result r;
    assert_int_equal(lf_http_call_lean("GET", "http://127.0.0.1:1/", NULL, &o, &r),
                     LF_EUNAVAILABLE);
    lf_http_result_free(&r);
    assert_int_equal(lf_http_call_lean("GET", "https://127.0.0.1:1/", NULL, &o, &r),
                     LF_EUNAVAILABLE);
    lf_http_result_free(&r);
}

int main(void)
{
    lf_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_and_keepalive), cmocka_unit_test(test_chunked_and_close),
        cmocka_unit_test(test_retry_after),         cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_server_closes_early), cmocka_unit_test(test_stale_connection_retried),
        cmocka_unit_test(test_bad_answers),         cmocka_unit_test(test_bad_urls),
        cmocka_unit_test(test_parse_head),          cmocka_unit_test(test_lean_dispatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
