/*
 * projection.h — read models built from the log, asynchronously.
 *
 * Each projection has a name, a version, a SQLite file of its own
 * (DATA/proj-NAME.db) and a checkpoint (the last log position applied)
 * stored in that same file, written in the same transaction as the rows
 * that event produced: the effect of every event is applied exactly once,
 * even across kill -9.
 *
 * The runner gives each projection its own thread: catch up from the
 * checkpoint, then follow the live log (lf_store_subscribe semantics).
 * Bumping a projection's version rebuilds it automatically at start. A
 * rebuild (HTTP or `lockerfleet rebuild`) replays the log into a new file
 * while the old one keeps serving reads, then swaps them; a rebuild killed
 * midway resumes from its own checkpoint on restart.
 *
 * A projection is a definition: schema SQL and an apply function that
 * runs inside the runner's transaction. apply must be deterministic: a
 * function of the event and the projection's own tables only (no clock,
 * no randomness, no other projection).
 */
#ifndef LF_PROJECTION_H
#define LF_PROJECTION_H

#include "store/store.h"

#include <jansson.h>
#include <sqlite3.h>

typedef struct lf_projections lf_projections;

typedef struct {
    const char *name;   /* [a-z_]+, also the file name */
    int version;        /* bump to force a rebuild */
    const char *schema; /* SQL run once on a new file (CREATE TABLE ...) */
    /* Applies one event. Returns 0, or an LF_E* code to stop the
     * projection (state "failed", reported in status). Events it does
     * not care about must return 0 quickly. */
    int (*apply)(sqlite3 *db, const lf_event *ev, void *ctx);
    void *ctx;
    /* Optional, for a projection that sums rows in memory across a batch
     * instead of writing each event: called on the thread and inside the
     * transaction of the applies, after the last one — with commit = 1
     * before the checkpoint is written and the transaction commits (write
     * what was buffered; an error rolls the batch back), with commit = 0
     * when the batch is rolled back (drop it). */
    int (*end)(sqlite3 *db, void *ctx, int commit);
} lf_projection_def;

/* The projections of the hub (defined in proj_*.c). */
extern const lf_projection_def lf_proj_units;
extern const lf_projection_def lf_proj_availability;
extern const lf_projection_def lf_proj_reservations;
extern const lf_projection_def lf_proj_revenue;
extern const lf_projection_def lf_proj_alerts;
/* All of the above, for the hub and `lockerfleet rebuild`. */
const lf_projection_def *const *lf_projection_all(size_t *n);

/* Opens/creates every projection file under dir and starts one thread per
 * projection following store. Returns NULL with lf_err_get() set. */
lf_projections *lf_projections_start(lf_store *store, const char *dir,
                                     const lf_projection_def *const *defs, size_t n);
/* Stops the threads (each finishes its current batch and commits). */
void lf_projections_stop(lf_projections *p);
/* The live threads share their reads of the log (runner.c, "the shared
 * feed"): *reads = batches read from the store, *hits = batches taken from
 * what another thread had read. */
void lf_projections_feed_stats(lf_projections *ps, int64_t *reads, int64_t *hits);

/* Tells the runner that this process's appends up to pos have returned
 * (the hub's lf_hub_append, after every successful append). With the
 * sqlite store the feed then reads only what was published, from the
 * store's memory, instead of racing a commit into its database file. */
void lf_projections_published(lf_projections *ps, int64_t pos);

/* A follower: another in-process reader of the log that shares the
 * projections' feed (the hub's registry and fleet), with the semantics of
 * lf_store_subscribe: every event with position > after, in order,
 * exactly once, on its own thread; the handler returns non-zero to stop.
 * Stop every follower before lf_projections_stop. */
typedef struct lf_projection_follower lf_projection_follower;
lf_projection_follower *lf_projections_follow(lf_projections *ps, int64_t after, lf_store_handler h,
                                              void *ctx);
/* Position of the last event delivered. */
int64_t lf_projection_follower_position(lf_projection_follower *fo);
/* Stops and joins the thread, then frees. Not from inside the handler.
 * NULL is a no-op. */
void lf_projection_follower_stop(lf_projection_follower *fo);

/* Waits until projection name has applied position >= pos (or timeout).
 * 0, LF_ETIMEDOUT, LF_ENOTFOUND (no such projection). */
int lf_projections_wait(lf_projections *p, const char *name, int64_t pos, int timeout_ms);

/* A read-only connection to a projection's current file, for queries.
 * Borrowed: give it back with lf_projection_reader_put. NULL if unknown. */
sqlite3 *lf_projection_reader(lf_projections *p, const char *name);
void lf_projection_reader_put(lf_projections *p, const char *name, sqlite3 *db);

/* Starts a rebuild of name in the background. LF_ENOTFOUND, LF_EBUSY
 * (already rebuilding). */
int lf_projections_rebuild(lf_projections *p, const char *name);

/* [{"name","version","position","lag","state","events_per_s",...}] */
json_t *lf_projections_status(lf_projections *p);

/* A prepared statement for sql on db, cached by the runner for the life
 * of the connection (reset, bindings cleared). For apply functions: call
 * with a string literal (cached by pointer); never finalize it. NULL with
 * lf_err_get() set if sql does not prepare. */
sqlite3_stmt *lf_projection_stmt(sqlite3 *db, const char *sql);

/* SHA-256-based hex digest of a projection's tables (every user table,
 * every row, in a canonical order): equal digests = equal read models.
 * 0, LF_ENOTFOUND, LF_EIO. */
int lf_projection_digest(lf_projections *p, const char *name, char out[65]);

/* Offline rebuild (lockerfleet rebuild): replays the log into a fresh
 * file and swaps it in. Prints progress. Returns 0 or an LF_E* code. */
int lf_projection_rebuild_offline(lf_store *store, const char *dir, const lf_projection_def *def);

#endif
