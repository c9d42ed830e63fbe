/*
 * client_plain.c — lf_http_call_plain (client.h): HTTP/1.1 for http://
 * URLs over a non-blocking POSIX socket, every wait a poll() bounded by the
 * call's deadline. No library: the unit agent's uplink without libcurl.
 *
 * Connections: each thread keeps up to CONN_CACHE idle keep-alive
 * connections (by host:port), closed when the thread exits. A reused
 * connection that fails before the first byte of the answer (the server
 * closed it while idle) is retried once on a new connection, like curl.
 *
 * Error texts are curl_easy_strerror()'s, so logs and callers see the same
 * messages whichever client ran: "METHOD URL: text".
 */
#define _GNU_SOURCE
#include "http/client.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define CONN_CACHE 4
#define HEAD_MAX (64 * 1024)
#define BODY_MAX (64u << 20)
#define RETRY_AFTER_MAX_S (7 * 24 * 3600)

/* curl_easy_strerror() of the CURLcode that curl returns in each case */
#define E_PROTO "Unsupported protocol"
#define E_URL "URL using bad/illegal format or missing URL"
#define E_RESOLVE "Couldn't resolve host name"
#define E_CONNECT "Couldn't connect to server"
#define E_TIMEOUT "Timeout was reached"
#define E_SEND "Failed sending data to the peer"
#define E_RECV "Failure when receiving data from the peer"
#define E_NOTHING "Server returned nothing (no headers, no data)"
#define E_WEIRD "Weird server reply"
#define E_PARTIAL "Transferred a partial file"
#define E_WRITE "Failed writing received data to disk/application"

/* ---- response head ---------------------------------------------------- */

static bool token_eq(const char *p, size_t n, const char *word)
{
    return strlen(word) == n && strncasecmp(p, word, n) == 0;
}

/* Does the comma-separated list v[0..n) hold token word? last: only as
 * its last element. */
static bool list_has(const char *v, size_t n, const char *word, bool last)
{
    const char *end = v + n;
    bool found = false;
    while (v < end) {
        const char *c = memchr(v, ',', (size_t)(end - v));
        const char *e = c ? c : end;
        const char *a = v, *b = e;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        found = token_eq(a, (size_t)(b - a), word) ? true : (last ? false : found);
        v = c ? c + 1 : end;
    }
    return found;
}

static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT" → ms since the epoch, -1. */
static int64_t http_date_ms(const char *v, size_t n)
{
    char s[64];
    if (n >= sizeof s) return -1;
    memcpy(s, v, n);
    s[n] = '\0';
    char wd[4], mon[4], gmt[4];
    int d, y, hh, mm, ss, used = 0;
    if (sscanf(s, "%3s, %d %3s %d %d:%d:%d %3s%n", wd, &d, mon, &y, &hh, &mm, &ss, gmt, &used) !=
            8 ||
        (size_t)used != n || strcmp(gmt, "GMT") != 0)
        return -1;
    int m = -1;
    for (int i = 0; i < 12; i++)
        if (strcmp(mon, months[i]) == 0) m = i;
    if (m < 0 || d < 1 || d > 31 || y < 1970 || y > 9999 || hh > 23 || mm > 59 || ss > 60 ||
        hh < 0 || mm < 0 || ss < 0)
        return -1;
    struct tm tm = {
        .tm_year = y - 1900, .tm_mon = m, .tm_mday = d, .tm_hour = hh, .tm_min = mm, .tm_sec = ss};
    time_t t = timegm(&tm);
    return t == (time_t)-1 ? -1 : (int64_t)t * 1000;
}

