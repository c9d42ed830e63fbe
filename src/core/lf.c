/*
 * lf.c — core helpers: errors, logging, time, ids, hashing, buffers.
 * Logging writes one line per call to stderr with a single write(2), so
 * lines from several threads never interleave.
 */
#define _GNU_SOURCE
#include "lf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

const char *lf_strerror(int rc)
{
    switch (rc) {
    case LF_OK:
        return "ok";
    case LF_EINVAL:
        return "invalid argument";
    case LF_ENOMEM:
        return "out of memory";
    case LF_EIO:
        return "I/O or backend error";
    case LF_ECONFLICT:
        return "version conflict";
    case LF_ENOTFOUND:
        return "not found";
    case LF_EEXIST:
        return "already exists";
    case LF_ETIMEDOUT:
        return "timed out";
    case LF_ECORRUPT:
        return "corrupt or foreign file";
    case LF_EBUSY:
        return "busy, try again later";
    case LF_ECLOSED:
        return "closed";
    case LF_EDENIED:
        return "permission denied";
    case LF_EUNSUPPORTED:
        return "unsupported";
    case LF_EUNAVAILABLE:
        return "unavailable";
    case LF_ESTATE:
        return "not allowed in the current state";
    default:
        return "unknown error";
    }
}

static __thread char err_detail[512];

void lf_err_set(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_detail, sizeof err_detail, fmt, ap);
    va_end(ap);
}

const char *lf_err_get(void)
{
    return err_detail;
}

void lf_err_clear(void)
{
    err_detail[0] = '\0';
}

/* ---- logging ------------------------------------------------------- */
static enum lf_log_level log_level = LF_LOG_INFO;
static char log_path[4096];
static pthread_mutex_t log_path_mu = PTHREAD_MUTEX_INITIALIZER;

int lf_log_open_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        lf_err_set("cannot open log file %s: %s", path, strerror(errno));
        return LF_EIO;
    }
    /* dup2 swaps what fd 2 points at atomically: a concurrent write goes to
     * the old file or the new one, never to a closed (or reused) number.
     * Whatever libraries print to stderr lands in the log file too. */
    int rc = 0;
    if (dup2(fd, STDERR_FILENO) < 0) {
        lf_err_set("cannot redirect stderr to %s: %s", path, strerror(errno));
        rc = LF_EIO;
    } else {
        pthread_mutex_lock(&log_path_mu);
        snprintf(log_path, sizeof log_path, "%s", path);
        pthread_mutex_unlock(&log_path_mu);
    }
    close(fd);
    return rc;
}

void lf_log_reopen(void)
{
    char path[sizeof log_path];
    pthread_mutex_lock(&log_path_mu);
    snprintf(path, sizeof path, "%s", log_path);
    pthread_mutex_unlock(&log_path_mu);
    if (!path[0]) return;
    if (lf_log_open_file(path) == 0)
        LF_INFO("log", "log file reopened");
    else
        LF_WARN("log", "%s; still writing to the old file", lf_err_get());
}
static const char *const ctx_keys[3] = {"request_id", "unit", "position"};
static __thread char log_ctx[3][80];

void lf_log_ctx_set(const char *key, const char *value)
{
    /* A position only means something inside a request (set by the
     * router); worker threads would carry a stale one into later lines. */
    if (strcmp(key, "position") == 0 && !log_ctx[0][0]) return;
    for (int i = 0; i < 3; i++)
        if (strcmp(key, ctx_keys[i]) == 0)
            snprintf(log_ctx[i], sizeof log_ctx[i], "%s", value ? value : "");
}

void lf_log_ctx_clear(void)
{
    for (int i = 0; i < 3; i++)
        log_ctx[i][0] = '\0';
}

void lf_log_ctx_save(lf_log_snap *out)
{
    memcpy(out->v, log_ctx, sizeof out->v);
}

void lf_log_ctx_restore(const lf_log_snap *in)
{
    memcpy(log_ctx, in->v, sizeof log_ctx);
}

void lf_log_snap_set(lf_log_snap *s, const char *key, const char *value)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(key, ctx_keys[i]) == 0)
            snprintf(s->v[i], sizeof s->v[i], "%s", value ? value : "");
}
static int log_json = 0;

void lf_log_set_level(enum lf_log_level lvl)
{
    log_level = lvl;
}

int lf_log_parse_level(const char *s, enum lf_log_level *out)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (enum lf_log_level)i;
            return 0;
        }
    return LF_EINVAL;
}

int lf_log_set_format(const char *fmt)
{
    if (strcmp(fmt, "text") == 0)
        log_json = 0;
    else if (strcmp(fmt, "json") == 0)
        log_json = 1;
    else
        return LF_EINVAL;
    return 0;
}

static void json_escape_into(lf_buf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            lf_buf_append(b, e, 2);
        } else if (c < 0x20) {
            lf_buf_printf(b, "\\u%04x", c);
        } else {
            lf_buf_append(b, s, 1);
        }
    }
}

