/*
 * store.c — the store front: picks a backend from the URL, validates every
 * append the same way for all backends, and implements subscriptions
 * (catch-up then live, on a thread) on top of read_all + wait.
 */
#define _GNU_SOURCE
#include "store_int.h"

#include "core/module.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lf_store {
    const lf_store_ops *ops;
    void *impl;
};

/* The server backends live in modules (core/module.h) so that processes
 * that never open such a store (a unit agent) do not load their client
 * libraries. A program that links a backend's object directly (the
 * conformance, crash and leases tests) defines its ops table, and these
 * weak references then find it without a module. */
extern const lf_store_ops lf_store_postgres_ops __attribute__((weak));
extern const lf_store_ops lf_store_nats_ops __attribute__((weak));
extern const lf_store_ops lf_store_redis_ops __attribute__((weak));

/* The backend for url in *ops; LF_EINVAL for an unknown scheme,
 * LF_EUNSUPPORTED when the backend was not built or its module cannot be
 * loaded; err says which. */
static int backend_for(const char *url, const lf_store_ops **ops, char *err, size_t errlen)
{
    static const struct {
        const char *prefix, *name, *sym;
        const lf_store_ops *linked;
        int built;
    } server[] = {
        {"postgres://", "postgres", "lf_store_postgres_ops", &lf_store_postgres_ops,
#ifdef LF_HAVE_POSTGRES
         1
#else
         0
#endif
        },
        {"postgresql://", "postgres", "lf_store_postgres_ops", &lf_store_postgres_ops,
#ifdef LF_HAVE_POSTGRES
         1
#else
         0
#endif
        },
        {"nats://", "nats", "lf_store_nats_ops", &lf_store_nats_ops,
#ifdef LF_HAVE_NATS
         1
#else
         0
#endif
        },
        {"redis://", "redis", "lf_store_redis_ops", &lf_store_redis_ops,
#ifdef LF_HAVE_REDIS
         1
#else
         0
#endif
        },
    };
    *ops = NULL;
    if (strncmp(url, "sqlite:", 7) == 0) {
        *ops = &lf_store_sqlite_ops;
        return 0;
    }
    for (size_t i = 0; i < sizeof server / sizeof server[0]; i++) {
        if (strncmp(url, server[i].prefix, strlen(server[i].prefix)) != 0) continue;
        if (server[i].linked) {
            *ops = server[i].linked;
            return 0;
        }
        if (!server[i].built) {
            snprintf(err, errlen,
                     "this build has no %s store backend (its client library was "
                     "not found at build time)",
                     server[i].name);
            return LF_EUNSUPPORTED;
        }
        char mod[64];
        snprintf(mod, sizeof mod, "lockerfleet-store-%s", server[i].name);
        *ops = lf_module_sym(mod, server[i].sym);
        if (!*ops) {
            snprintf(err, errlen, "%s store: %s", server[i].name, lf_err_get());
            return LF_EUNSUPPORTED;
        }
        return 0;
    }
    snprintf(err, errlen,
             "unknown store URL '%s' (want sqlite:PATH, postgres://, nats://, redis://)", url);
    return LF_EINVAL;
}

int lf_store_open(const char *url, lf_store **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!url) return LF_EINVAL;
    char local[512] = "";
    if (!err) {
        err = local;
        errlen = sizeof local;
    }
    const lf_store_ops *ops = NULL;
    int rc = backend_for(url, &ops, err, errlen);
    if (rc) return rc;
    void *impl = NULL;
    rc = ops->open(url, &impl, err, errlen);
    if (rc) return rc;
    lf_store *s = lf_xcalloc(1, sizeof *s);
    s->ops = ops;
    s->impl = impl;
    *out = s;
    return 0;
}

void lf_store_close(lf_store *s)
{
    if (!s) return;
    s->ops->close(s->impl);
    free(s);
}

const char *lf_store_backend(const lf_store *s)
{
    return s->ops->name;
}

static bool valid_utf8_text(const char *p)
{
    const unsigned char *s = (const unsigned char *)p;
    size_t left = strlen(p);
    while (*s) {
        if (*s < 0x20 || *s == 0x7f) return false;       /* no control chars in names */
        size_t n = *s < 0x80 ? 1 : lf_utf8_len(s, left); /* the same check as data's */
        if (!n) return false;
        s += n;
        left -= n;
    }
    return true;
}