/* Retry-After: delta-seconds or an HTTP date; -1 when neither. */
static int64_t retry_after(const char *v, size_t n, int64_t now_wall_ms)
{
    if (n == 0) return -1;
    size_t i = 0;
    int64_t s = 0;
    while (i < n && v[i] >= '0' && v[i] <= '9') {
        if (s < RETRY_AFTER_MAX_S) s = s * 10 + (v[i] - '0');
        i++;
    }
    if (i == n) return (s < RETRY_AFTER_MAX_S ? s : RETRY_AFTER_MAX_S) * 1000;
    if (i > 0) return -1;
    int64_t at = http_date_ms(v, n);
    if (at < 0) return -1;
    int64_t d = at - now_wall_ms;
    if (d < 0) d = 0;
    if (d > (int64_t)RETRY_AFTER_MAX_S * 1000) d = (int64_t)RETRY_AFTER_MAX_S * 1000;
    return d;
}

static long bad_head(const char *why)
{
    lf_err_set("%s", why);
    return -1;
}

long lf_http_parse_head(const char *buf, size_t len, int64_t now_wall_ms, lf_http_head *h)
{
    memset(h, 0, sizeof *h);
    h->content_length = -1;
    h->retry_after_ms = -1;
    /* the end of the head: the first empty line (CRLF or a bare LF) */
    size_t end = 0;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != '\n') continue;
        if (i + 1 < len && buf[i + 1] == '\n') {
            end = i + 2;
            break;
        }
        if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n') {
            end = i + 3;
            break;
        }
    }
    if (!end) return len > HEAD_MAX ? bad_head("response head too large") : 0;
    if (end > HEAD_MAX) return bad_head("response head too large");
    const char *p = buf, *stop = buf + end;
    const char *nl = memchr(p, '\n', (size_t)(stop - p));
    size_t ll = (size_t)(nl - p);
    if (ll && p[ll - 1] == '\r') ll--;
    /* "HTTP/1.x SSS[ reason]" */
    if (ll < 12 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != ' ' ||
        p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9' ||
        (ll > 12 && p[12] != ' '))
        return bad_head("bad status line");
    h->minor = p[7] - '0';
    h->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    bool keep_alive = false;
    p = nl + 1;
    while (p < stop) {
        nl = memchr(p, '\n', (size_t)(stop - p));
        ll = (size_t)(nl - p);
        if (ll && p[ll - 1] == '\r') ll--;
        if (ll == 0) break; /* the empty line */
        if (*p == ' ' || *p == '\t') return bad_head("folded header line");
        const char *colon = memchr(p, ':', ll);
        if (!colon || colon == p) return bad_head("bad header line");
        size_t nlen = (size_t)(colon - p);
        for (size_t k = 0; k < nlen; k++)
            if ((unsigned char)p[k] <= ' ' || p[k] == 0x7f) return bad_head("bad header name");
        const char *v = colon + 1, *ve = p + ll;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        size_t vlen = (size_t)(ve - v);
        for (size_t k = 0; k < vlen; k++)
            if (((unsigned char)v[k] < ' ' && v[k] != '\t') || v[k] == 0x7f)
                return bad_head("bad header value");
        if (token_eq(p, nlen, "Content-Length")) {
            int64_t cl = 0;
            if (vlen == 0 || vlen > 18) return bad_head("bad Content-Length");
            for (size_t k = 0; k < vlen; k++) {
                if (v[k] < '0' || v[k] > '9') return bad_head("bad Content-Length");
                cl = cl * 10 + (v[k] - '0');
            }
            if (h->content_length >= 0 && h->content_length != cl)
                return bad_head("conflicting Content-Length");
            h->content_length = cl;
        } else if (token_eq(p, nlen, "Transfer-Encoding")) {
            if (list_has(v, vlen, "chunked", true))
                h->chunked = true;
            else
                h->close = true; /* some other coding: the body ends at close */
        } else if (token_eq(p, nlen, "Connection")) {
            if (list_has(v, vlen, "close", false)) h->close = true;
            if (list_has(v, vlen, "keep-alive", false)) keep_alive = true;
        } else if (token_eq(p, nlen, "Retry-After")) {
            h->retry_after_ms = retry_after(v, vlen, now_wall_ms);
        }
        p = nl + 1;
    }
    if (h->minor == 0 && !keep_alive) h->close = true;
    if (h->chunked) h->content_length = -1; /* RFC 9112 §6.3: chunked wins */
    return (long)end;
}

