/*
 * proj_all.c — the list of the hub's projections, and helpers the
 * projection files share (proj_util.h).
 */
#include "projection/proj_util.h"

int lf_proj_step(sqlite3 *db, sqlite3_stmt *st)
{
    if (!st) return LF_EIO;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW) return 0;
    lf_err_set("%s", sqlite3_errmsg(db));
    return LF_EIO;
}

/* Skips a JSON string at *p (the opening quote); NULL if unterminated. */
static const char *skip_string(const char *p)
{
    for (p++; *p; p++) {
        if (*p == '\\') {
            if (!*++p) return NULL;
        } else if (*p == '"') {
            return p + 1;
        }
    }
    return NULL;
}

/* Skips one JSON value at p (valid JSON assumed; NULL when lost). */
static const char *skip_value(const char *p)
{
    if (*p == '"') return skip_string(p);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (*p) {
            if (*p == '"') {
                if (!(p = skip_string(p))) return NULL;
                continue;
            }
            if (*p == '{' || *p == '[') depth++;
            if ((*p == '}' || *p == ']') && --depth == 0) return p + 1;
            p++;
        }
        return NULL;
    }
    /* number, true, false, null */
    while (*p && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' && *p != '\n' &&
           *p != '\r')
        p++;
    return p;
}

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

/* The top-level members of a JSON object, one at a time. obj_open: the
 * first member (or the closing '}'), NULL when json is not an object. */
static const char *obj_open(const char *json)
{
    const char *p = skip_ws(json);
    return *p == '{' ? skip_ws(p + 1) : NULL;
}

/* At p (a member or the closing '}'): 1 with the key's text in *k, *klen
 * and *val at the value; 0 at the end; -1 when it cannot decide (bad JSON,
 * or an escaped key: let jansson compare). */
static int obj_member(const char *p, const char **k, size_t *klen, const char **val)
{
    if (*p == '}') return 0;
    if (*p != '"') return -1;
    const char *end = skip_string(p);
    if (!end) return -1;
    *k = p + 1;
    *klen = (size_t)(end - 1 - *k);
    if (memchr(*k, '\\', *klen)) return -1;
    p = skip_ws(end);
    if (*p != ':') return -1;
    *val = skip_ws(p + 1);
    return 1;
}

/* After a member's value (vend: just past it): the next member or the
 * closing '}'; NULL when what follows is not JSON (a trailing comma too). */
static const char *obj_next(const char *vend)
{
    const char *p = skip_ws(vend);
    if (*p == ',') {
        p = skip_ws(p + 1);
        return *p == '"' ? p : NULL;
    }
    return *p == '}' ? p : NULL;
}

int lf_proj_json_i64(const char *json, const char *key, int64_t *out)
{
    size_t klen = strlen(key), len;
    int found = 0, r;
    int64_t val = 0;
    const char *p = obj_open(json), *k, *v;
    if (!p) return -1;
    while ((r = obj_member(p, &k, &len, &v)) == 1) {
        if (len == klen && memcmp(k, key, len) == 0) {
            const char *q = v;
            int neg = *q == '-';
            if (neg) q++;
            int digits = 0;
            uint64_t u = 0;
            while (*q >= '0' && *q <= '9') {
                u = u * 10 + (uint64_t)(*q - '0');
                q++;
                if (++digits > 18) return -1;
            }
            if (digits > 0 && *q != '.' && *q != 'e' && *q != 'E') {
                found = 1;
                val = neg ? -(int64_t)u : (int64_t)u;
            } else {
                found = 0; /* a real, a string, ...: not an integer */
            }
        }
        const char *e = skip_value(v);
        if (!e || !(p = obj_next(e))) return -1;
    }
    if (r < 0) return -1;
    if (found) *out = val;
    return found;
}

int lf_proj_json_strs(const char *json, const char *const *keys, size_t n, const char **vals,
                      char *buf, size_t cap)
{
    size_t used = 0, len;
    for (size_t i = 0; i < n; i++)
        vals[i] = NULL;
    int r;
    const char *p = obj_open(json), *k, *v;
    if (!p) return -1;
    while ((r = obj_member(p, &k, &len, &v)) == 1) {
        size_t want = n;
        for (size_t i = 0; i < n && want == n; i++)
            if (strlen(keys[i]) == len && memcmp(keys[i], k, len) == 0) want = i;
        const char *e = skip_value(v);
        if (!e) return -1;
        if (want < n && *v == '"') {
            size_t vlen = (size_t)(e - v) - 2; /* between the quotes */
            if (memchr(v + 1, '\\', vlen) || used + vlen + 1 > cap) return -1;
            memcpy(buf + used, v + 1, vlen);
            buf[used + vlen] = '\0';
            vals[want] = buf + used;
            used += vlen + 1;
        }
        if (!(p = obj_next(e))) return -1;
    }
    return r < 0 ? -1 : 0;
}

void lf_proj_day(int64_t ms, char day[11])
{
    static __thread int64_t cached = INT64_MIN;
    static __thread char cached_s[11];
    int64_t d = ms >= 0 ? ms / 86400000 : -((-ms + 86399999) / 86400000);
    if (d != cached) {
        char buf[LF_TIME_LEN];
        lf_time_format(ms, buf);
        memcpy(cached_s, buf, 10);
        cached_s[10] = '\0';
        cached = d;
    }
    memcpy(day, cached_s, 11);
}

const lf_projection_def *const *lf_projection_all(size_t *n)
{
    static const lf_projection_def *const all[] = {
        &lf_proj_units,   &lf_proj_availability, &lf_proj_reservations,
        &lf_proj_revenue, &lf_proj_alerts,
    };
    *n = sizeof all / sizeof all[0];
    return all;
}