/* ---- fast JSON object check ----------------------------------------------
 * Validating every event's data with jansson (a full parse into a tree)
 * cost more than the SQLite insert itself. json_fast_object() is a
 * non-allocating, strict RFC 8259 scanner that answers only "certainly a
 * valid object, exactly as jansson (JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL)
 * would accept it". Anything else — invalid input and the rare cases it
 * does not decide (exponents, very long numbers, escaped keys, deep or wide
 * objects, \u0000 in keys) — falls through to jansson, which then gives the
 * verdict and the error message. So jansson stays the single judge of what
 * is rejected; tests/unit/test_store_validate.c checks the two agree. */
typedef struct {
    const unsigned char *p;
    int depth;
    int nkeys; /* keys of the open objects, for the duplicate check */
    struct {
        const unsigned char *k;
        size_t len;
    } keys[64];
} jscan;

#define JS_UNSURE 0
#define JS_OK 1

static void js_ws(jscan *j)
{
    while (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r')
        j->p++;
}

static int js_hex4(const unsigned char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return 0;
        v = v << 4 | d;
    }
    *out = v;
    return 1;
}

/* A string at j->p ('"'); key: no escapes allowed (JS_UNSURE). */
static int js_string(jscan *j, int key)
{
    const unsigned char *p = j->p + 1;
    for (;;) {
        unsigned c = *p;
        if (c == '"') break;
        if (c < 0x20) return JS_UNSURE;
        if (c == '\\') {
            if (key) return JS_UNSURE;
            c = p[1];
            if (c == 'u') {
                unsigned u;
                if (!js_hex4(p + 2, &u)) return JS_UNSURE;
                p += 6;
                if (u >= 0xdc00 && u <= 0xdfff) return JS_UNSURE;
                if (u >= 0xd800 && u <= 0xdbff) {
                    unsigned lo;
                    if (p[0] != '\\' || p[1] != 'u' || !js_hex4(p + 2, &lo) || lo < 0xdc00 ||
                        lo > 0xdfff)
                        return JS_UNSURE;
                    p += 6;
                }
                continue;
            }
            if (c != '"' && c != '\\' && c != '/' && c != 'b' && c != 'f' && c != 'n' && c != 'r' &&
                c != 't')
                return JS_UNSURE;
            p += 2;
            continue;
        }
        if (c < 0x80) {
            p++;
            continue;
        }
        /* UTF-8: no overlongs, no surrogates, nothing past U+10FFFF (the
         * text is NUL-terminated: the check stops at the NUL). */
        size_t n = lf_utf8_len(p, 4);
        if (!n) return JS_UNSURE;
        p += n;
    }
    j->p = p + 1;
    return JS_OK;
}

static int js_number(jscan *j)
{
    const unsigned char *p = j->p;
    if (*p == '-') p++;
    const unsigned char *d0 = p;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (*p >= '0' && *p <= '9')
            p++;
    else
        return JS_UNSURE;
    /* jansson rejects integers past int64 and reals past double. */
    if (p - d0 > 18) return JS_UNSURE;
    if (*p == '.') {
        p++;
        if (!(*p >= '0' && *p <= '9')) return JS_UNSURE;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p == 'e' || *p == 'E') return JS_UNSURE;
    j->p = p;
    return JS_OK;
}

static int js_value(jscan *j);

static int js_object(jscan *j)
{
    if (++j->depth > 32) return JS_UNSURE;
    int first_key = j->nkeys;
    j->p++;
    js_ws(j);
    if (*j->p == '}') {
        j->p++;
        j->depth--;
        return JS_OK;
    }
    for (;;) {
        if (*j->p != '"') return JS_UNSURE;
        const unsigned char *k = j->p + 1;
        if (js_string(j, 1) != JS_OK) return JS_UNSURE;
        size_t len = (size_t)(j->p - 1 - k);
        for (int i = first_key; i < j->nkeys; i++)
            if (j->keys[i].len == len && memcmp(j->keys[i].k, k, len) == 0) return JS_UNSURE;
        if (j->nkeys == (int)(sizeof j->keys / sizeof j->keys[0])) return JS_UNSURE;
        j->keys[j->nkeys].k = k;
        j->keys[j->nkeys].len = len;
        j->nkeys++;
        js_ws(j);
        if (*j->p != ':') return JS_UNSURE;
        j->p++;
        js_ws(j);
        if (js_value(j) != JS_OK) return JS_UNSURE;
        js_ws(j);
        if (*j->p == ',') {
            j->p++;
            js_ws(j);
            continue;
        }
        if (*j->p != '}') return JS_UNSURE;
        j->p++;
        j->nkeys = first_key;
        j->depth--;
        return JS_OK;
    }
}

