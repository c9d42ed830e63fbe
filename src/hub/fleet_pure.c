/*
 * fleet_pure.c — the fleet's pure helpers: retry schedule, shard math,
 * ingestion batch validation and the hub token. No I/O, no clock; unit
 * tested in tests/unit/test_fleet_pure.c.
 */
#include "hub/fleet.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t lf_fleet_retry_delay(const int64_t *sched, int n, int attempt)
{
    if (n < 1) return 60000;
    if (attempt < 1) attempt = 1;
    int i = attempt - 1 < n ? attempt - 1 : n - 1;
    return sched[i];
}

int lf_fleet_parse_retry_schedule(const char *s, int64_t *out_ms, int max, int *n)
{
    int rc = LF_EINVAL, k = 0;
    char tmp[256];
    if (!s || !*s || strlen(s) >= sizeof tmp) goto out;
    memcpy(tmp, s, strlen(s) + 1);
    char *save = NULL;
    for (char *tok = strtok_r(tmp, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int64_t v;
        if (k >= max || lf_parse_i64(tok, &v) || v < 1 || v > 86400) goto out;
        out_ms[k++] = v * 1000;
    }
    if (k == 0) goto out;
    /* "60,,300" has an empty token strtok_r skips: reject it */
    size_t commas = 0;
    for (const char *p = s; *p; p++)
        commas += *p == ',';
    if (commas != (size_t)k - 1) goto out;
    *n = k;
    rc = 0;
out:
    return rc;
}

int lf_fleet_shard_index(const char *shard)
{
    if (!shard) return -1;
    size_t len = strlen(shard);
    if (len < 1 || len > 4) return -1;
    int v = 0;
    for (size_t i = 0; i < len; i++) {
        char c = shard[i];
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else
            return -1;
        v = v * 16 + d;
    }
    return v;
}

int lf_fleet_shard_group(const char *shard, int ngroups)
{
    int idx = lf_fleet_shard_index(shard);
    if (idx < 0 || ngroups <= 1) return 0;
    long nshards = 1L << (4 * strlen(shard));
    return (int)((long)idx * ngroups / nshards);
}

bool lf_fleet_shard_owned(const char *shard, const char *owned)
{
    if (!owned || !*owned) return true;
    const char *p = owned;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        /* owning "3" means owning "3a" too once the digits grow */
        if (len > 0 && len <= strlen(shard) && strncmp(p, shard, len) == 0) return true;
        if (!e) break;
        p = e + 1;
    }
    return false;
}

void lf_fleet_hub_token_raw(const unsigned char secret[32], const char *name, char out[65])
{
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, secret, 32);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)"hubtoken:", 9);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)name, strlen(name));
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_bin2hex(out, 65, mac, sizeof mac);
}

void lf_fleet_hub_token(lf_hub *h, const char *name, char out[65])
{
    lf_fleet_hub_token_raw(h->secret, name, out);
}

static bool type_valid(const char *t)
{
    size_t n = 0;
    for (; t[n]; n++) {
        char c = t[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) return false;
        if (n >= LF_FLEET_TYPE_MAX) return false;
    }
    return n > 0;
}

int lf_fleet_batch_parse(json_t *events, size_t max, lf_fleet_uevent *out, size_t *n, char *field,
                         size_t fieldlen, char *msg, size_t msglen)
{
    int rc = LF_EINVAL;
    *n = 0;
    if (!json_is_array(events)) {
        snprintf(field, fieldlen, "events");
        snprintf(msg, msglen, "must be an array of events");
        goto out;
    }
    size_t cnt = json_array_size(events);
    if (cnt < 1 || cnt > max) {
        snprintf(field, fieldlen, "events");
        snprintf(msg, msglen, "must hold 1 to %zu events (got %zu)", max, cnt);
        goto out;
    }
    for (size_t i = 0; i < cnt; i++) {
        json_t *e = json_array_get(events, i);
        lf_fleet_uevent *u = &out[i];
        const char *f = NULL;
        if (!json_is_object(e)) {
            snprintf(field, fieldlen, "events[%zu]", i);
            snprintf(msg, msglen, "must be an object");
            goto out;
        }
        json_t *seq = json_object_get(e, "seq"), *id = json_object_get(e, "id"),
               *type = json_object_get(e, "type"), *time = json_object_get(e, "time"),
               *data = json_object_get(e, "data");
        if (!json_is_integer(seq) || json_integer_value(seq) < 1) {
            f = "seq";
            snprintf(msg, msglen, "must be a positive integer");
        } else if (i > 0 && json_integer_value(seq) - (int64_t)i != out[0].seq) {
            /* seq >= 1 and i < max: the subtraction cannot overflow, the
             * sum out[0].seq + i could (a seq near INT64_MAX) */
            f = "seq";
            snprintf(msg, msglen, "must be %llu (seqs in a batch are consecutive)",
                     (unsigned long long)out[0].seq + i);
        } else if (!json_is_string(id) || !lf_uuid_valid(json_string_value(id))) {
            f = "id";
            snprintf(msg, msglen, "must be a UUID");
        } else if (!json_is_string(type) || !type_valid(json_string_value(type))) {
            f = "type";
            snprintf(msg, msglen, "must be 1 to %d letters [A-Za-z]", LF_FLEET_TYPE_MAX);
        } else if (!json_is_string(time) ||
                   lf_time_parse(json_string_value(time), &u->time_ms) != 0) {
            f = "time";
            snprintf(msg, msglen, "must be an RFC 3339 time");
        } else if (!json_is_object(data)) {
            f = "data";
            snprintf(msg, msglen, "must be a JSON object");
        }
        if (f) {
            snprintf(field, fieldlen, "events[%zu].%s", i, f);
            goto out;
        }
        u->seq = json_integer_value(seq);
        u->id = json_string_value(id);
        u->type = json_string_value(type);
        u->data = data;
    }
    *n = cnt;
    rc = 0;
out:
    return rc;
}
