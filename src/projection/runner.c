/*
 * runner.c — the projection runner (projection.h).
 *
 * Files. Each projection lives in DATA/proj-NAME.G.db where G is its
 * generation; DATA/proj-NAME.current names the live generation (written
 * with write-to-temp + rename, so the swap is atomic). Every file has a
 * table _lf_meta(k, v) with its projection version, its checkpoint
 * ("position", updated in the same transaction as the rows an event
 * produced) and "complete" (0 while a rebuild is filling it).
 * Generations instead of renaming one file over another: SQLite's WAL
 * and shm files are named after the database file, so a rename under
 * open connections would mix two databases.
 *
 * Threads. One live thread per projection: read a batch from the log,
 * apply it in one transaction with the checkpoint, repeat; wait on the
 * store when caught up. A rebuild runs on its own thread into generation
 * G+1 while the live thread keeps G current and readers keep reading G.
 * When the rebuild has caught up it takes the projection's apply lock (the
 * live thread pauses), applies the last events, marks the file complete,
 * writes the .current pointer, and hands the new file to the live thread.
 * Old readers finish on G; G's files are deleted when its last reader is
 * returned (or at the next start).
 *
 * Crash safety. A rebuild killed midway leaves G+1 with complete = 0 and
 * its own checkpoint: the next start resumes it. A version bump finds the
 * current file's version different from the definition's: the live
 * thread pauses (the old schema may not fit the new code) and a rebuild
 * runs at once.
 */
#define _GNU_SOURCE
#include "projection/projection.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LIVE_BATCH 2000
/* Live, under a steady stream of appends: after a batch, wait this long
 * before reading the next one, so that a busy log costs each projection
 * (and each follower) at most ~40 transactions and wake-ups a second
 * instead of one per store commit: on the 2-core machine every wake-up
 * of the 7 feed threads cost ~20 us of CPU, and each transaction writes
 * its pages to the WAL (bench reserve, hub CPU per pair: 2 ms 635 us,
 * 10 ms 528, 25 ms ~7 % less than 10). A reader that waits for a position
 * (lf_projections_wait) ends a live thread's wait at once, so
 * read-your-writes is not slower. The first event after a quiet spell is
 * applied at once. */
#define LIVE_COALESCE_MS 25
#define REBUILD_BATCH 20000
#define REBUILD_COMMIT_EVENTS 100000
#define READERS_IDLE_MAX 16
#define READERS_MAX 256
#define STMT_CACHE 32
/* A live batch that changed nothing in the projection (most events concern
 * other projections) does not write its checkpoint: the file's checkpoint
 * may trail the live position by up to this many events (and is written
 * when the live thread ends). Replaying them after a crash is harmless —
 * they change nothing — and skipping the write saves a WAL commit per
 * projection per batch. */
#define CKPT_LAG_EVENTS 10000

/* ---- statement cache ------------------------------------------------ */

struct stmt_cache {
    sqlite3 *db;
    struct {
        const char *sql;
        sqlite3_stmt *st;
    } e[STMT_CACHE];
    int n;
};

/* The cache of the connection the current thread is applying to. */
static __thread struct stmt_cache *tls_cache;

sqlite3_stmt *lf_projection_stmt(sqlite3 *db, const char *sql)
{
    struct stmt_cache *c = tls_cache;
    sqlite3_stmt *st = NULL;
    if (!c || c->db != db) {
        lf_err_set("lf_projection_stmt called outside the runner's apply");
        return NULL;
    }
    for (int i = 0; i < c->n; i++)
        if (c->e[i].sql == sql) {
            st = c->e[i].st;
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            return st;
        }
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        lf_err_set("prepare: %s", sqlite3_errmsg(db));
        return NULL;
    }
    if (c->n < STMT_CACHE) {
        c->e[c->n].sql = sql;
        c->e[c->n].st = st;
        c->n++;
    } else {
        /* Should not happen with sane projections: keep it working. */
        sqlite3_finalize(c->e[0].st);
        c->e[0].sql = sql;
        c->e[0].st = st;
    }
    return st;
}

static void cache_clear(struct stmt_cache *c)
{
    for (int i = 0; i < c->n; i++)
        sqlite3_finalize(c->e[i].st);
    c->n = 0;
}

/* ---- files ------------------------------------------------------------ */

struct reader {
    sqlite3 *db;
    int64_t gen;
    int busy;
};

struct proj {
    const lf_projection_def *def;
    struct lf_projections *owner;
    pthread_t thread;
    int thread_started;

    pthread_mutex_t apply_mu; /* held while applying a batch or swapping */
    sqlite3 *db;              /* writer of the current generation */
    struct stmt_cache cache;

    pthread_mutex_t mu; /* everything below */
    pthread_cond_t cond;
    int64_t gen;      /* current generation */
    int64_t position; /* checkpoint of the current generation */
    int64_t saved;    /* position last written to the file (apply_mu) */
    int paused;       /* current file's version is stale: wait for rebuild */
    int waiters;      /* threads in lf_projections_wait */
    int kick;         /* a reader found it behind: end coalesce_wait */
    int failed;
    char error[256];
    struct reader readers[READERS_MAX];
    int nreaders;
    int64_t old_gen_pending; /* generation whose files await deletion, 0 none */

    /* rebuild */
    pthread_t rb_thread;
    int rb_active, rb_joinable;
    int64_t rb_position, rb_started_ms, rb_resumed_from;
    int64_t last_rb_events, last_rb_ms;
};

/* ---- the shared feed ---------------------------------------------------
 * The live threads follow the same log, usually a few events apart: each
 * reading it on its own copied every event out of the store once per
 * projection (and, for one that fell behind the store's in-memory tail,
 * read it back through SQLite). The feed keeps the last FEED_KEEP batches
 * read: a batch holds the events with position > after, up to last, so
 * a thread at any pos in [after, last) takes the batch's suffix without a
 * read. One thread reads at a time (read_mu), so the threads that miss
 * together share the one read instead of each making it. Batches are
 * read-only once in the feed and reference-counted: one evicted while a
 * thread applies it is freed by that thread's feed_put. A freed batch's
 * list is kept (FEED_SPARE of them) for a next read to fill: its memory is
 * already mapped, a fresh one page-faults its way through every read. */
#define FEED_KEEP 8
#define FEED_SPARE 4

struct feed_batch {
    int64_t after, last;
    lf_event_list l;
    int refs; /* holders + 1 while in the feed (feed_mu) */
};

struct lf_projections {
    lf_store *store;
    char *dir;
    struct proj *p;
    size_t n;
    atomic_int stop;