void lf_log(enum lf_log_level lvl, const char *component, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    if (lvl < log_level) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char ts[LF_TIME_LEN];
    lf_time_format(lf_now_ms(), ts);
    lf_buf b;
    lf_buf_init(&b, 0);
    if (log_json) {
        lf_buf_printf(&b, "{\"time\":\"%s\",\"level\":\"%s\",\"component\":\"", ts, names[lvl]);
        json_escape_into(&b, component);
        lf_buf_printf(&b, "\",\"message\":\"");
        json_escape_into(&b, msg);
        lf_buf_printf(&b, "\"");
        for (int i = 0; i < 3; i++) {
            if (!log_ctx[i][0]) continue;
            if (i == 2) { /* position: a number */
                lf_buf_printf(&b, ",\"position\":");
                json_escape_into(&b, log_ctx[i]);
                continue;
            }
            lf_buf_printf(&b, ",\"%s\":\"", ctx_keys[i]);
            json_escape_into(&b, log_ctx[i]);
            lf_buf_printf(&b, "\"");
        }
        lf_buf_printf(&b, "}\n");
    } else {
        lf_buf_printf(&b, "%s %-5s %s: %s\n", ts, names[lvl], component, msg);
    }
    ssize_t w = write(STDERR_FILENO, b.data, b.len);
    (void)w;
    lf_buf_free(&b);
}

/* ---- time ---------------------------------------------------------- */
int64_t lf_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t lf_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t lf_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void lf_sleep_ms(int64_t ms)
{
    if (ms <= 0) return;
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

static void abstime(clockid_t clock, int64_t us, struct timespec *out)
{
    clock_gettime(clock, out);
    if (us < 0) us = 0;
    out->tv_sec += (time_t)(us / 1000000);
    out->tv_nsec += (long)(us % 1000000) * 1000L;
    if (out->tv_nsec >= 1000000000L) {
        out->tv_sec++;
        out->tv_nsec -= 1000000000L;
    }
}

void lf_abstime_us(int64_t us, struct timespec *out)
{
    abstime(CLOCK_REALTIME, us, out);
}

void lf_abstime_mono_us(int64_t us, struct timespec *out)
{
    abstime(CLOCK_MONOTONIC, us, out);
}

char *lf_time_format(int64_t ms, char *buf)
{
    time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    int frac = (int)(ms - (int64_t)secs * 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    int y = tm.tm_year + 1900;
    if (y < 0) y = 0;
    if (y > 9999) y = 9999;
    snprintf(buf, LF_TIME_LEN, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", y % 10000,
             (tm.tm_mon + 1) % 100, tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100,
             tm.tm_sec % 100, frac % 1000);
    return buf;
}

static int days_in_month(int y, int m)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
    return d[m - 1];
}

/* Days since 1970-01-01 for a civil date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9') return -1;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

int lf_time_parse(const char *s, int64_t *ms_out)
{
    if (!s) return LF_EINVAL;
    const char *p = s;
    int y, mo, d, h, mi, se, ms = 0;
    if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' || digits(&p, 2, &d))
        return LF_EINVAL;
    if (*p != 'T' && *p != 't' && *p != ' ') return LF_EINVAL;
    p++;
    if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' || digits(&p, 2, &se))
        return LF_EINVAL;
    if (*p == '.') {
        p++;
        int n = 0;
        while (*p >= '0' && *p <= '9') {
            if (n < 3) ms = ms * 10 + (*p - '0');
            n++;
            p++;
        }
        if (n == 0 || n > 9) return LF_EINVAL;
        for (; n < 3; n++)
            ms *= 10;
    }
    int off_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, oh, om;
        p++;
        if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om)) return LF_EINVAL;
        if (oh > 23 || om > 59) return LF_EINVAL;
        off_min = sign * (oh * 60 + om);
    } else {
        return LF_EINVAL;
    }
    if (*p != '\0') return LF_EINVAL;
    if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 ||
        mi > 59 || se > 59)
        return LF_EINVAL;
    int64_t days = days_from_civil(y, mo, d);
    int64_t secs = days * 86400 + h * 3600 + mi * 60 + se - (int64_t)off_min * 60;
    *ms_out = secs * 1000 + ms;
    return 0;
}

/* ---- ids ----------------------------------------------------------- */
int lf_init(void)
{
    if (sodium_init() < 0) {
        lf_err_set("libsodium failed to initialise");
        return LF_EIO;
    }
    return 0;
}

void lf_uuid_text(const unsigned char b[16], char out[LF_UUID_LEN])
{
    static const char hx[] = "0123456789abcdef";
    int j = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[j++] = '-';
        out[j++] = hx[b[i] >> 4];
        out[j++] = hx[b[i] & 15];
    }
    out[j] = '\0';
}