static int js_array(jscan *j)
{
    if (++j->depth > 32) return JS_UNSURE;
    j->p++;
    js_ws(j);
    if (*j->p == ']') {
        j->p++;
        j->depth--;
        return JS_OK;
    }
    for (;;) {
        if (js_value(j) != JS_OK) return JS_UNSURE;
        js_ws(j);
        if (*j->p == ',') {
            j->p++;
            js_ws(j);
            continue;
        }
        if (*j->p != ']') return JS_UNSURE;
        j->p++;
        j->depth--;
        return JS_OK;
    }
}

static int js_value(jscan *j)
{
    switch (*j->p) {
    case '{':
        return js_object(j);
    case '[':
        return js_array(j);
    case '"':
        return js_string(j, 0);
    case 't':
        if (strncmp((const char *)j->p, "true", 4) != 0) return JS_UNSURE;
        j->p += 4;
        return JS_OK;
    case 'f':
        if (strncmp((const char *)j->p, "false", 5) != 0) return JS_UNSURE;
        j->p += 5;
        return JS_OK;
    case 'n':
        if (strncmp((const char *)j->p, "null", 4) != 0) return JS_UNSURE;
        j->p += 4;
        return JS_OK;
    default:
        return js_number(j);
    }
}

/* 1 if txt is certainly a JSON object jansson accepts; 0 if unsure. */
static int json_fast_object(const char *txt)
{
    jscan j;
    j.p = (const unsigned char *)txt;
    j.depth = 0;
    j.nkeys = 0;
    js_ws(&j);
    if (*j.p != '{' || js_object(&j) != JS_OK) return 0;
    js_ws(&j);
    return *j.p == '\0';
}

static int check_json_object(const char *txt, const char *what, size_t i)
{
    if (json_fast_object(txt)) return 0;
    json_error_t je;
    json_t *j = json_loads(txt, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!j) {
        lf_err_set("event %zu: %s is not valid JSON: %s", i, what, je.text);
        return LF_EINVAL;
    }
    int ok = json_is_object(j);
    json_decref(j);
    if (!ok) {
        lf_err_set("event %zu: %s must be a JSON object", i, what);
        return LF_EINVAL;
    }
    return 0;
}

/* For tests: the fast scanner's verdict alone (1 = certainly valid). */
int lf_store_json_fast_object(const char *txt);
int lf_store_json_fast_object(const char *txt)
{
    return json_fast_object(txt);
}

typedef struct {
    uint64_t hi, lo;
    size_t idx;
} id_key;

/* A UUID already checked by lf_uuid_valid, as two 64-bit halves. */
static void id_parse(const char *u, id_key *k)
{
    uint64_t v[2] = {0, 0};
    int h = 0, nib = 0;
    for (const char *p = u; *p; p++) {
        char c = *p;
        if (c == '-') continue;
        unsigned d = c <= '9' ? (unsigned)(c - '0') : (unsigned)((c | 0x20) - 'a' + 10);
        v[h] = v[h] << 4 | d;
        if (++nib == 16) h = 1;
    }
    k->hi = v[0];
    k->lo = v[1];
}

static int id_cmp(const void *a, const void *b)
{
    const id_key *x = a, *y = b;
    if (x->hi != y->hi) return x->hi < y->hi ? -1 : 1;
    if (x->lo != y->lo) return x->lo < y->lo ? -1 : 1;
    return 0;
}