    pthread_mutex_t feed_mu; /* feed[], nfeed, refs */
    pthread_mutex_t read_mu; /* one store read at a time */
    struct feed_batch *feed[FEED_KEEP];
    int nfeed;
    struct feed_batch *spare[FEED_SPARE]; /* emptied, memory kept for the next read */
    int nspare;
    atomic_llong feed_reads, feed_hits; /* for tests and status */

    /* lf_projections_published: the position up to which this process's
     * appends have returned (sqlite store only, 0 until told). */
    int gate_ok; /* the store is sqlite: its memory has what returned */
    _Atomic int64_t published;
    atomic_int pub_waiters; /* threads waiting on pub_cond (changed under pub_mu) */
    pthread_mutex_t pub_mu;
    pthread_cond_t pub_cond;
};

static char *gen_path(const char *dir, const char *name, int64_t gen)
{
    return lf_asprintf("%s/proj-%s.%lld.db", dir, name, (long long)gen);
}

static int64_t current_gen(const char *dir, const char *name)
{
    char *path = lf_asprintf("%s/proj-%s.current", dir, name);
    int64_t gen = 0;
    FILE *f = fopen(path, "r");
    if (f) {
        char buf[32] = "";
        if (fgets(buf, sizeof buf, f)) {
            buf[strcspn(buf, "\n")] = '\0';
            if (lf_parse_i64(buf, &gen) || gen < 1) gen = 0;
        }
        fclose(f);
    }
    free(path);
    return gen;
}

/* Atomically points the projection at generation gen. */
static int set_current_gen(const char *dir, const char *name, int64_t gen)
{
    int rc = LF_EIO;
    char *path = lf_asprintf("%s/proj-%s.current", dir, name);
    char *tmp = lf_asprintf("%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) goto out;
    fprintf(f, "%lld\n", (long long)gen);
    if (fflush(f) || fsync(fileno(f))) {
        fclose(f);
        goto out;
    }
    fclose(f);
    if (rename(tmp, path)) goto out;
    rc = 0;
out:
    if (rc) lf_err_set("cannot write %s: %s", path, strerror(errno));
    free(path);
    free(tmp);
    return rc;
}

static void remove_gen_files(const char *dir, const char *name, int64_t gen)
{
    char *p = gen_path(dir, name, gen);
    char *w = lf_asprintf("%s-wal", p), *s = lf_asprintf("%s-shm", p);
    unlink(p);
    unlink(w);
    unlink(s);
    free(p);
    free(w);
    free(s);
}

static int exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        lf_err_set("%s: %s", sql, msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return LF_EIO;
    }
    return 0;
}

static int meta_get(sqlite3 *db, const char *k, int64_t *v)
{
    sqlite3_stmt *st = NULL;
    int rc = LF_ENOTFOUND;
    if (sqlite3_prepare_v2(db, "SELECT v FROM _lf_meta WHERE k = ?", -1, &st, NULL) != SQLITE_OK)
        return LF_EIO;
    sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        *v = sqlite3_column_int64(st, 0);
        rc = 0;
    }
    sqlite3_finalize(st);
    return rc;
}

static int meta_set(sqlite3 *db, const char *k, int64_t v)
{
    sqlite3_stmt *st = NULL;
    int rc = LF_EIO;
    if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO _lf_meta(k, v) VALUES (?, ?)", -1, &st,
                           NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, v);
    if (sqlite3_step(st) == SQLITE_DONE) rc = 0;
out:
    if (rc) lf_err_set("writing _lf_meta: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return rc;
}

/* Opens (creating) a projection file for writing. For a new file runs the
 * schema and writes version/position/complete. fast: rebuild settings. */
static int open_writer(const char *path, const lf_projection_def *def, int complete_if_new,
                       int fast, sqlite3 **out)
{
    sqlite3 *db = NULL;
    int rc = LF_EIO;
    int64_t v;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        lf_err_set("cannot open %s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
        goto out;
    }
    sqlite3_busy_timeout(db, 10000);
    if (exec(db, "PRAGMA journal_mode=WAL") ||
        exec(db, fast ? "PRAGMA synchronous=OFF" : "PRAGMA synchronous=NORMAL") ||
        exec(db, fast ? "PRAGMA cache_size=-131072" : "PRAGMA cache_size=-16384") ||
        exec(db, "PRAGMA temp_store=MEMORY") ||
        exec(db, "CREATE TABLE IF NOT EXISTS _lf_meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL)"))
        goto out;
    if (meta_get(db, "version", &v) == LF_ENOTFOUND) {
        if (exec(db, "BEGIN") || exec(db, def->schema) || meta_set(db, "version", def->version) ||
            meta_set(db, "position", 0) || meta_set(db, "complete", complete_if_new) ||
            exec(db, "COMMIT"))
            goto out;
    }
    rc = 0;
out:
    if (rc) {
        sqlite3_close(db);
        db = NULL;
    }
    *out = db;
    return rc;
}

/* Applies events [0, n) of l in one transaction with the checkpoint. */
static const char SQL_BEGIN[] = "BEGIN IMMEDIATE";
static const char SQL_COMMIT[] = "COMMIT";
static const char SQL_CKPT[] = "UPDATE _lf_meta SET v = ? WHERE k = 'position'";

/* BEGIN/COMMIT through the statement cache (no parse per batch); cache
 * set by the caller. */
static int step_cached(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = lf_projection_stmt(db, sql);
    if (!st) return LF_EIO;
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        lf_err_set("%s: %s", sql, sqlite3_errmsg(db));
        return LF_EIO;
    }
    return 0;
}

/* Writes the checkpoint pos; inside a transaction, cache set. */
static int ckpt_write(sqlite3 *db, int64_t pos)
{
    sqlite3_stmt *st = lf_projection_stmt(db, SQL_CKPT);
    if (!st) return LF_EIO;
    sqlite3_bind_int64(st, 1, pos);
    if (sqlite3_step(st) != SQLITE_DONE) {
        lf_err_set("checkpoint: %s", sqlite3_errmsg(db));
        sqlite3_reset(st);
        return LF_EIO;
    }
    sqlite3_reset(st);
    return 0;
}

/* Applies n events in one transaction. *saved (may be NULL: always write)
 * is the checkpoint in the file: it is written when the batch changed the
 * projection or trails by CKPT_LAG_EVENTS, and updated. */