/* ---- connections -------------------------------------------------------- */

typedef struct {
    int fd;
    char key[320]; /* host:port */
} idle_conn;

typedef struct {
    idle_conn c[CONN_CACHE];
    int n;
} conn_cache;

static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_free(void *p)
{
    conn_cache *cc = p;
    for (int i = 0; i < cc->n; i++)
        close(cc->c[i].fd);
    free(cc);
}

static void cache_init(void)
{
    pthread_key_create(&cache_key, cache_free);
}

static conn_cache *cache_get(void)
{
    pthread_once(&cache_once, cache_init);
    conn_cache *cc = pthread_getspecific(cache_key);
    if (!cc) {
        cc = calloc(1, sizeof *cc);
        if (cc && pthread_setspecific(cache_key, cc) != 0) {
            free(cc);
            cc = NULL;
        }
    }
    return cc;
}

/* An idle connection to key, or -1. One that is readable (closed by the
 * server, or stray bytes) is dropped. */
static int cache_take(const char *key)
{
    conn_cache *cc = cache_get();
    if (!cc) return -1;
    for (int i = cc->n - 1; i >= 0; i--) {
        if (strcmp(cc->c[i].key, key) != 0) continue;
        int fd = cc->c[i].fd;
        cc->c[i] = cc->c[--cc->n];
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 0) != 0) {
            close(fd);
            continue;
        }
        return fd;
    }
    return -1;
}

static void cache_put(const char *key, int fd)
{
    conn_cache *cc = cache_get();
    if (!cc) {
        close(fd);
        return;
    }
    if (cc->n == CONN_CACHE) { /* drop the oldest */
        close(cc->c[0].fd);
        memmove(&cc->c[0], &cc->c[1], sizeof cc->c[0] * (CONN_CACHE - 1));
        cc->n--;
    }
    cc->c[cc->n].fd = fd;
    snprintf(cc->c[cc->n].key, sizeof cc->c[cc->n].key, "%s", key);
    cc->n++;
}

/* ---- one call ------------------------------------------------------------ */

typedef struct {
    char host[256];
    char port[6];
    char key[320];    /* host:port, the cache key */
    const char *auth; /* authority as written, for Host: */
    size_t auth_len;
    const char *path; /* from the first '/' or '?'; "" means "/" */
    size_t path_len;
} url_parts;

static int parse_url(const char *url, url_parts *u)
{
    memset(u, 0, sizeof *u);
    for (const char *q = url; *q; q++)
        if ((unsigned char)*q <= ' ' || *q == 0x7f) return -1;
    const char *p = url + 7, *end = p + strcspn(p, "/?#");
    const char *he, *port = NULL;
    u->auth = p;
    u->auth_len = (size_t)(end - p);
    if (memchr(p, '@', (size_t)(end - p))) return -1; /* no userinfo */
    const char *hs = p;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (!rb) return -1;
        hs = p + 1;
        he = rb;
        if (rb + 1 < end) {
            if (rb[1] != ':') return -1;
            port = rb + 2;
        }
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        he = colon ? colon : end;
        if (colon) port = colon + 1;
    }
    size_t hl = (size_t)(he - hs);
    if (hl == 0 || hl >= sizeof u->host) return -1;
    memcpy(u->host, hs, hl);
    if (port && port == end) port = NULL; /* "host:" */
    if (port) {
        size_t pl = (size_t)(end - port);
        long v = 0;
        if (pl > 5) return -1;
        for (size_t i = 0; i < pl; i++) {
            if (port[i] < '0' || port[i] > '9') return -1;
            v = v * 10 + (port[i] - '0');
        }
        if (v < 1 || v > 65535) return -1;
        snprintf(u->port, sizeof u->port, "%ld", v);
    } else {
        snprintf(u->port, sizeof u->port, "80");
    }
    snprintf(u->key, sizeof u->key, "%s:%s", u->host, u->port);
    u->path = end;
    u->path_len = strcspn(end, "#");
    return 0;
}

