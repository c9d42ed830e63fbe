/*
 * registry.c — units and users of the hub, in memory (hub.h).
 *
 * Rebuilt from the log at start (UnitRegistered in unit-*, UserCreated in
 * user-*), then kept current by a log subscription (so registrations made
 * by another hub node appear too) and by lf_registry_apply from the code
 * that appended the event (so the next request sees it at once; applying
 * twice is harmless).
 *
 * Units are kept in an array sorted by name (binary search, ordered
 * iteration); token hashes of units and users in sorted index arrays.
 * One rwlock guards it all.
 */
#include "hub/registry.h"
#include "projection/projection.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct tok {
    char hash[65];
    char id[80];
};

struct lf_registry {
    pthread_rwlock_t lock;
    lf_unit_info **units; /* sorted by name */
    size_t nunits, capunits;
    struct tok *unit_toks, *user_toks; /* sorted by hash */
    size_t nunit_toks, nuser_toks, capunit_toks, capuser_toks;
    struct lf_projection_follower *sub;
};

static size_t unit_lower(struct lf_registry *r, const char *name, int *found)
{
    size_t lo = 0, hi = r->nunits;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(r->units[mid]->name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < r->nunits && strcmp(r->units[lo]->name, name) == 0;
    return lo;
}

static size_t tok_lower(const struct tok *t, size_t n, const char *hash, int *found)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(t[mid].hash, hash) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < n && strcmp(t[lo].hash, hash) == 0;
    return lo;
}

static void tok_put(struct tok **arr, size_t *n, size_t *cap, const char *hash, const char *id)
{
    int found;
    size_t i = tok_lower(*arr, *n, hash, &found);
    if (found) {
        snprintf((*arr)[i].id, sizeof(*arr)[i].id, "%s", id);
        return;
    }
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        *arr = lf_xrealloc(*arr, *cap * sizeof **arr);
    }
    memmove(*arr + i + 1, *arr + i, (*n - i) * sizeof **arr);
    snprintf((*arr)[i].hash, sizeof(*arr)[i].hash, "%s", hash);
    snprintf((*arr)[i].id, sizeof(*arr)[i].id, "%s", id);
    (*n)++;
}