static int apply_batch(sqlite3 *db, struct stmt_cache *cache, const lf_projection_def *def,
                       const lf_event *ev, size_t n, int64_t *pos, size_t *bad, int64_t *saved)
{
    int rc = 0;
    if (bad) *bad = n;
    tls_cache = cache;
    if ((rc = step_cached(db, SQL_BEGIN))) goto out;
    int64_t changes = sqlite3_total_changes64(db);
    for (size_t i = 0; i < n; i++) {
        rc = def->apply(db, &ev[i], def->ctx);
        if (rc) {
            if (bad) *bad = i;
            char detail[512];
            snprintf(detail, sizeof detail, "%s", lf_err_get());
            lf_err_set("%s at position %lld (%s): %s", def->name, (long long)ev[i].position,
                       ev[i].type, detail[0] ? detail : sqlite3_errmsg(db));
            if (def->end) def->end(db, def->ctx, 0);
            exec(db, "ROLLBACK");
            goto out;
        }
    }
    if (def->end && (rc = def->end(db, def->ctx, 1))) {
        char detail[512];
        snprintf(detail, sizeof detail, "%s", lf_err_get());
        lf_err_set("%s at position %lld: %s", def->name, n ? (long long)ev[n - 1].position : 0LL,
                   detail[0] ? detail : sqlite3_errmsg(db));
        exec(db, "ROLLBACK");
        goto out;
    }
    int write = n && (!saved || sqlite3_total_changes64(db) != changes ||
                      ev[n - 1].position - *saved >= CKPT_LAG_EVENTS);
    if (write && (rc = ckpt_write(db, ev[n - 1].position))) {
        exec(db, "ROLLBACK");
        goto out;
    }
    if ((rc = step_cached(db, SQL_COMMIT))) {
        exec(db, "ROLLBACK");
        goto out;
    }
    if (n) *pos = ev[n - 1].position;
    if (write && saved) *saved = ev[n - 1].position;
out:
    tls_cache = NULL;
    return rc;
}

/* The live thread's last word: the checkpoint a quiet tail left unwritten. */
static void ckpt_flush(struct proj *p)
{
    pthread_mutex_lock(&p->apply_mu);
    pthread_mutex_lock(&p->mu);
    int64_t pos = p->position;
    int ok = !p->paused && !p->failed && p->db;
    pthread_mutex_unlock(&p->mu);
    if (ok && pos > p->saved) {
        tls_cache = &p->cache;
        if (step_cached(p->db, SQL_BEGIN) == 0) {
            if (ckpt_write(p->db, pos) == 0 && step_cached(p->db, SQL_COMMIT) == 0)
                p->saved = pos;
            else
                exec(p->db, "ROLLBACK");
        }
        tls_cache = NULL;
    }
    pthread_mutex_unlock(&p->apply_mu);
}

/* ---- digest ------------------------------------------------------------- */

static int digest_db(sqlite3 *db, char out[65])
{
    int rc = LF_EIO;
    sqlite3_stmt *tl = NULL, *st = NULL;
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    if (sqlite3_prepare_v2(db,
                           "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE "
                           "'sqlite_%' AND name <> '_lf_meta' ORDER BY name",
                           -1, &tl, NULL) != SQLITE_OK)
        goto out;
    while (sqlite3_step(tl) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(tl, 0);
        crypto_hash_sha256_update(&h, (const unsigned char *)t, strlen(t) + 1);
        /* Order by every column: a canonical order whatever the rowids. */
        char *probe = sqlite3_mprintf("SELECT * FROM \"%w\" LIMIT 0", t);
        sqlite3_stmt *ps = NULL;
        int ncol = 0;
        if (sqlite3_prepare_v2(db, probe, -1, &ps, NULL) == SQLITE_OK)
            ncol = sqlite3_column_count(ps);
        sqlite3_finalize(ps);
        sqlite3_free(probe);
        lf_buf q;
        lf_buf_init(&q, 0);
        lf_buf_printf(&q, "SELECT * FROM \"%s\"", t);
        for (int i = 1; i <= ncol; i++)
            lf_buf_printf(&q, "%s%d", i == 1 ? " ORDER BY " : ",", i);
        int prc = sqlite3_prepare_v2(db, q.data, -1, &st, NULL);
        lf_buf_free(&q);
        if (prc != SQLITE_OK) goto out;
        while (sqlite3_step(st) == SQLITE_ROW) {
            for (int i = 0; i < ncol; i++) {
                unsigned char tag = (unsigned char)sqlite3_column_type(st, i);
                crypto_hash_sha256_update(&h, &tag, 1);
                const unsigned char *v = sqlite3_column_text(st, i);
                int len = sqlite3_column_bytes(st, i);
                if (v) crypto_hash_sha256_update(&h, v, (unsigned long long)len);
                crypto_hash_sha256_update(&h, (const unsigned char *)"\x1f", 1);
            }
            crypto_hash_sha256_update(&h, (const unsigned char *)"\x1e", 1);
        }
        sqlite3_finalize(st);
        st = NULL;
    }
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&h, d);
    sodium_bin2hex(out, 65, d, sizeof d);
    rc = 0;
out:
    if (rc) lf_err_set("digest: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    sqlite3_finalize(tl);
    return rc;
}

/* ---- rebuild ------------------------------------------------------------- */

static int64_t test_delay_ms(void)
{
    const char *s = getenv("LF_TEST_REBUILD_DELAY_MS");
    int64_t v = 0;
    if (s && lf_parse_i64(s, &v) == 0 && v > 0 && v < 10000) return v;
    return 0;
}

/* Fills the file of generation gen from its checkpoint up to the log's
 * head (as seen when reading). progress (optional) gets the position.
 * stop (optional) interrupts it. Returns with *dbp open on the file. */