int lf_store_validate(const char *stream, int64_t expected, const lf_event_in *evs, size_t n)
{
    if (!stream || !*stream) {
        lf_err_set("stream name is empty");
        return LF_EINVAL;
    }
    if (strlen(stream) > LF_STREAM_MAX || !valid_utf8_text(stream)) {
        lf_err_set("stream name is longer than %d bytes or has control/invalid bytes",
                   LF_STREAM_MAX);
        return LF_EINVAL;
    }
    if (expected == 0 || expected < LF_EXPECT_NO_STREAM) {
        lf_err_set("expected version %lld is invalid (versions start at 1; use ANY or NO_STREAM)",
                   (long long)expected);
        return LF_EINVAL;
    }
    if (n == 0 || n > LF_BATCH_MAX || !evs) {
        lf_err_set("batch must hold 1..%d events, not %zu", LF_BATCH_MAX, n);
        return LF_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        const lf_event_in *e = &evs[i];
        if (e->id && *e->id && !lf_uuid_valid(e->id)) {
            lf_err_set("event %zu: id is not a UUID", i);
            return LF_EINVAL;
        }
        if (!e->type || !*e->type || strlen(e->type) > LF_TYPE_MAX || !valid_utf8_text(e->type)) {
            lf_err_set("event %zu: type must be 1..%d printable bytes", i, LF_TYPE_MAX);
            return LF_EINVAL;
        }
        if (!e->data) {
            lf_err_set("event %zu: data is missing", i);
            return LF_EINVAL;
        }
        if (strlen(e->data) > LF_EVENT_DATA_MAX) {
            lf_err_set("event %zu: data is larger than %u bytes", i, LF_EVENT_DATA_MAX);
            return LF_EINVAL;
        }
        int rc = check_json_object(e->data, "data", i);
        if (rc) return rc;
        if (e->meta && (rc = check_json_object(e->meta, "meta", i))) return rc;
        if (e->time_ms < 0) {
            lf_err_set("event %zu: time is negative", i);
            return LF_EINVAL;
        }
    }
    /* Duplicate ids inside one batch would make idempotency ambiguous:
     * sort the given ids (as 128-bit values) and compare neighbours. */
    size_t nid = 0;
    for (size_t i = 0; i < n; i++)
        nid += evs[i].id && *evs[i].id;
    if (nid > 1) {
        id_key *k = lf_xmalloc(nid * sizeof *k);
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (evs[i].id && *evs[i].id) {
                id_parse(evs[i].id, &k[m]);
                k[m++].idx = i;
            }
        qsort(k, m, sizeof *k, id_cmp);
        int rc = 0;
        for (size_t i = 1; i < m && !rc; i++)
            if (k[i].hi == k[i - 1].hi && k[i].lo == k[i - 1].lo) {
                size_t a = k[i].idx < k[i - 1].idx ? k[i - 1].idx : k[i].idx;
                size_t b = k[i].idx < k[i - 1].idx ? k[i].idx : k[i - 1].idx;
                lf_err_set("event %zu: id repeats event %zu of the same batch", a, b);
                rc = LF_EINVAL;
            }
        free(k);
        return rc;
    }
    return 0;
}

int lf_store_append(lf_store *s, const char *stream, int64_t expected, const lf_event_in *evs,
                    size_t n, lf_append_result *res)
{
    lf_append_result local;
    int rc = lf_store_validate(stream, expected, evs, n);
    if (rc) return rc;
    return s->ops->append(s->impl, stream, expected, evs, n, res ? res : &local);
}

int lf_store_append_async(lf_store *s, const char *stream, int64_t expected, const lf_event_in *evs,
                          size_t n, lf_append_cb cb, void *ctx)
{
    if (!cb) {
        lf_err_set("append_async needs a callback");
        return LF_EINVAL;
    }
    int rc = lf_store_validate(stream, expected, evs, n);
    if (rc) return rc;
    if (s->ops->append_async)
        return s->ops->append_async(s->impl, stream, expected, evs, n, cb, ctx);
    lf_append_result res;
    rc = s->ops->append(s->impl, stream, expected, evs, n, &res);
    if (rc == LF_ECLOSED) return rc;
    cb(ctx, rc, rc ? NULL : &res, rc ? lf_err_get() : NULL);
    return 0;
}