static int64_t mono_ms(void)
{
    return lf_mono_us() / 1000;
}

typedef struct {
    const char *method, *url;
    int fd;
    int64_t deadline; /* monotonic ms: the whole call */
    const char *why;  /* curl's text for the failure */
    int rc;
    /* receive buffer: data[off..len) not consumed yet */
    char *data;
    size_t off, len, cap;
    size_t got; /* bytes received on this connection for this call */
} call;

static int fail(call *c, int rc, const char *why)
{
    c->rc = rc;
    c->why = why;
    return rc;
}

/* Waits for events on c->fd until the deadline: 0, or LF_ETIMEDOUT. */
static int wait_fd(call *c, short events)
{
    for (;;) {
        int64_t left = c->deadline - mono_ms();
        if (left <= 0) return fail(c, LF_ETIMEDOUT, E_TIMEOUT);
        struct pollfd pf = {.fd = c->fd, .events = events};
        int n = poll(&pf, 1, left > 1000 ? 1000 : (int)left);
        if (n > 0) return 0;
        if (n < 0 && errno != EINTR) return fail(c, LF_EIO, E_RECV);
    }
}

/* A name lookup that outlives a timed-out call (see resolve). */
typedef struct {
    struct gaicb cb;
    struct addrinfo hints;
    char host[256], port[6];
} lookup;

/* The addresses of u into *out, by the connect deadline: 0, or the
 * failure. A numeric host needs no lookup; a name is looked up by glibc's
 * getaddrinfo_a (a helper thread), so that the deadline bounds it as
 * curl's threaded resolver does, not resolv.conf's timeouts x attempts. */
static int resolve(call *c, const url_parts *u, int64_t deadline, struct addrinfo **out)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | AI_NUMERICHOST};
    *out = NULL;
    if (getaddrinfo(u->host, u->port, &hints, out) == 0 && *out) return 0;
    lookup *lk = calloc(1, sizeof *lk);
    if (!lk) return fail(c, LF_EUNAVAILABLE, E_RESOLVE);
    memcpy(lk->host, u->host, sizeof lk->host);
    memcpy(lk->port, u->port, sizeof lk->port);
    lk->hints = hints;
    lk->hints.ai_flags = AI_NUMERICSERV;
    lk->cb.ar_name = lk->host;
    lk->cb.ar_service = lk->port;
    lk->cb.ar_request = &lk->hints;
    struct gaicb *list[1] = {&lk->cb};
    if (getaddrinfo_a(GAI_NOWAIT, list, 1, NULL) != 0) {
        free(lk);
        return fail(c, LF_EUNAVAILABLE, E_RESOLVE);
    }
    for (;;) {
        int64_t left = deadline - mono_ms();
        if (left <= 0) break;
        struct timespec ts = {.tv_sec = left / 1000, .tv_nsec = (left % 1000) * 1000000};
        int r = gai_suspend((const struct gaicb *const *)list, 1, &ts);
        if (r != EAI_INTR) break; /* done, or EAI_AGAIN: timed out */
    }
    int e = gai_error(&lk->cb);
    if (e == EAI_INPROGRESS) {
        /* Not cancelled: the helper thread still writes into lk when it
         * ends, so lk (and its result) is left to it — a few hundred bytes
         * per lookup that outlived its call. */
        if (gai_cancel(&lk->cb) == EAI_CANCELED) free(lk);
        return fail(c, LF_ETIMEDOUT, E_TIMEOUT);
    }
    if (e != 0 || !lk->cb.ar_result) {
        if (lk->cb.ar_result) freeaddrinfo(lk->cb.ar_result);
        free(lk);
        return fail(c, LF_EUNAVAILABLE, E_RESOLVE);
    }
    *out = lk->cb.ar_result;
    free(lk);
    return 0;
}

