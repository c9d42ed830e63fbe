/*
 * store.h — the event store: the single source of truth of lockerfleet.
 *
 * An append-only, immutable log of events. Each event belongs to one
 * stream and has a 1-based version within it, and a global position that
 * strictly increases in commit order. Nothing is ever updated or deleted.
 *
 * The backend is chosen from a URL in one place (lf_store_open):
 *   sqlite:PATH            embedded SQLite (default), see store_sqlite.c
 *   postgres://...         PostgreSQL (libpq)
 *   nats://HOST:PORT[/S]   NATS JetStream (libnats)
 *   redis://HOST:PORT      Redis streams (hiredis)
 *
 * Threads: an lf_store handle is safe to use from several threads at once
 * (backends serialise internally where they must).
 *
 * Guarantees every backend gives (checked by tests/conformance):
 *  - append is atomic for a batch: all events or none;
 *  - an expected-version mismatch fails with LF_ECONFLICT and writes nothing;
 *  - re-appending an event whose id is stored is a no-op that reports the
 *    stored positions (see lf_append_result.duplicate);
 *  - a reader of read_all/subscribe never sees a position and later a
 *    smaller one: positions are visible in order, without gaps that could
 *    later be filled;
 *  - an append that returned 0 is durable (survives kill -9; each backend
 *    documents its fsync policy in docs/ARCHITECTURE.md).
 */
#ifndef LF_STORE_H
#define LF_STORE_H

#include "../core/lf.h"

#include <stddef.h>
#include <stdint.h>

typedef struct lf_store lf_store;

/* Expected version for lf_store_append. Exact versions are >= 1. */
#define LF_EXPECT_ANY (-1)       /* no check */
#define LF_EXPECT_NO_STREAM (-2) /* the stream must not exist yet */

/* Limits every backend enforces (LF_EINVAL past them). */
#define LF_STREAM_MAX 200            /* bytes in a stream name */
#define LF_TYPE_MAX 100              /* bytes in an event type */
#define LF_EVENT_DATA_MAX (4u << 20) /* bytes of data JSON per event */
#define LF_BATCH_MAX 100000          /* events per append */

/* An event to append. Strings are borrowed for the duration of the call.
 * id: a UUID, or NULL / "" to let the store generate one (v7).
 * data: a JSON object text (required). meta: JSON object text or NULL.
 * time_ms: event time (ms since epoch); 0 means "now". */
typedef struct {
    const char *id;
    const char *type;
    const char *data;
    const char *meta;
    int64_t time_ms;
} lf_event_in;

/* A stored event. All strings are owned by the list holding the event. */
typedef struct {
    char id[LF_UUID_LEN];
    char *stream;
    int64_t version;
    int64_t position;
    char *type;
    int64_t time_ms;
    char *data; /* JSON object text */
    char *meta; /* JSON object text, "{}" when none was given */
} lf_event;

/* A list of events returned by a read. Free with lf_event_list_free (or
 * empty it for the next read with lf_event_list_clear). The events'
 * strings live in chunks owned by the list (one allocation per many events,
 * not four per event): they stay valid until the list is freed or cleared,
 * and must not be freed or reassigned one by one. */
typedef struct lf_event_chunk lf_event_chunk;
typedef struct {
    lf_event *ev;
    size_t n, cap;
    lf_event_chunk *chunks; /* string storage; private to store.c */
    lf_event_chunk *cur;    /* the chunk being filled */
} lf_event_list;

typedef struct {
    int64_t first_position; /* position of the first event of the batch */
    int64_t last_position;  /* position of the last event */
    int64_t last_version;   /* stream version after the append */
    int duplicate;          /* 1 if the batch was already stored (no-op) */
} lf_append_result;

/* Opens (creating if needed) the store at url. On failure returns an LF_E*
 * code and writes a message to err (if given). A file that is not a
 * lockerfleet store, or is damaged, gives LF_ECORRUPT. */
int lf_store_open(const char *url, lf_store **out, char *err, size_t errlen);

/* Closes the store; waits for in-flight calls, wakes waiters with
 * LF_ECLOSED. NULL is a no-op. */
void lf_store_close(lf_store *s);

/* The backend name: "sqlite", "postgres", "nats", "redis". */
const char *lf_store_backend(const lf_store *s);

/* Appends n events (1..LF_BATCH_MAX) to stream, atomically.
 * expected: LF_EXPECT_ANY, LF_EXPECT_NO_STREAM or an exact version >= 1
 * (the version the stream must be at before this append; 0 is invalid).
 * Errors: LF_EINVAL (bad stream name, type, data not a JSON object, bad
 * id, expected == 0 or < -2, n out of range) with lf_err_get() naming the
 * problem; LF_ECONFLICT (version mismatch, nothing written); LF_EIO.
 * Idempotency: if every event id in the batch is already stored (in this
 * stream, in this order), returns 0 with res->duplicate = 1 and the stored
 * positions. If only some are, LF_EEXIST. res may be NULL. */
int lf_store_append(lf_store *s, const char *stream, int64_t expected, const lf_event_in *evs,
                    size_t n, lf_append_result *res);

/* Called once when an lf_store_append_async batch is stored durably
 * (rc 0, res filled as lf_store_append's) or failed (rc an LF_E* code, res
 * NULL, err the message). Runs on a thread of the store (SQLite: its
 * acknowledger, one group after another in commit order, while the next
 * group commits), or, on backends that append at once, on the caller's
 * thread before lf_store_append_async returns: keep it short, and never
 * call lf_store_close. It may take locks that appenders hold while they
 * append, and it may append (asynchronously). */
typedef void (*lf_append_cb)(void *ctx, int rc, const lf_append_result *res, const char *err);