static int rebuild_fill(lf_store *store, const char *path, const lf_projection_def *def,
                        atomic_int *stop, int64_t *progress, pthread_mutex_t *progress_mu,
                        sqlite3 **dbp, struct stmt_cache *cache, int64_t *pos_out,
                        int64_t *resumed_from, int64_t *events)
{
    int rc;
    sqlite3 *db = *dbp;
    int64_t pos = 0, version = 0, delay = test_delay_ms();
    size_t batch = delay ? 50 : REBUILD_BATCH;
    lf_event_list l;
    lf_event_list_init(&l);
    if (!db) {
        if ((rc = open_writer(path, def, 0, 1, &db))) goto out;
        cache->db = db;
    }
    meta_get(db, "version", &version);
    if (version != def->version) {
        lf_err_set("%s has version %lld, not %d", path, (long long)version, def->version);
        rc = LF_ECORRUPT;
        goto out;
    }
    if ((rc = meta_get(db, "position", &pos))) goto out;
    if (resumed_from) *resumed_from = pos;
    /* Big transactions: commit every REBUILD_COMMIT_EVENTS events. The
     * checkpoint travels with them, so a kill resumes from the last one. */
    for (;;) {
        if (stop && atomic_load(stop)) {
            rc = LF_ECLOSED;
            goto out;
        }
        size_t got = 0;
        if ((rc = exec(db, "BEGIN IMMEDIATE"))) goto out;
        tls_cache = cache;
        while (got < REBUILD_COMMIT_EVENTS) {
            lf_event_list_clear(&l);
            if ((rc = lf_store_read_all(store, pos, batch, &l))) break;
            if (l.n == 0) break;
            for (size_t i = 0; i < l.n && rc == 0; i++) {
                rc = def->apply(db, &l.ev[i], def->ctx);
                if (rc)
                    lf_err_set("%s at position %lld (%s): %s", def->name,
                               (long long)l.ev[i].position, l.ev[i].type, sqlite3_errmsg(db));
            }
            if (rc) break;
            pos = l.ev[l.n - 1].position;
            got += l.n;
            if (delay) break; /* tests: small committed steps */
        }
        if (def->end && rc) {
            def->end(db, def->ctx, 0);
        } else if (def->end && (rc = def->end(db, def->ctx, 1))) {
            char detail[512];
            snprintf(detail, sizeof detail, "%s", lf_err_get());
            lf_err_set("%s at position %lld: %s", def->name, (long long)pos, detail);
        }
        tls_cache = NULL;
        if (rc == 0 && got) rc = meta_set(db, "position", pos);
        if (rc) {
            exec(db, "ROLLBACK");
            goto out;
        }
        if ((rc = exec(db, "COMMIT"))) goto out;
        if (events) *events += (int64_t)got;
        if (progress) {
            if (progress_mu) pthread_mutex_lock(progress_mu);
            *progress = pos;
            if (progress_mu) pthread_mutex_unlock(progress_mu);
        }
        if (got == 0) break;
        if (delay) lf_sleep_ms(delay);
    }
    rc = 0;
out:
    tls_cache = NULL;
    lf_event_list_free(&l);
    *dbp = db;
    *pos_out = pos;
    return rc;
}

/* Closes a writer and its cached statements. */
static void writer_close(sqlite3 **db, struct stmt_cache *cache)
{
    cache_clear(cache);
    cache->db = NULL;
    sqlite3_close(*db);
    *db = NULL;
}

static void readers_gc_locked(struct proj *p);

static void *rebuild_thread(void *arg)
{
    struct proj *p = arg;
    struct lf_projections *ps = p->owner;
    const char *name = p->def->name;
    pthread_mutex_lock(&p->mu);
    int64_t newgen = p->gen + 1;
    pthread_mutex_unlock(&p->mu);
    char *path = gen_path(ps->dir, name, newgen);
    sqlite3 *db = NULL;
    struct stmt_cache cache = {0};
    int64_t pos = 0, events = 0, t0 = lf_mono_ms(), resumed = 0;
    int rc = rebuild_fill(ps->store, path, p->def, &ps->stop, &p->rb_position, &p->mu, &db, &cache,
                          &pos, &resumed, &events);
    pthread_mutex_lock(&p->mu);
    p->rb_resumed_from = resumed;
    pthread_mutex_unlock(&p->mu);
    if (rc) goto out;
    /* Swap: pause the live thread, catch up the last events, switch. */
    pthread_mutex_lock(&p->apply_mu);
    rc = rebuild_fill(ps->store, path, p->def, &ps->stop, &p->rb_position, &p->mu, &db, &cache,
                      &pos, NULL, &events);
    if (rc == 0) rc = meta_set(db, "complete", 1);
    if (rc == 0) {
        cache_clear(&cache);
        cache.db = NULL;
        /* Normal settings from now on: this is the live file. */
        exec(db, "PRAGMA synchronous=NORMAL");
        exec(db, "PRAGMA cache_size=-16384");
        rc = set_current_gen(ps->dir, name, newgen);
    }
    if (rc) {
        pthread_mutex_unlock(&p->apply_mu);
        goto out;
    }
    writer_close(&p->db, &p->cache);
    p->db = db;
    p->cache.db = db;
    db = NULL;
    pthread_mutex_lock(&p->mu);
    int64_t oldgen = p->gen;
    p->gen = newgen;
    p->position = pos;
    p->saved = pos;
    p->paused = 0;
    p->failed = 0;
    p->error[0] = '\0';
    p->old_gen_pending = oldgen;
    p->last_rb_events = events;
    p->last_rb_ms = lf_mono_ms() - t0;
    readers_gc_locked(p);
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&p->apply_mu);
    LF_INFO("projection", "%s rebuilt: %lld events in %lld ms, now generation %lld", name,
            (long long)events, (long long)(lf_mono_ms() - t0), (long long)newgen);
out:
    if (rc && rc != LF_ECLOSED) {
        LF_ERROR("projection", "%s: rebuild failed: %s", name, lf_err_get());
        pthread_mutex_lock(&p->mu);
        snprintf(p->error, sizeof p->error, "rebuild: %s", lf_err_get());
        pthread_mutex_unlock(&p->mu);
    }
    if (db) writer_close(&db, &cache);
    free(path);
    pthread_mutex_lock(&p->mu);
    p->rb_active = 0;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Starts the rebuild thread; p->mu held. */
static int rebuild_start_locked(struct proj *p)
{
    if (p->rb_active) return LF_EBUSY;
    if (p->rb_joinable) {
        /* The previous rebuild thread has ended (rb_active == 0). */
        pthread_join(p->rb_thread, NULL);
        p->rb_joinable = 0;
    }
    p->rb_active = 1;
    p->rb_position = 0;
    p->rb_resumed_from = 0;
    p->rb_started_ms = lf_now_ms();
    if (pthread_create(&p->rb_thread, NULL, rebuild_thread, p)) {
        p->rb_active = 0;
        lf_err_set("cannot start a rebuild thread");
        return LF_EIO;
    }
    p->rb_joinable = 1;
    return 0;
}

/* ---- readers ------------------------------------------------------------- */

/* Closes idle readers of old generations; deletes the old generation's
 * files when none of its readers is out. p->mu held. */
static void readers_gc_locked(struct proj *p)
{
    int old_busy = 0;
    for (int i = 0; i < p->nreaders;) {
        struct reader *r = &p->readers[i];
        if (r->gen != p->gen && !r->busy) {
            sqlite3_close(r->db);
            p->readers[i] = p->readers[--p->nreaders];
            continue;
        }
        if (r->gen != p->gen) old_busy = 1;
        i++;
    }
    if (p->old_gen_pending && !old_busy) {
        remove_gen_files(p->owner->dir, p->def->name, p->old_gen_pending);
        p->old_gen_pending = 0;
    }
}

static struct proj *find(lf_projections *ps, const char *name)
{
    if (!ps || !name) return NULL;
    for (size_t i = 0; i < ps->n; i++)
        if (strcmp(ps->p[i].def->name, name) == 0) return &ps->p[i];
    return NULL;
}