int lf_store_read_stream(lf_store *s, const char *stream, int64_t from_version, size_t max,
                         lf_event_list *out)
{
    if (!stream || !*stream || from_version < 1) {
        lf_err_set(!stream || !*stream ? "stream name is empty" : "from_version must be >= 1");
        return LF_EINVAL;
    }
    if (max == 0) return 0;
    return s->ops->read_stream(s->impl, stream, from_version, max, out);
}

int lf_store_read_all(lf_store *s, int64_t after, size_t max, lf_event_list *out)
{
    if (after < 0) {
        lf_err_set("position must be >= 0");
        return LF_EINVAL;
    }
    if (max == 0) return 0;
    return s->ops->read_all(s->impl, after, max, out);
}

int lf_store_head(lf_store *s, int64_t *pos)
{
    return s->ops->head(s->impl, pos);
}

int lf_store_stream_version(lf_store *s, const char *stream, int64_t *version)
{
    if (!stream || !*stream) return LF_EINVAL;
    return s->ops->stream_version(s->impl, stream, version);
}

int lf_store_wait(lf_store *s, int64_t after, int timeout_ms)
{
    int64_t deadline = lf_mono_ms() + timeout_ms;
    for (;;) {
        int64_t head = 0;
        int rc = s->ops->head(s->impl, &head);
        if (rc) return rc;
        if (head > after) return 0;
        int64_t left = deadline - lf_mono_ms();
        if (left <= 0) return LF_ETIMEDOUT;
        if (s->ops->wait) {
            rc = s->ops->wait(s->impl, after, (int)left);
            if (rc == LF_ECLOSED) return rc;
            if (rc && rc != LF_ETIMEDOUT) return rc;
        } else {
            lf_sleep_ms(left < 5 ? left : 5);
        }
    }
}

/* ---- leases ---------------------------------------------------------- */
static int lease_name_ok(const char *v, int allow_empty, const char *what)
{
    size_t n = v ? strlen(v) : 0;
    int ok = v && (allow_empty || n >= 1) && n <= LF_LEASE_NAME_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = (v[i] >= 'a' && v[i] <= 'z') || (v[i] >= 'A' && v[i] <= 'Z') ||
             (v[i] >= '0' && v[i] <= '9') || v[i] == '.' || v[i] == '_' || v[i] == '-';
    if (!ok) lf_err_set("lease %s must be 1..%d bytes of [A-Za-z0-9._-]", what, LF_LEASE_NAME_MAX);
    return ok ? 0 : LF_EINVAL;
}

int lf_store_lease(lf_store *s, const char *name, const char *owner, int64_t ttl_ms, lf_lease *out)
{
    lf_lease local;
    int rc;
    if ((rc = lease_name_ok(name, 0, "name")) || (rc = lease_name_ok(owner, 0, "owner"))) return rc;
    if (ttl_ms < 1 || ttl_ms > 86400000) {
        lf_err_set("lease ttl must be 1 ms..1 day");
        return LF_EINVAL;
    }
    if (!s->ops->lease) {
        lf_err_set("the %s store has no leases", s->ops->name);
        return LF_EUNSUPPORTED;
    }
    if (!out) out = &local;
    memset(out, 0, sizeof *out);
    return s->ops->lease(s->impl, name, owner, ttl_ms, out);
}

int lf_store_lease_release(lf_store *s, const char *name, const char *owner)
{
    int rc;
    if ((rc = lease_name_ok(name, 0, "name")) || (rc = lease_name_ok(owner, 0, "owner"))) return rc;
    if (!s->ops->lease_release) {
        lf_err_set("the %s store has no leases", s->ops->name);
        return LF_EUNSUPPORTED;
    }
    return s->ops->lease_release(s->impl, name, owner);
}

int lf_store_lease_list(lf_store *s, const char *prefix, lf_lease *out, size_t max, size_t *n)
{
    int rc;
    *n = 0;
    if (!prefix) prefix = "";
    if ((rc = lease_name_ok(prefix, 1, "prefix"))) return rc;
    if (!s->ops->lease_list) {
        lf_err_set("the %s store has no leases", s->ops->name);
        return LF_EUNSUPPORTED;
    }
    if (max == 0) return 0;
    return s->ops->lease_list(s->impl, prefix, out, max, n);
}

