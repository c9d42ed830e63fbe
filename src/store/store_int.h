/*
 * store_int.h — what a store backend implements. Only src/store/ includes
 * this. store.c validates input, picks the backend from the URL and builds
 * subscriptions on top of read_all + wait, so a backend implements just the
 * primitives below. Every backend passes tests/conformance.
 */
#ifndef LF_STORE_INT_H
#define LF_STORE_INT_H

#include "store.h"

#include <pthread.h>

typedef struct lf_store_ops {
    const char *name;
    /* url is the full URL; the backend parses what follows its scheme. */
    int (*open)(const char *url, void **impl, char *err, size_t errlen);
    void (*close)(void *impl);
    /* Input already validated by store.c (lf_store_validate). */
    int (*append)(void *impl, const char *stream, int64_t expected, const lf_event_in *evs,
                  size_t n, lf_append_result *res);
    /* Optional (NULL: store.c appends at once and calls cb). Returns 0 once
     * queued; cb runs exactly once later. Input already validated. */
    int (*append_async)(void *impl, const char *stream, int64_t expected, const lf_event_in *evs,
                        size_t n, lf_append_cb cb, void *ctx);
    int (*read_stream)(void *impl, const char *stream, int64_t from_version, size_t max,
                       lf_event_list *out);
    int (*read_all)(void *impl, int64_t after, size_t max, lf_event_list *out);
    int (*head)(void *impl, int64_t *pos);
    int (*stream_version)(void *impl, const char *stream, int64_t *version);
    /* Block until head > after, timeout, or close. May wake spuriously
     * (store.c re-checks). NULL: store.c polls head every few ms. */
    int (*wait)(void *impl, int64_t after, int timeout_ms);
    /* Leases (optional; NULL: LF_EUNSUPPORTED). Names, owners and the ttl
     * are checked by store.c; see lf_store_lease*. lease fills *out (never
     * NULL here); lease_list returns live leases sorted by name. */
    int (*lease)(void *impl, const char *name, const char *owner, int64_t ttl_ms, lf_lease *out);
    int (*lease_release)(void *impl, const char *name, const char *owner);
    int (*lease_list)(void *impl, const char *prefix, lf_lease *out, size_t max, size_t *n);
} lf_store_ops;

/* Ids a store makes itself (sqlite, redis): a version 8 (RFC 9562) UUID
 * naming where its event is — time ms[6] | 0x8 tag(4) | tag(8) | 0b10
 * tag(6) | tag(8) | position[6] — so "is this id stored?" is answered by
 * reading one position instead of an index. tag: 26 random bits kept with
 * the store (lf_store_new_id_tag), so two stores' ids never meet.
 * lf_store_gen_id_pos: the position such an id names, or 0 when the id is
 * not of this form and tag. */
#define LF_STORE_TAG_BITS 26
uint32_t lf_store_new_id_tag(void);
void lf_store_gen_id(unsigned char b[16], uint64_t ms, uint32_t tag, int64_t pos);
int64_t lf_store_gen_id_pos(const unsigned char b[16], uint32_t tag);

/* Sorts leases by name (for backends that cannot ask the engine to). */
void lf_store_lease_sort(lf_lease *l, size_t n);

/* A pool of connection slots for the server backends: slot i belongs to
 * one thread between lf_slots_take and lf_slots_give; what a slot holds
 * (a PGconn, a redisContext) is the backend's. mu is the backend's own
 * mutex (it may guard more of its state); *closing, read under mu, makes
 * takes fail with LF_ECLOSED. */
#define LF_SLOTS_MAX 32
typedef struct {
    pthread_mutex_t *mu;
    const int *closing;
    pthread_cond_t cond;
    unsigned char busy[LF_SLOTS_MAX];
    int n, in_use;
} lf_slots;
void lf_slots_init(lf_slots *p, pthread_mutex_t *mu, const int *closing, int n);
void lf_slots_destroy(lf_slots *p);
/* Blocks until a slot is free; 0 and its index, or LF_ECLOSED. */
int lf_slots_take(lf_slots *p, int *idx);
void lf_slots_give(lf_slots *p, int idx);
/* With mu held and *closing set: wakes takers and waits until every slot
 * is given back. */
void lf_slots_drain_locked(lf_slots *p);

/* The newest events of the log in memory, shared by the readers of one
 * store (store_tail.c): read_all through it queries the server once for
 * all readers at the top of the log instead of once each. fetch is the
 * backend's own read_all. At most max_events events and about max_bytes
 * of their text are kept. */
typedef struct lf_tail lf_tail;
lf_tail *lf_tail_new(size_t max_events, size_t max_bytes);
void lf_tail_free(lf_tail *t);
int lf_tail_read_all(lf_tail *t, int64_t after, size_t max, lf_event_list *out,
                     int (*fetch)(void *impl, int64_t after, size_t max, lf_event_list *out),
                     void *impl);

extern const lf_store_ops lf_store_sqlite_ops;
extern const lf_store_ops lf_store_postgres_ops;
extern const lf_store_ops lf_store_nats_ops;
extern const lf_store_ops lf_store_redis_ops;

/* The sqlite backend's leases (store_sqlite_lease.c): a connection of their
 * own on the same file. */
typedef struct lf_sqlite_leases lf_sqlite_leases;
lf_sqlite_leases *lf_sqlite_leases_new(const char *path);
void lf_sqlite_leases_free(lf_sqlite_leases *l);
int lf_sqlite_lease(lf_sqlite_leases *l, const char *name, const char *owner, int64_t ttl_ms,
                    lf_lease *out);
int lf_sqlite_lease_release(lf_sqlite_leases *l, const char *name, const char *owner);
int lf_sqlite_lease_list(lf_sqlite_leases *l, const char *prefix, lf_lease *out, size_t max,
                         size_t *n);

#endif