static int dial(call *c, const url_parts *u, int64_t connect_deadline)
{
    struct addrinfo *ai = NULL;
    if (resolve(c, u, connect_deadline, &ai)) return c->rc;
    int rc = fail(c, LF_EUNAVAILABLE, E_CONNECT);
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        int fd =
            socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
            close(fd);
            continue;
        }
        /* wait for the connection until the connect deadline */
        int err = 0, timed_out = 0;
        for (;;) {
            int64_t left = connect_deadline - mono_ms();
            if (left <= 0) {
                timed_out = 1;
                break;
            }
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            int n = poll(&pf, 1, left > 1000 ? 1000 : (int)left);
            if (n > 0) {
                socklen_t sl = sizeof err;
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) != 0) err = errno;
                break;
            }
            if (n < 0 && errno != EINTR) {
                err = errno;
                break;
            }
        }
        if (timed_out) {
            close(fd);
            rc = fail(c, LF_ETIMEDOUT, E_TIMEOUT);
            break;
        }
        if (err) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->fd = fd;
        c->rc = rc = 0;
        c->why = NULL;
        break;
    }
    freeaddrinfo(ai);
    return rc;
}

static int send_all(call *c, struct iovec *iov, int niov)
{
    while (niov > 0) {
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)niov};
        ssize_t n = sendmsg(c->fd, &m, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (wait_fd(c, POLLOUT)) return c->rc;
                continue;
            }
            return fail(c, LF_EIO, E_SEND);
        }
        size_t k = (size_t)n;
        while (niov > 0 && k >= iov->iov_len) {
            k -= iov->iov_len;
            iov++;
            niov--;
        }
        if (niov > 0) {
            iov->iov_base = (char *)iov->iov_base + k;
            iov->iov_len -= k;
        }
    }
    return 0;
}

/* Reads more bytes into the buffer: > 0, 0 at EOF, or an error code < 0. */
static long fill(call *c)
{
    if (c->off > 0 && c->off == c->len) c->off = c->len = 0;
    if (c->cap - c->len < 16384) {
        if (c->off > 0) {
            memmove(c->data, c->data + c->off, c->len - c->off);
            c->len -= c->off;
            c->off = 0;
        }
        if (c->cap - c->len < 16384) {
            size_t ncap = c->cap ? c->cap * 2 : 32768;
            char *nd = realloc(c->data, ncap);
            if (!nd) return fail(c, LF_ENOMEM, "Out of memory");
            c->data = nd;
            c->cap = ncap;
        }
    }
    for (;;) {
        ssize_t n = recv(c->fd, c->data + c->len, c->cap - c->len, 0);
        if (n > 0) {
            c->len += (size_t)n;
            c->got += (size_t)n;
            return (long)n;
        }
        if (n == 0) return 0;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (wait_fd(c, POLLIN)) return c->rc;
            continue;
        }
        return fail(c, LF_EIO, E_RECV);
    }
}

/* Moves up to n buffered bytes to the body. */
static int take(call *c, lf_http_result *out, size_t n)
{
    size_t have = c->len - c->off;
    if (n > have) n = have;
    if (n && lf_buf_append(&out->body, c->data + c->off, n)) return fail(c, LF_EIO, E_WRITE);
    c->off += n;
    return 0;
}

/* A line (without CRLF) of at most 4 KiB from the buffer into line. */
static int read_line(call *c, char *line, size_t cap)
{
    for (;;) {
        char *s = c->data ? c->data + c->off : NULL;
        char *nl = s ? memchr(s, '\n', c->len - c->off) : NULL;
        if (nl) {
            size_t ll = (size_t)(nl - s);
            c->off += ll + 1;
            if (ll && s[ll - 1] == '\r') ll--;
            if (ll >= cap) return fail(c, LF_EIO, E_WEIRD);
            memcpy(line, s, ll);
            line[ll] = '\0';
            return 0;
        }
        if (c->len - c->off >= cap) return fail(c, LF_EIO, E_WEIRD);
        long r = fill(c);
        if (r < 0) return (int)r;
        if (r == 0) return fail(c, LF_EIO, E_PARTIAL);
    }
}