sqlite3 *lf_projection_reader(lf_projections *ps, const char *name)
{
    struct proj *p = find(ps, name);
    sqlite3 *db = NULL;
    if (!p) return NULL;
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->nreaders; i++)
        if (!p->readers[i].busy && p->readers[i].gen == p->gen) {
            p->readers[i].busy = 1;
            db = p->readers[i].db;
            goto out;
        }
    if (p->nreaders >= READERS_MAX) {
        lf_err_set("too many readers of projection %s", name);
        goto out;
    }
    char *path = gen_path(ps->dir, name, p->gen);
    int orc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    free(path);
    if (orc != SQLITE_OK) {
        lf_err_set("cannot open projection %s: %s", name, db ? sqlite3_errmsg(db) : "no memory");
        sqlite3_close(db);
        db = NULL;
        goto out;
    }
    sqlite3_busy_timeout(db, 5000);
    exec(db, "PRAGMA query_only=1");
    p->readers[p->nreaders++] = (struct reader){db, p->gen, 1};
out:
    pthread_mutex_unlock(&p->mu);
    return db;
}

void lf_projection_reader_put(lf_projections *ps, const char *name, sqlite3 *db)
{
    struct proj *p = find(ps, name);
    if (!p || !db) return;
    pthread_mutex_lock(&p->mu);
    int idle = 0;
    for (int i = 0; i < p->nreaders; i++)
        if (!p->readers[i].busy && p->readers[i].gen == p->gen) idle++;
    for (int i = 0; i < p->nreaders; i++) {
        if (p->readers[i].db != db) continue;
        p->readers[i].busy = 0;
        if (p->readers[i].gen == p->gen && idle >= READERS_IDLE_MAX) {
            sqlite3_close(db);
            p->readers[i] = p->readers[--p->nreaders];
        }
        break;
    }
    readers_gc_locked(p);
    pthread_mutex_unlock(&p->mu);
}

int lf_projection_digest(lf_projections *ps, const char *name, char out[65])
{
    sqlite3 *db = lf_projection_reader(ps, name);
    if (!db) return find(ps, name) ? LF_EIO : LF_ENOTFOUND;
    /* One read transaction: a consistent snapshot of every table. */
    exec(db, "BEGIN");
    int rc = digest_db(db, out);
    exec(db, "COMMIT");
    lf_projection_reader_put(ps, name, db);
    return rc;
}

/* ---- the shared feed ------------------------------------------------------ */

static void feed_unref_locked(lf_projections *ps, struct feed_batch *b)
{
    if (--b->refs > 0) return;
    if (ps->nspare < FEED_SPARE && !atomic_load(&ps->stop)) {
        lf_event_list_clear(&b->l);
        ps->spare[ps->nspare++] = b;
        return;
    }
    lf_event_list_free(&b->l);
    free(b);
}

/* The cached batch with the most events after pos, NULL if none has any
 * (feed_mu held). */
static struct feed_batch *feed_find_locked(lf_projections *ps, int64_t pos)
{
    struct feed_batch *best = NULL;
    for (int i = 0; i < ps->nfeed; i++) {
        struct feed_batch *b = ps->feed[i];
        if (b->after <= pos && pos < b->last && (!best || b->last > best->last)) best = b;
    }
    return best;
}

/* 1 if the feed holds events after pos (no read needed). */
static int feed_has(lf_projections *ps, int64_t pos)
{
    pthread_mutex_lock(&ps->feed_mu);
    int has = feed_find_locked(ps, pos) != NULL;
    pthread_mutex_unlock(&ps->feed_mu);
    return has;
}

/* The events after pos: *ev, *n (a suffix of *out's batch, to return with
 * feed_put), or *n = 0 and *out NULL when the store has none now. */
static int feed_get(lf_projections *ps, int64_t pos, struct feed_batch **out, const lf_event **ev,
                    size_t *n)
{
    int rc = 0;
    struct feed_batch *b;
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&ps->feed_mu);
    b = feed_find_locked(ps, pos);
    if (b) b->refs++;
    pthread_mutex_unlock(&ps->feed_mu);
    if (!b) {
        pthread_mutex_lock(&ps->read_mu);
        /* Someone may have read it while this thread waited for read_mu. */
        pthread_mutex_lock(&ps->feed_mu);
        b = feed_find_locked(ps, pos);
        if (b) b->refs++;
        pthread_mutex_unlock(&ps->feed_mu);
        if (!b) {
            struct feed_batch *nb = NULL;
            pthread_mutex_lock(&ps->feed_mu);
            if (ps->nspare) nb = ps->spare[--ps->nspare];
            pthread_mutex_unlock(&ps->feed_mu);
            if (!nb) {
                nb = lf_xcalloc(1, sizeof *nb);
                lf_event_list_init(&nb->l);
            }
            rc = lf_store_read_all(ps->store, pos, LIVE_BATCH, &nb->l);
            atomic_fetch_add(&ps->feed_reads, 1);
            if (rc || nb->l.n == 0) {
                pthread_mutex_lock(&ps->feed_mu);
                nb->refs = 1;
                feed_unref_locked(ps, nb); /* back to the spares */
                pthread_mutex_unlock(&ps->feed_mu);
            } else {
                nb->after = pos;
                nb->last = nb->l.ev[nb->l.n - 1].position;
                nb->refs = 2; /* the feed's and ours */
                pthread_mutex_lock(&ps->feed_mu);
                if (ps->nfeed == FEED_KEEP) {
                    /* Evict the batch that ends first: the threads are past it. */
                    int old = 0;
                    for (int i = 1; i < ps->nfeed; i++)
                        if (ps->feed[i]->last < ps->feed[old]->last) old = i;
                    feed_unref_locked(ps, ps->feed[old]);
                    ps->feed[old] = ps->feed[--ps->nfeed];
                }
                ps->feed[ps->nfeed++] = nb;
                pthread_mutex_unlock(&ps->feed_mu);
                b = nb;
            }
        } else {
            atomic_fetch_add(&ps->feed_hits, 1);
        }
        pthread_mutex_unlock(&ps->read_mu);
    } else {
        atomic_fetch_add(&ps->feed_hits, 1);
    }
    if (!b) return rc;
    /* Positions grow within a batch: the first event after pos. */
    size_t lo = lf_event_list_after(&b->l, pos);
    *out = b;
    *ev = b->l.ev + lo;
    *n = b->l.n - lo;
    return 0;
}

static void feed_put(lf_projections *ps, struct feed_batch *b)
{
    if (!b) return;
    pthread_mutex_lock(&ps->feed_mu);
    feed_unref_locked(ps, b);
    pthread_mutex_unlock(&ps->feed_mu);
}