/* Random bytes for ids (uuids, request ids): the kernel's CSPRNG like
 * randombytes_buf, but taken from a per-thread buffer refilled 256 bytes
 * at a time instead of one getrandom(2) per id (2-3 per request on the hub,
 * about 1 % of its CPU under bench reserve). Secrets (tokens, keys) keep
 * calling randombytes_buf. A forked child drops the buffer it inherited,
 * so parent and child never hand out the same bytes. */
#define RAND_BUF 256
static __thread unsigned char rand_buf[RAND_BUF];
static __thread size_t rand_left;
static pthread_once_t rand_once = PTHREAD_ONCE_INIT;

static void rand_forked(void)
{
    rand_left = 0; /* the child's only thread is the one that forked */
}

static void rand_init(void)
{
    pthread_atfork(NULL, NULL, rand_forked);
}

static void rand_ids(void *out, size_t n)
{
    if (n > RAND_BUF) {
        randombytes_buf(out, n);
        return;
    }
    if (rand_left < n) {
        pthread_once(&rand_once, rand_init);
        randombytes_buf(rand_buf, sizeof rand_buf);
        rand_left = sizeof rand_buf;
    }
    unsigned char *p = rand_buf + sizeof rand_buf - rand_left;
    memcpy(out, p, n);
    memset(p, 0, n); /* handed out once */
    rand_left -= n;
}

void lf_uuid_v4(char out[LF_UUID_LEN])
{
    unsigned char b[16];
    rand_ids(b, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    lf_uuid_text(b, out);
}

void lf_uuid_v7(char out[LF_UUID_LEN])
{
    unsigned char b[16];
    rand_ids(b, sizeof b);
    uint64_t ms = (uint64_t)lf_now_ms();
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x70);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    lf_uuid_text(b, out);
}

bool lf_uuid_valid(const char *s)
{
    if (!s) return false;
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return s[36] == '\0';
}

size_t lf_utf8_len(const unsigned char *p, size_t avail)
{
    unsigned c = *p, cp;
    size_t n;
    if (c >= 0xc2 && c <= 0xdf)
        n = 1, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        n = 2, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 3, cp = c & 0x07;
    else
        return 0;
    if (avail <= n) return 0;
    for (size_t i = 1; i <= n; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n + 1;
}

void lf_token_new(char out[65])
{
    unsigned char b[32];
    randombytes_buf(b, sizeof b);
    sodium_bin2hex(out, 65, b, sizeof b);
}

void lf_token_hash(const char *token, char out[65])
{
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)token, strlen(token));
    sodium_bin2hex(out, 65, h, sizeof h);
}

bool lf_ct_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la != lb) return false;
    return sodium_memcmp(a, b, la) == 0;
}

uint32_t lf_random_u32(void)
{
    uint32_t v;
    rand_ids(&v, sizeof v);
    return v;
}

uint32_t lf_random_uniform(uint32_t upper)
{
    return upper ? randombytes_uniform(upper) : 0;
}

void lf_hash_hex(const char *name, char out[17])
{
    XXH64_hash_t h = XXH3_64bits(name, strlen(name));
    snprintf(out, 17, "%016" PRIx64, (uint64_t)h);
}

void lf_shard_of(const char *name, int ndigits, char *out)
{
    char hx[17];
    lf_hash_hex(name, hx);
    if (ndigits < 1) ndigits = 1;
    if (ndigits > 4) ndigits = 4;
    memcpy(out, hx, (size_t)ndigits);
    out[ndigits] = '\0';
}

bool lf_name_valid(const char *s)
{
    if (!s) return false;
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
        if (n >= 64) return false;
    }
    return n >= 1;
}

/* ---- memory and strings ------------------------------------------ */
static void oom(void)
{
    static const char m[] = "lockerfleet: out of memory\n";
    ssize_t w = write(STDERR_FILENO, m, sizeof m - 1);
    (void)w;
    abort();
}

void *lf_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) oom();
    return p;
}

void *lf_xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p) oom();
    return p;
}

void *lf_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) oom();
    return q;
}

char *lf_strdup(const char *s)
{
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) oom();
    return d;
}

char *lf_asprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) oom();
    return s;
}

void lf_buf_init(lf_buf *b, size_t max)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->max = max;
}

int lf_buf_append(lf_buf *b, const void *p, size_t n)
{
    if (b->max && b->len + n > b->max) return LF_EINVAL;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 256;
        while (nc < b->len + n + 1)
            nc *= 2;
        b->data = lf_xrealloc(b->data, nc);
        b->cap = nc;
    }
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int lf_buf_printf(lf_buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return LF_EINVAL;
    if ((size_t)n < sizeof tmp) return lf_buf_append(b, tmp, (size_t)n);
    char *big = lf_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = lf_buf_append(b, big, (size_t)n);
    free(big);
    return rc;
}

void lf_buf_free(lf_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int lf_parse_i64(const char *s, int64_t *out)
{
    if (!s || !*s) return LF_EINVAL;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s) return LF_EINVAL;
    *out = (int64_t)v;
    return 0;
}