/* ---- ids a store makes itself (store_int.h) ---------------------------- */
uint32_t lf_store_new_id_tag(void)
{
    return lf_random_u32() & ((1u << LF_STORE_TAG_BITS) - 1);
}

void lf_store_gen_id(unsigned char b[16], uint64_t ms, uint32_t tag, int64_t pos)
{
    for (int k = 0; k < 6; k++)
        b[k] = (unsigned char)(ms >> (40 - 8 * k));
    b[6] = (unsigned char)(0x80 | ((tag >> 22) & 0x0f));
    b[7] = (unsigned char)(tag >> 14);
    b[8] = (unsigned char)(0x80 | ((tag >> 8) & 0x3f));
    b[9] = (unsigned char)tag;
    for (int k = 0; k < 6; k++)
        b[10 + k] = (unsigned char)((uint64_t)pos >> (40 - 8 * k));
}

int64_t lf_store_gen_id_pos(const unsigned char b[16], uint32_t tag)
{
    if ((b[6] >> 4) != 8 || (b[8] >> 6) != 2) return 0;
    uint32_t t =
        (uint32_t)(b[6] & 0x0f) << 22 | (uint32_t)b[7] << 14 | (uint32_t)(b[8] & 0x3f) << 8 | b[9];
    if (t != tag) return 0;
    int64_t pos = 0;
    for (int k = 0; k < 6; k++)
        pos = pos << 8 | b[10 + k];
    return pos;
}

static int lease_cmp(const void *a, const void *b)
{
    return strcmp(((const lf_lease *)a)->name, ((const lf_lease *)b)->name);
}

void lf_store_lease_sort(lf_lease *l, size_t n)
{
    if (n > 1) qsort(l, n, sizeof *l, lease_cmp);
}

/* ---- connection slots (store_int.h) ----------------------------------- */
void lf_slots_init(lf_slots *p, pthread_mutex_t *mu, const int *closing, int n)
{
    memset(p, 0, sizeof *p);
    p->mu = mu;
    p->closing = closing;
    p->n = n < LF_SLOTS_MAX ? n : LF_SLOTS_MAX;
    pthread_cond_init(&p->cond, NULL);
}

void lf_slots_destroy(lf_slots *p)
{
    pthread_cond_destroy(&p->cond);
}

int lf_slots_take(lf_slots *p, int *idx)
{
    pthread_mutex_lock(p->mu);
    for (;;) {
        if (*p->closing) {
            pthread_mutex_unlock(p->mu);
            return LF_ECLOSED;
        }
        for (int i = 0; i < p->n; i++) {
            if (p->busy[i]) continue;
            p->busy[i] = 1;
            p->in_use++;
            pthread_mutex_unlock(p->mu);
            *idx = i;
            return 0;
        }
        pthread_cond_wait(&p->cond, p->mu);
    }
}

void lf_slots_give(lf_slots *p, int idx)
{
    pthread_mutex_lock(p->mu);
    p->busy[idx] = 0;
    p->in_use--;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(p->mu);
}

void lf_slots_drain_locked(lf_slots *p)
{
    pthread_cond_broadcast(&p->cond);
    while (p->in_use)
        pthread_cond_wait(&p->cond, p->mu);
}

/* ---- subscriptions --------------------------------------------------- */
struct lf_subscription {
    lf_store *store;
    pthread_t thread;
    _Atomic int64_t position;
    atomic_int stop;
    size_t batch;
    lf_store_handler handler;
    void *ctx;
};

static void *sub_main(void *arg)
{
    lf_subscription *sub = arg;
    lf_event_list l;
    lf_event_list_init(&l);
    while (!atomic_load(&sub->stop)) {
        int64_t pos = atomic_load(&sub->position);
        int rc = lf_store_read_all(sub->store, pos, sub->batch, &l);
        if (rc) {
            LF_WARN("store", "subscription read failed: %s %s", lf_strerror(rc), lf_err_get());
            lf_sleep_ms(200);
            continue;
        }
        if (l.n == 0) {
            rc = lf_store_wait(sub->store, pos, 200);
            if (rc == LF_ECLOSED) break;
            continue;
        }
        for (size_t i = 0; i < l.n && !atomic_load(&sub->stop); i++) {
            if (sub->handler(&l.ev[i], sub->ctx)) {
                atomic_store(&sub->stop, 1);
                atomic_store(&sub->position, l.ev[i].position);
                break;
            }
            atomic_store(&sub->position, l.ev[i].position);
        }
        lf_event_list_clear(&l);
    }
    lf_event_list_free(&l);
    return NULL;
}