static int read_body_cl(call *c, lf_http_result *out, int64_t n)
{
    for (;;) {
        size_t have = c->len - c->off;
        size_t want = (size_t)n;
        if (take(c, out, have < want ? have : want)) return c->rc;
        n -= (int64_t)(have < want ? have : want);
        if (n == 0) return 0;
        if ((uint64_t)n > BODY_MAX) return fail(c, LF_EIO, E_WRITE);
        long r = fill(c);
        if (r < 0) return (int)r;
        if (r == 0) return fail(c, LF_EIO, E_PARTIAL);
    }
}

static int read_body_chunked(call *c, lf_http_result *out)
{
    char line[4096];
    for (;;) {
        if (read_line(c, line, sizeof line)) return c->rc;
        char *e = line;
        uint64_t sz = 0;
        int digits = 0;
        for (;; e++) {
            int d = *e >= '0' && *e <= '9'   ? *e - '0'
                    : *e >= 'a' && *e <= 'f' ? *e - 'a' + 10
                    : *e >= 'A' && *e <= 'F' ? *e - 'A' + 10
                                             : -1;
            if (d < 0) break;
            if (++digits > 15) return fail(c, LF_EIO, E_WEIRD);
            sz = sz * 16 + (uint64_t)d;
        }
        while (*e == ' ' || *e == '\t')
            e++;
        if (!digits || (*e && *e != ';')) return fail(c, LF_EIO, E_WEIRD);
        if (sz == 0) break;
        if (sz > BODY_MAX || out->body.len + sz > BODY_MAX) return fail(c, LF_EIO, E_WRITE);
        if (read_body_cl(c, out, (int64_t)sz)) return c->rc;
        if (read_line(c, line, sizeof line)) return c->rc;
        if (line[0]) return fail(c, LF_EIO, E_WEIRD);
    }
    /* trailer fields, up to the empty line */
    for (int i = 0; i < 64; i++) {
        if (read_line(c, line, sizeof line)) return c->rc;
        if (!line[0]) return 0;
    }
    return fail(c, LF_EIO, E_WEIRD);
}

static int read_body_close(call *c, lf_http_result *out)
{
    for (;;) {
        if (take(c, out, c->len - c->off)) return c->rc;
        long r = fill(c);
        if (r < 0) return (int)r;
        if (r == 0) return 0;
    }
}

static bool header_ok(const char *v)
{
    for (; *v; v++)
        if ((unsigned char)*v < ' ' || *v == 0x7f) return false;
    return true;
}

/* One attempt on connection c->fd. *reusable: the connection can go back
 * to the cache. */
static int exchange(call *c, const char *head, size_t head_len, const char *body, size_t body_len,
                    lf_http_result *out, bool *reusable)
{
    *reusable = false;
    c->off = c->len = c->got = 0;
    struct iovec iov[2] = {{(void *)head, head_len}, {(void *)body, body_len}};
    if (send_all(c, iov, body_len ? 2 : 1)) return c->rc;
    lf_http_head h;
    long hl;
    for (;;) {
        hl = lf_http_parse_head(c->data ? c->data + c->off : "", c->len - c->off, lf_now_ms(), &h);
        if (hl < 0) return fail(c, LF_EIO, E_WEIRD);
        if (hl == 0) {
            long r = fill(c);
            if (r < 0) return (int)r;
            if (r == 0) return fail(c, LF_EIO, c->got ? E_RECV : E_NOTHING);
            continue;
        }
        c->off += (size_t)hl;
        if (h.status >= 200) break;
        if (h.status == 101) return fail(c, LF_EIO, E_WEIRD);
        /* 1xx interim answer: the real one follows */
    }
    out->status = h.status;
    out->retry_after_ms = h.retry_after_ms;
    int rc;
    if (strcmp(c->method, "HEAD") == 0 || h.status == 204 || h.status == 304)
        rc = 0;
    else if (h.chunked)
        rc = read_body_chunked(c, out);
    else if (h.content_length >= 0)
        rc = (uint64_t)h.content_length > BODY_MAX ? fail(c, LF_EIO, E_WRITE)
                                                   : read_body_cl(c, out, h.content_length);
    else {
        h.close = true;
        rc = read_body_close(c, out);
    }
    if (rc == 0 && !h.close && c->off == c->len) *reusable = true;
    return rc;
}