/* lf_store_append without waiting: validates (an invalid batch returns its
 * LF_EINVAL at once, and cb is never called), queues the batch and
 * returns 0; cb is called when the batch is durable or has failed. One
 * appender can so keep many batches in flight, and a group commit merges
 * them into one fsync, each batch still all or nothing and acknowledged
 * only once durable. stream and evs (with their strings) must stay valid
 * until cb runs. The callbacks of one caller's batches run in the order of
 * its calls. lf_store_close waits for every queued batch. Returns
 * LF_EINVAL or LF_ECLOSED at once (cb is then never called). Backends without
 * a queue append at once and call cb before returning. */
int lf_store_append_async(lf_store *s, const char *stream, int64_t expected, const lf_event_in *evs,
                          size_t n, lf_append_cb cb, void *ctx);

/* Reads up to max events of stream with version >= from_version (>= 1),
 * in version order, appended to out (which the caller has zeroed or
 * reused). A missing stream reads as empty. */
int lf_store_read_stream(lf_store *s, const char *stream, int64_t from_version, size_t max,
                         lf_event_list *out);

/* Reads up to max events with position > after (after >= 0), in position
 * order, appended to out. */
int lf_store_read_all(lf_store *s, int64_t after, size_t max, lf_event_list *out);

/* The current last position (0 for an empty store). */
int lf_store_head(lf_store *s, int64_t *pos);

/* The current version of stream (0 if it does not exist). */
int lf_store_stream_version(lf_store *s, const char *stream, int64_t *version);

/* Blocks until the head is > after, or timeout_ms passes (LF_ETIMEDOUT),
 * or the store closes (LF_ECLOSED). Returns 0 when there is more to read. */
int lf_store_wait(lf_store *s, int64_t after, int timeout_ms);

/* ---- subscriptions ---------------------------------------------------
 * A subscription delivers every event with position > after, in order,
 * exactly once: first the catch-up from the log, then live events as they
 * are committed, on its own thread, with no gap and no duplicate at the
 * switch. The handler returns 0 to go on, non-zero to stop the
 * subscription (it then ends on its own). */
typedef int (*lf_store_handler)(const lf_event *ev, void *ctx);
typedef struct lf_subscription lf_subscription;

/* Starts a subscription thread. batch: how many events to read at a time
 * (0 = default). Returns NULL on failure. */
lf_subscription *lf_store_subscribe(lf_store *s, int64_t after, size_t batch, lf_store_handler h,
                                    void *ctx);
/* Position of the last event delivered. */
int64_t lf_subscription_position(lf_subscription *sub);
/* Stops (if running) and joins the thread, then frees. Must not be called
 * from inside the handler. NULL is a no-op. */
void lf_subscription_stop(lf_subscription *sub);

/* ---- event lists ----------------------------------------------------- */
void lf_event_list_init(lf_event_list *l);
/* Frees every event's strings and the array; leaves l empty and reusable. */
void lf_event_list_free(lf_event_list *l);
/* Empties l but keeps its memory for the next read (a reader loop calls
 * this between batches; lf_event_list_free at the end). The previous
 * events' strings are invalid afterwards. */
void lf_event_list_clear(lf_event_list *l);
/* The index of the first event of l (sorted by position, as every read
 * returns them) whose position is past pos; l->n if none is. */
size_t lf_event_list_after(const lf_event_list *l, int64_t pos);

/* For backends: adds an event at the end whose stream, type, data and meta
 * are copies (NUL-terminated, in l's storage) of the given bytes; the
 * other fields are zero for the caller to set. Returns it (owned by l,
 * valid until the next push, clear or free). */
lf_event *lf_event_list_push_copy(lf_event_list *l, const char *stream, size_t slen,
                                  const char *type, size_t tlen, const char *data, size_t dlen,
                                  const char *meta, size_t mlen);

/* Validates one event for append (shared by backends): sets lf_err_set
 * detail and returns LF_EINVAL on bad input. */
int lf_store_validate(const char *stream, int64_t expected, const lf_event_in *evs, size_t n);

/* ---- leases ------------------------------------------------------------
 * Coordination state kept beside the log in the same engine (NOT events:
 * leases are mutable and expire). A lease is a name held by one owner until
 * an expiry measured on the engine's clock where it has one (postgres:
 * now() of the server; redis: TIME inside the script; sqlite: this
 * machine's clock; nats: the clients' clocks, see docs/ARCHITECTURE.md).
 * Names and owners: 1..LF_LEASE_NAME_MAX bytes of [A-Za-z0-9._-].
 * Backends without leases answer LF_EUNSUPPORTED. */
#define LF_LEASE_NAME_MAX 64

typedef struct {
    char name[LF_LEASE_NAME_MAX + 1];
    char owner[LF_LEASE_NAME_MAX + 1];
    int64_t left_ms; /* time to expiry when read (engine clock), > 0 if live */
} lf_lease;

/* Acquire-or-renew, atomically: succeeds (0) if the lease is free, expired
 * or already held by owner, and then holds it for ttl_ms (>= 1) from now.
 * If another owner holds it, returns LF_ECONFLICT. Either way *out (may be
 * NULL) tells the holder and its time left. */
int lf_store_lease(lf_store *s, const char *name, const char *owner, int64_t ttl_ms, lf_lease *out);

/* Gives the lease up if owner holds it (0 also when it did not). */
int lf_store_lease_release(lf_store *s, const char *name, const char *owner);

/* The live (unexpired) leases whose name starts with prefix ("" = all),
 * sorted by name, at most max of them into out[]; *n = how many. */
int lf_store_lease_list(lf_store *s, const char *prefix, lf_lease *out, size_t max, size_t *n);

#endif