static void feed_clear(lf_projections *ps)
{
    pthread_mutex_lock(&ps->feed_mu);
    while (ps->nfeed)
        feed_unref_locked(ps, ps->feed[--ps->nfeed]);
    while (ps->nspare) {
        struct feed_batch *b = ps->spare[--ps->nspare];
        lf_event_list_free(&b->l);
        free(b);
    }
    pthread_mutex_unlock(&ps->feed_mu);
}

void lf_projections_published(lf_projections *ps, int64_t pos)
{
    if (!ps || !ps->gate_ok) return;
    int64_t cur = atomic_load(&ps->published);
    while (cur < pos && !atomic_compare_exchange_weak(&ps->published, &cur, pos)) {
    }
    /* Every appender of a commit group calls this: only the one that moved
     * the position wakes, and only when a thread waits. (A waiter counts
     * itself before it looks at published, the publisher stores before it
     * looks at the count: one of them sees the other.) */
    if (cur >= pos || atomic_load(&ps->pub_waiters) == 0) return;
    pthread_mutex_lock(&ps->pub_mu);
    pthread_cond_broadcast(&ps->pub_cond);
    pthread_mutex_unlock(&ps->pub_mu);
}

/* Before a read at pos. With the sqlite store, whose reads after the last
 * event it holds in memory go to the database file: an event committed
 * there but not yet published in memory (the WAL checkpoint runs inside
 * COMMIT) would be read back through SQLite, once per follower. So when
 * the hub says what its appends published, read only past what was
 * published, or after PUB_WAIT_MS (another process may write the file).
 * Otherwise, at the head (at_head != 0), wait on the store for the next
 * commit.
 * Returns LF_ECLOSED when the store closed. */
#define PUB_WAIT_MS 100
static int feed_wait(lf_projections *ps, int64_t pos, int at_head)
{
    /* at_head == 2: the last read found nothing after pos; never spin on
     * a published position the store does not show (it cannot happen, it
     * would cost a core if it did). */
    if (ps->gate_ok && atomic_load(&ps->published) > 0 && at_head != 2) {
        if (atomic_load(&ps->published) > pos || feed_has(ps, pos)) return 0;
        struct timespec ts;
        lf_abstime_us(PUB_WAIT_MS * 1000, &ts);
        pthread_mutex_lock(&ps->pub_mu);
        atomic_fetch_add(&ps->pub_waiters, 1);
        while (atomic_load(&ps->published) <= pos && !atomic_load(&ps->stop))
            if (pthread_cond_timedwait(&ps->pub_cond, &ps->pub_mu, &ts) == ETIMEDOUT) break;
        atomic_fetch_sub(&ps->pub_waiters, 1);
        pthread_mutex_unlock(&ps->pub_mu);
        return 0;
    }
    if (at_head && !feed_has(ps, pos)) return lf_store_wait(ps->store, pos, 250) == LF_ECLOSED;
    return 0;
}

void lf_projections_feed_stats(lf_projections *ps, int64_t *reads, int64_t *hits)
{
    *reads = ps ? atomic_load(&ps->feed_reads) : 0;
    *hits = ps ? atomic_load(&ps->feed_hits) : 0;
}

/* ---- followers: other in-process readers of the log on the feed ---------- */

struct lf_projection_follower {
    lf_projections *ps;
    lf_store_handler handler;
    void *ctx;
    atomic_llong position;
    atomic_int stop;
    pthread_t thread;
};

static void *follower_main(void *arg)
{
    lf_projection_follower *fo = arg;
    lf_projections *ps = fo->ps;
    int at_head = 0;
    int busy = 0; /* the last read found events, fewer than a full batch */
    while (!atomic_load(&fo->stop) && !atomic_load(&ps->stop)) {
        int64_t pos = atomic_load(&fo->position);
        /* With the sqlite store this process is the only writer and applies
         * its own registrations at once (registry), so a follower may
         * coalesce; with a shared store it is how this node learns what the
         * others wrote (a unit registered there): no added delay. */
        if (busy && ps->gate_ok) lf_sleep_ms(LIVE_COALESCE_MS);
        if (feed_wait(ps, pos, at_head)) break;
        struct feed_batch *fb = NULL;
        const lf_event *ev = NULL;
        size_t n = 0;
        int rc = feed_get(ps, pos, &fb, &ev, &n);
        if (rc) {
            if (rc == LF_ECLOSED) break;
            LF_WARN("projection", "a follower's read of the log failed: %s %s", lf_strerror(rc),
                    lf_err_get());
            lf_sleep_ms(200);
            continue;
        }
        at_head = n == 0 ? 2 : fb->l.n < LIVE_BATCH;
        busy = n > 0 && n < LIVE_BATCH;
        for (size_t i = 0; i < n && !atomic_load(&fo->stop); i++) {
            if (fo->handler(&ev[i], fo->ctx)) atomic_store(&fo->stop, 1);
            atomic_store(&fo->position, ev[i].position);
        }
        feed_put(ps, fb);
    }
    return NULL;
}

lf_projection_follower *lf_projections_follow(lf_projections *ps, int64_t after, lf_store_handler h,
                                              void *ctx)
{
    if (!ps || !h || after < 0) return NULL;
    lf_projection_follower *fo = lf_xcalloc(1, sizeof *fo);
    fo->ps = ps;
    fo->handler = h;
    fo->ctx = ctx;
    atomic_store(&fo->position, after);
    if (pthread_create(&fo->thread, NULL, follower_main, fo)) {
        free(fo);
        return NULL;
    }
    return fo;
}

int64_t lf_projection_follower_position(lf_projection_follower *fo)
{
    return fo ? atomic_load(&fo->position) : 0;
}

void lf_projection_follower_stop(lf_projection_follower *fo)
{
    if (!fo) return;
    atomic_store(&fo->stop, 1);
    pthread_join(fo->thread, NULL);
    free(fo);
}

/* ---- the live thread -------------------------------------------------------- */

/* The live thread's pause between batches under a steady stream of
 * appends: LIVE_COALESCE_MS, cut short when a reader waits for a position
 * this projection has not reached (lf_projections_wait sets p->kick and
 * signals p->cond) or the runner stops. */
static void coalesce_wait(struct proj *p)
{
    struct timespec ts;
    lf_abstime_us(LIVE_COALESCE_MS * 1000, &ts);
    pthread_mutex_lock(&p->mu);
    while (!p->waiters && !p->kick && !atomic_load(&p->owner->stop))
        if (pthread_cond_timedwait(&p->cond, &p->mu, &ts) == ETIMEDOUT) break;
    p->kick = 0;
    pthread_mutex_unlock(&p->mu);
}