int lf_http_call_plain(const char *method, const char *url, const char *body,
                       const lf_http_opts *opts, lf_http_result *out)
{
    lf_http_opts def = {0};
    if (!opts) opts = &def;
    memset(out, 0, sizeof *out);
    lf_buf_init(&out->body, BODY_MAX);
    out->retry_after_ms = -1;
    int64_t t0 = lf_mono_us();
    int tmo = opts->timeout_ms > 0 ? opts->timeout_ms : 10000;
    int ctmo = opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : tmo;
    call c = {.method = method, .url = url, .fd = -1};
    c.deadline = t0 / 1000 + tmo;
    int64_t connect_deadline = t0 / 1000 + (ctmo < tmo ? ctmo : tmo);
    url_parts u;
    lf_buf head;
    lf_buf_init(&head, 0);
    size_t body_len = body ? strlen(body) : 0;
    if (strncasecmp(url, "http://", 7) != 0) {
        fail(&c, LF_EIO, E_PROTO);
        goto out;
    }
    if (parse_url(url, &u) || !method || !*method || !header_ok(method) || strpbrk(method, " ") ||
        (opts->bearer && !header_ok(opts->bearer)) ||
        (opts->idempotency_key && !header_ok(opts->idempotency_key))) {
        fail(&c, LF_EIO, E_URL);
        goto out;
    }
    int hr = lf_buf_printf(&head, "%s %s%.*s HTTP/1.1\r\nHost: %.*s\r\n", method,
                           u.path_len && u.path[0] == '/' ? "" : "/", (int)u.path_len, u.path,
                           (int)u.auth_len, u.auth);
    hr |= lf_buf_printf(&head, "User-Agent: lockerfleet/%s\r\nAccept: */*\r\n", LF_VERSION);
    if (opts->bearer) hr |= lf_buf_printf(&head, "Authorization: Bearer %s\r\n", opts->bearer);
    if (opts->idempotency_key)
        hr |= lf_buf_printf(&head, "Idempotency-Key: %s\r\n", opts->idempotency_key);
    if (body)
        hr |= lf_buf_printf(&head, "Content-Type: application/json\r\nContent-Length: %zu\r\n",
                            body_len);
    else if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
             strcmp(method, "PATCH") == 0)
        hr |= lf_buf_printf(&head, "Content-Length: 0\r\n");
    hr |= lf_buf_append(&head, "\r\n", 2);
    if (hr) {
        fail(&c, LF_ENOMEM, "Out of memory");
        goto out;
    }
    /* a cached connection first; if it turns out dead before any answer,
     * once more on a new one */
    for (int attempt = 0; attempt < 2; attempt++) {
        bool reused = false;
        c.fd = attempt == 0 ? cache_take(u.key) : -1;
        if (c.fd >= 0)
            reused = true;
        else if (dial(&c, &u, connect_deadline))
            break;
        bool reusable = false;
        lf_buf_free(&out->body);
        lf_buf_init(&out->body, BODY_MAX);
        out->status = 0;
        out->retry_after_ms = -1;
        int rc = exchange(&c, head.data, head.len, body, body_len, out, &reusable);
        if (rc == 0 && reusable)
            cache_put(u.key, c.fd);
        else
            close(c.fd);
        c.fd = -1;
        if (rc == 0) break;
        if (!(reused && c.got == 0 && rc == LF_EIO)) break;
        c.rc = 0; /* the server had closed the idle connection: retry */
        c.why = NULL;
    }
out:
    lf_buf_free(&head);
    free(c.data);
    out->total_ms = (double)(lf_mono_us() - t0) / 1000.0;
    if (c.rc == 0) return 0;
    if (c.rc == LF_ENOMEM) c.rc = LF_EIO;
    lf_err_set("%s %s: %s", method, url, c.why ? c.why : "error");
    return c.rc;
}