lf_subscription *lf_store_subscribe(lf_store *s, int64_t after, size_t batch, lf_store_handler h,
                                    void *ctx)
{
    if (!s || !h || after < 0) return NULL;
    lf_subscription *sub = lf_xcalloc(1, sizeof *sub);
    sub->store = s;
    atomic_store(&sub->position, after);
    sub->batch = batch ? batch : 1000;
    sub->handler = h;
    sub->ctx = ctx;
    if (pthread_create(&sub->thread, NULL, sub_main, sub) != 0) {
        free(sub);
        return NULL;
    }
    return sub;
}

int64_t lf_subscription_position(lf_subscription *sub)
{
    return atomic_load(&sub->position);
}

void lf_subscription_stop(lf_subscription *sub)
{
    if (!sub) return;
    atomic_store(&sub->stop, 1);
    pthread_join(sub->thread, NULL);
    free(sub);
}

/* ---- event lists -----------------------------------------------------
 * Strings go into chunks: a chunk is filled front to back and never moves
 * (events point into it); when it is full the next one (kept from an
 * earlier read, or new and twice as big, up to CHUNK_MAX) takes over. A
 * string bigger than a chunk gets a chunk of its own size. */
struct lf_event_chunk {
    lf_event_chunk *next;
    size_t size, used;
    char buf[];
};

#define CHUNK_MIN (64u << 10)
#define CHUNK_MAX (4u << 20)

void lf_event_list_init(lf_event_list *l)
{
    memset(l, 0, sizeof *l);
}

void lf_event_list_free(lf_event_list *l)
{
    for (lf_event_chunk *c = l->chunks, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(l->ev);
    lf_event_list_init(l);
}

void lf_event_list_clear(lf_event_list *l)
{
    for (lf_event_chunk *c = l->chunks; c; c = c->next)
        c->used = 0;
    l->cur = l->chunks;
    l->n = 0;
}

/* Room for len bytes in l's chunks. */
static char *chunk_alloc(lf_event_list *l, size_t len)
{
    lf_event_chunk *c = l->cur;
    while (c && c->size - c->used < len) {
        if (!c->next || c->next->size < len) {
            /* A new chunk after c (a too-small kept one moves behind it). */
            size_t size = c->size * 2 > CHUNK_MAX ? CHUNK_MAX : c->size * 2;
            if (size < len) size = len;
            lf_event_chunk *n = lf_xmalloc(sizeof *n + size);
            n->size = size;
            n->used = 0;
            n->next = c->next;
            c->next = n;
        }
        c = c->next;
    }
    if (!c) {
        size_t size = len > CHUNK_MIN ? len : CHUNK_MIN;
        c = lf_xmalloc(sizeof *c + size);
        c->size = size;
        c->used = 0;
        c->next = NULL;
        l->chunks = c;
    }
    l->cur = c;
    char *p = c->buf + c->used;
    c->used += len;
    return p;
}

size_t lf_event_list_after(const lf_event_list *l, int64_t pos)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->ev[mid].position <= pos)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

lf_event *lf_event_list_push_copy(lf_event_list *l, const char *stream, size_t slen,
                                  const char *type, size_t tlen, const char *data, size_t dlen,
                                  const char *meta, size_t mlen)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->ev = lf_xrealloc(l->ev, l->cap * sizeof *l->ev);
    }
    lf_event *e = &l->ev[l->n++];
    memset(e, 0, sizeof *e);
    char *p = chunk_alloc(l, slen + tlen + dlen + mlen + 4);
    e->stream = p;
    memcpy(p, stream, slen);
    p += slen;
    *p++ = '\0';
    e->type = p;
    memcpy(p, type, tlen);
    p += tlen;
    *p++ = '\0';
    e->data = p;
    memcpy(p, data, dlen);
    p += dlen;
    *p++ = '\0';
    e->meta = p;
    memcpy(p, meta, mlen);
    p[mlen] = '\0';
    return e;
}