static void *live_thread(void *arg)
{
    struct proj *p = arg;
    struct lf_projections *ps = p->owner;
    int at_head = 0;
    int busy = 0; /* the last read found events, fewer than a full batch */
    while (!atomic_load(&ps->stop)) {
        pthread_mutex_lock(&p->mu);
        int64_t pos = p->position;
        int idle = p->paused || p->failed, waiters = p->waiters;
        pthread_mutex_unlock(&p->mu);
        if (idle) {
            lf_sleep_ms(100);
            continue;
        }
        if (busy && !waiters) coalesce_wait(p);
        /* At the head, wait for the next commit before reading: a read
         * there finds nothing in the store's memory and asks its database
         * (and would race the commit being published). The wait returns
         * at once when there is more to read. */
        if (feed_wait(ps, pos, at_head)) break;
        struct feed_batch *fb = NULL;
        const lf_event *ev = NULL;
        size_t n = 0;
        int rc = feed_get(ps, pos, &fb, &ev, &n);
        if (rc) {
            if (rc == LF_ECLOSED) break;
            LF_WARN("projection", "%s: reading the log: %s", p->def->name, lf_err_get());
            lf_sleep_ms(500);
            continue;
        }
        at_head = n == 0 ? 2 : fb->l.n < LIVE_BATCH;
        busy = n > 0 && n < LIVE_BATCH;
        if (n == 0) continue;
        pthread_mutex_lock(&p->apply_mu);
        pthread_mutex_lock(&p->mu);
        int stale = p->position != pos || p->paused; /* swapped meanwhile */
        pthread_mutex_unlock(&p->mu);
        int64_t newpos = pos;
        size_t bad = n;
        if (!stale) rc = apply_batch(p->db, &p->cache, p->def, ev, n, &newpos, &bad, &p->saved);
        if (rc && bad > 0 && bad < n) {
            /* Keep the events before the bad one: the checkpoint then
             * points exactly at the event that failed. */
            char msg[512];
            snprintf(msg, sizeof msg, "%s", lf_err_get());
            apply_batch(p->db, &p->cache, p->def, ev, bad, &newpos, NULL, NULL);
            lf_err_set("%s", msg);
        }
        pthread_mutex_unlock(&p->apply_mu);
        feed_put(ps, fb);
        if (stale) continue;
        pthread_mutex_lock(&p->mu);
        p->position = newpos;
        if (rc) {
            p->failed = 1;
            snprintf(p->error, sizeof p->error, "%s", lf_err_get());
            LF_ERROR("projection", "%s failed: %s", p->def->name, p->error);
        }
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->mu);
    }
    ckpt_flush(p);
    return NULL;
}

/* ---- lifecycle ---------------------------------------------------------------- */

/* Deletes files of generations other than keep and keep+1. */
static void gc_files(const char *dir, const char *name, int64_t keep)
{
    DIR *d = opendir(dir);
    if (!d) return;
    char prefix[128];
    snprintf(prefix, sizeof prefix, "proj-%s.", name);
    size_t pl = strlen(prefix);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, prefix, pl) != 0) continue;
        char *end;
        long long g = strtoll(e->d_name + pl, &end, 10);
        if (end == e->d_name + pl || strncmp(end, ".db", 3) != 0) continue;
        if (g == keep || g == keep + 1) continue;
        char *path = lf_asprintf("%s/%s", dir, e->d_name);
        unlink(path);
        free(path);
    }
    closedir(d);
}

static int proj_open(struct proj *p)
{
    struct lf_projections *ps = p->owner;
    const char *name = p->def->name;
    int rc = 0;
    int64_t gen = current_gen(ps->dir, name), v = 0, complete = 0;
    int fresh = gen == 0;
    if (fresh) {
        gen = 1;
        remove_gen_files(ps->dir, name, 1);
    }
    gc_files(ps->dir, name, gen);
    char *path = gen_path(ps->dir, name, gen);
    rc = open_writer(path, p->def, 1, 0, &p->db);
    if (rc == 0 && fresh) rc = set_current_gen(ps->dir, name, gen);
    if (rc) goto out;
    p->cache.db = p->db;
    p->gen = gen;
    meta_get(p->db, "version", &v);
    meta_get(p->db, "complete", &complete);
    if ((rc = meta_get(p->db, "position", &p->position))) {
        lf_err_set("%s: no checkpoint", path);
        goto out;
    }
    p->saved = p->position;
    char *next = gen_path(ps->dir, name, gen + 1);
    int has_next = access(next, F_OK) == 0;
    if (has_next) {
        /* A rebuild was under way: resume it if it is for this version. */
        sqlite3 *nd = NULL;
        int64_t nv = -1;
        if (sqlite3_open_v2(next, &nd, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK)
            meta_get(nd, "version", &nv);
        sqlite3_close(nd);
        if (nv != p->def->version) {
            remove_gen_files(ps->dir, name, gen + 1);
            has_next = 0;
        }
    }
    free(next);
    if (v != p->def->version) {
        LF_INFO("projection", "%s: version %lld -> %d: rebuilding", name, (long long)v,
                p->def->version);
        p->paused = 1;
    }
    if (p->paused || has_next) {
        if (has_next) LF_INFO("projection", "%s: resuming an interrupted rebuild", name);
        pthread_mutex_lock(&p->mu);
        rc = rebuild_start_locked(p);
        pthread_mutex_unlock(&p->mu);
    }
out:
    free(path);
    return rc;
}

lf_projections *lf_projections_start(lf_store *store, const char *dir,
                                     const lf_projection_def *const *defs, size_t n)
{
    lf_projections *ps = lf_xcalloc(1, sizeof *ps);
    ps->store = store;
    ps->dir = lf_strdup(dir);
    ps->p = lf_xcalloc(n ? n : 1, sizeof *ps->p);
    pthread_mutex_init(&ps->feed_mu, NULL);
    pthread_mutex_init(&ps->read_mu, NULL);
    pthread_mutex_init(&ps->pub_mu, NULL);
    pthread_cond_init(&ps->pub_cond, NULL);
    ps->gate_ok = strcmp(lf_store_backend(store), "sqlite") == 0;
    for (size_t i = 0; i < n; i++) {
        struct proj *p = &ps->p[i];
        p->def = defs[i];
        p->owner = ps;
        pthread_mutex_init(&p->apply_mu, NULL);
        pthread_mutex_init(&p->mu, NULL);
        pthread_cond_init(&p->cond, NULL);
        ps->n = i + 1;
        if (proj_open(p)) {
            char msg[512];
            snprintf(msg, sizeof msg, "projection %s: %s", p->def->name, lf_err_get());
            lf_projections_stop(ps);
            lf_err_set("%s", msg);
            return NULL;
        }
    }
    for (size_t i = 0; i < n; i++) {
        struct proj *p = &ps->p[i];
        if (pthread_create(&p->thread, NULL, live_thread, p)) {
            lf_projections_stop(ps);
            lf_err_set("cannot start projection threads");
            return NULL;
        }
        p->thread_started = 1;
    }
    return ps;
}

void lf_projections_stop(lf_projections *ps)
{
    if (!ps) return;
    atomic_store(&ps->stop, 1);
    for (size_t i = 0; i < ps->n; i++) {
        struct proj *p = &ps->p[i];
        if (p->thread_started) pthread_join(p->thread, NULL);
        if (p->rb_joinable) pthread_join(p->rb_thread, NULL);
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cond);
        for (int j = 0; j < p->nreaders; j++)
            sqlite3_close(p->readers[j].db);
        p->nreaders = 0;
        pthread_mutex_unlock(&p->mu);
        if (p->db) writer_close(&p->db, &p->cache);
        if (p->old_gen_pending) remove_gen_files(ps->dir, p->def->name, p->old_gen_pending);
        pthread_mutex_destroy(&p->apply_mu);
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cond);
    }
    feed_clear(ps);
    pthread_mutex_destroy(&ps->feed_mu);
    pthread_mutex_destroy(&ps->read_mu);
    pthread_mutex_destroy(&ps->pub_mu);
    pthread_cond_destroy(&ps->pub_cond);
    free(ps->p);
    free(ps->dir);
    free(ps);
}