static int copy_str(json_t *o, const char *key, char *dst, size_t cap, int required)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        dst[0] = '\0';
        return required ? LF_EINVAL : 0;
    }
    if (!json_is_string(v) || json_string_length(v) >= cap) return LF_EINVAL;
    memcpy(dst, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

int lf_registry_parse_unit(const char *data_json, lf_unit_info *u)
{
    int rc = LF_EINVAL;
    json_t *o = json_loads(data_json, 0, NULL);
    memset(u, 0, sizeof *u);
    if (!json_is_object(o)) goto out;
    if (copy_str(o, "name", u->name, sizeof u->name, 1) || !lf_name_valid(u->name)) goto out;
    if (copy_str(o, "display_name", u->display_name, sizeof u->display_name, 0) ||
        copy_str(o, "url", u->url, sizeof u->url, 0) ||
        copy_str(o, "uplink", u->uplink, sizeof u->uplink, 0) ||
        copy_str(o, "shard", u->shard, sizeof u->shard, 0) ||
        copy_str(o, "token_hash", u->token_hash, sizeof u->token_hash, 0))
        goto out;
    const char *p = json_string_value(json_object_get(o, "presence"));
    u->presence = p && strcmp(p, "heartbeat") == 0 ? LF_PRESENCE_HEARTBEAT : LF_PRESENCE_POLL;
    if (!u->uplink[0]) snprintf(u->uplink, sizeof u->uplink, "push");
    u->heartbeat_interval_ms = json_integer_value(json_object_get(o, "heartbeat_interval_ms"));
    u->registered_at_ms = json_integer_value(json_object_get(o, "registered_at_ms"));
    json_t *ls = json_object_get(o, "lockers"), *v;
    size_t i;
    json_array_foreach(ls, i, v)
    {
        if (u->nlockers >= (int)(sizeof u->lockers / sizeof u->lockers[0])) break;
        const char *id = json_string_value(json_object_get(v, "id"));
        const char *sz = json_string_value(json_object_get(v, "size"));
        if (!id || !sz || strlen(id) >= sizeof u->lockers[0].id) continue;
        snprintf(u->lockers[u->nlockers].id, sizeof u->lockers[0].id, "%s", id);
        u->lockers[u->nlockers].size = sz[0];
        u->nlockers++;
    }
    json_t *al = json_object_get(o, "allotment");
    json_array_foreach(al, i, v)
    {
        if (u->nallotment >= (int)(sizeof u->allotment / sizeof u->allotment[0])) break;
        const char *id = json_string_value(v);
        if (!id || strlen(id) >= sizeof u->allotment[0]) continue;
        snprintf(u->allotment[u->nallotment++], sizeof u->allotment[0], "%s", id);
    }
    rc = 0;
out:
    json_decref(o);
    return rc;
}

void lf_registry_apply(lf_hub *h, const char *type, const char *data_json)
{
    struct lf_registry *r = h->reg;
    if (!r) return;
    if (strcmp(type, "UnitRegistered") == 0) {
        lf_unit_info *u = lf_xmalloc(sizeof *u);
        if (lf_registry_parse_unit(data_json, u)) {
            LF_WARN("registry", "ignoring a malformed UnitRegistered event");
            free(u);
            return;
        }
        /* The shard shown is the one of this hub's --shard-digits. */
        lf_shard_of(u->name, h->cfg.shard_digits, u->shard);
        pthread_rwlock_wrlock(&r->lock);
        int found;
        size_t i = unit_lower(r, u->name, &found);
        if (found) {
            free(r->units[i]);
            r->units[i] = u;
        } else {
            if (r->nunits == r->capunits) {
                r->capunits = r->capunits ? r->capunits * 2 : 64;
                r->units = lf_xrealloc(r->units, r->capunits * sizeof *r->units);
            }
            memmove(r->units + i + 1, r->units + i, (r->nunits - i) * sizeof *r->units);
            r->units[i] = u;
            r->nunits++;
        }
        if (u->token_hash[0])
            tok_put(&r->unit_toks, &r->nunit_toks, &r->capunit_toks, u->token_hash, u->name);
        pthread_rwlock_unlock(&r->lock);
    } else if (strcmp(type, "UserCreated") == 0) {
        json_t *o = json_loads(data_json, 0, NULL);
        const char *id = json_string_value(json_object_get(o, "user_id"));
        const char *th = json_string_value(json_object_get(o, "token_hash"));
        if (id && th && strlen(th) == 64 && strlen(id) < 80) {
            pthread_rwlock_wrlock(&r->lock);
            tok_put(&r->user_toks, &r->nuser_toks, &r->capuser_toks, th, id);
            pthread_rwlock_unlock(&r->lock);
        }
        json_decref(o);
    }
}

static int wants(const lf_event *ev)
{
    return strncmp(ev->stream, "unit-", 5) == 0 || strncmp(ev->stream, "user-", 5) == 0;
}

static int on_event(const lf_event *ev, void *ctx)
{
    if (wants(ev)) lf_registry_apply(ctx, ev->type, ev->data);
    return 0;
}

int lf_registry_start(lf_hub *h)
{
    int rc = 0;
    struct lf_registry *r = lf_xcalloc(1, sizeof *r);
    pthread_rwlock_init(&r->lock, NULL);
    h->reg = r;
    /* Catch up synchronously so the hub answers auth correctly from its
     * first request, then follow the log. */
    int64_t pos = 0;
    lf_event_list l;
    lf_event_list_init(&l);
    for (;;) {
        rc = lf_store_read_all(h->store, pos, 10000, &l);
        if (rc) goto out;
        if (l.n == 0) break;
        for (size_t i = 0; i < l.n; i++) {
            if (wants(&l.ev[i])) lf_registry_apply(h, l.ev[i].type, l.ev[i].data);
            pos = l.ev[i].position;
        }
        lf_event_list_free(&l);
    }
    r->sub = lf_projections_follow(h->proj, pos, on_event, h);
    if (!r->sub) {
        lf_err_set("registry: cannot subscribe to the log");
        rc = LF_EIO;
    }
out:
    lf_event_list_free(&l);
    return rc;
}

void lf_registry_stop(lf_hub *h)
{
    struct lf_registry *r = h->reg;
    if (!r) return;
    lf_projection_follower_stop(r->sub);
    for (size_t i = 0; i < r->nunits; i++)
        free(r->units[i]);
    free(r->units);
    free(r->unit_toks);
    free(r->user_toks);
    pthread_rwlock_destroy(&r->lock);
    free(r);
    h->reg = NULL;
}

int lf_registry_unit(lf_hub *h, const char *name, lf_unit_info *out)
{
    struct lf_registry *r = h->reg;
    int rc = LF_ENOTFOUND, found;
    if (!r) return rc;
    pthread_rwlock_rdlock(&r->lock);
    size_t i = unit_lower(r, name, &found);
    if (found) {
        *out = *r->units[i];
        rc = 0;
    }
    pthread_rwlock_unlock(&r->lock);
    return rc;
}

void lf_registry_each_unit(lf_hub *h, const char *shard_prefix,
                           void (*fn)(const lf_unit_info *u, void *ctx), void *ctx)
{
    struct lf_registry *r = h->reg;
    if (!r) return;
    size_t pl = shard_prefix ? strlen(shard_prefix) : 0;
    pthread_rwlock_rdlock(&r->lock);
    for (size_t i = 0; i < r->nunits; i++) {
        char full[17];
        if (pl) {
            lf_hash_hex(r->units[i]->name, full);
            if (strncmp(full, shard_prefix, pl) != 0) continue;
        }
        fn(r->units[i], ctx);
    }
    pthread_rwlock_unlock(&r->lock);
}

size_t lf_registry_unit_count(lf_hub *h)
{
    struct lf_registry *r = h->reg;
    if (!r) return 0;
    pthread_rwlock_rdlock(&r->lock);
    size_t n = r->nunits;
    pthread_rwlock_unlock(&r->lock);
    return n;
}

int lf_registry_unit_by_token(lf_hub *h, const char *token_hash, char name_out[65])
{
    struct lf_registry *r = h->reg;
    int rc = LF_ENOTFOUND, found;
    if (!r) return rc;
    pthread_rwlock_rdlock(&r->lock);
    size_t i = tok_lower(r->unit_toks, r->nunit_toks, token_hash, &found);
    if (found) {
        snprintf(name_out, 65, "%.64s", r->unit_toks[i].id);
        rc = 0;
    }
    pthread_rwlock_unlock(&r->lock);
    return rc;
}

int lf_registry_user_by_token(lf_hub *h, const char *token_hash, char user_id_out[80])
{
    struct lf_registry *r = h->reg;
    int rc = LF_ENOTFOUND, found;
    if (!r) return rc;
    pthread_rwlock_rdlock(&r->lock);
    size_t i = tok_lower(r->user_toks, r->nuser_toks, token_hash, &found);
    if (found) {
        snprintf(user_id_out, 80, "%s", r->user_toks[i].id);
        rc = 0;
    }
    pthread_rwlock_unlock(&r->lock);
    return rc;
}