int lf_projections_wait(lf_projections *ps, const char *name, int64_t pos, int timeout_ms)
{
    struct proj *p = find(ps, name);
    if (!p) return LF_ENOTFOUND;
    struct timespec ts;
    lf_abstime_us((int64_t)timeout_ms * 1000, &ts);
    int rc = 0;
    pthread_mutex_lock(&p->mu);
    p->waiters++;
    if (p->position < pos) {
        /* ends coalesce_wait, also for a pool-mode reader that only looks
         * (timeout 0) and is gone before the live thread runs */
        p->kick = 1;
        pthread_cond_broadcast(&p->cond);
    }
    while (p->position < pos && !atomic_load(&ps->stop)) {
        if (pthread_cond_timedwait(&p->cond, &p->mu, &ts) == ETIMEDOUT) {
            rc = p->position >= pos ? 0 : LF_ETIMEDOUT;
            break;
        }
    }
    if (p->position < pos && rc == 0) rc = LF_ETIMEDOUT;
    p->waiters--;
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int lf_projections_rebuild(lf_projections *ps, const char *name)
{
    struct proj *p = find(ps, name);
    if (!p) return LF_ENOTFOUND;
    pthread_mutex_lock(&p->mu);
    int rc = rebuild_start_locked(p);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

json_t *lf_projections_status(lf_projections *ps)
{
    json_t *arr = json_array();
    if (!ps) return arr;
    int64_t head = 0;
    lf_store_head(ps->store, &head);
    for (size_t i = 0; i < ps->n; i++) {
        struct proj *p = &ps->p[i];
        pthread_mutex_lock(&p->mu);
        const char *state = p->failed            ? "failed"
                            : p->paused          ? "rebuilding"
                            : p->position < head ? "catching_up"
                                                 : "live";
        int64_t lag = head > p->position ? head - p->position : 0;
        json_t *o = json_pack("{s:s,s:i,s:I,s:I,s:s,s:I}", "name", p->def->name, "version",
                              p->def->version, "position", (json_int_t)p->position, "lag",
                              (json_int_t)lag, "state", state, "generation", (json_int_t)p->gen);
        if (p->error[0]) json_object_set_new(o, "error", json_string(p->error));
        if (p->rb_active) {
            char ts[LF_TIME_LEN];
            json_object_set_new(o, "rebuild",
                                json_pack("{s:I,s:I,s:s,s:I}", "position",
                                          (json_int_t)p->rb_position, "target", (json_int_t)head,
                                          "started_at", lf_time_format(p->rb_started_ms, ts),
                                          "resumed_from", (json_int_t)p->rb_resumed_from));
            if (!p->paused) json_object_set_new(o, "state", json_string("rebuilding"));
        }
        if (p->last_rb_ms || p->last_rb_events) {
            double eps =
                p->last_rb_ms ? (double)p->last_rb_events * 1000.0 / (double)p->last_rb_ms : 0;
            json_object_set_new(o, "last_rebuild",
                                json_pack("{s:I,s:I,s:f}", "events", (json_int_t)p->last_rb_events,
                                          "ms", (json_int_t)p->last_rb_ms, "events_per_s", eps));
        }
        pthread_mutex_unlock(&p->mu);
        json_array_append_new(arr, o);
    }
    return arr;
}

/* ---- offline rebuild ------------------------------------------------------- */

int lf_projection_rebuild_offline(lf_store *store, const char *dir, const lf_projection_def *def)
{
    int rc;
    sqlite3 *db = NULL;
    struct stmt_cache cache = {0};
    int64_t gen = current_gen(dir, def->name);
    int64_t newgen = gen + 1, pos = 0, events = 0, resumed = 0, head = 0;
    char *path = gen_path(dir, def->name, newgen);
    char digest[65] = "";
    /* A leftover next generation of another version cannot be resumed. */
    if (access(path, F_OK) == 0) {
        sqlite3 *nd = NULL;
        int64_t nv = -1;
        if (sqlite3_open_v2(path, &nd, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK)
            meta_get(nd, "version", &nv);
        sqlite3_close(nd);
        if (nv != def->version) remove_gen_files(dir, def->name, newgen);
    }
    lf_store_head(store, &head);
    int64_t t0 = lf_mono_us();
    rc = rebuild_fill(store, path, def, NULL, NULL, NULL, &db, &cache, &pos, &resumed, &events);
    if (rc) goto out;
    double secs = (double)(lf_mono_us() - t0) / 1e6;
    if ((rc = meta_set(db, "complete", 1))) goto out;
    cache_clear(&cache);
    if ((rc = digest_db(db, digest))) goto out;
    sqlite3_close(db);
    db = NULL;
    if ((rc = set_current_gen(dir, def->name, newgen))) goto out;
    if (gen) remove_gen_files(dir, def->name, gen);
    printf("rebuilt %s: %lld events in %.3f s (%.0f events/s)%s, position %lld, digest %s\n",
           def->name, (long long)events, secs, secs > 0 ? (double)events / secs : 0.0,
           resumed ? " (resumed)" : "", (long long)pos, digest);
    fflush(stdout);
out:
    if (db) writer_close(&db, &cache);
    free(path);
    return rc;
}
