/*
 * store_sqlite.c — the embedded event store on SQLite (the default backend,
 * URL "sqlite:PATH").
 *
 * Schema (format 2; PRAGMA application_id marks the file as ours):
 *   streams(sid INTEGER PRIMARY KEY, name TEXT UNIQUE)
 *   batches(pos INTEGER PRIMARY KEY, sid, ver, n, body BLOB)
 *           + UNIQUE(sid, ver)
 *   ids(id BLOB PRIMARY KEY, pos) WITHOUT ROWID   — client-given ids only
 *   lf_meta(key TEXT PRIMARY KEY, value)          — the id tag
 *
 * One row per appended batch (a run of consecutive events of one stream):
 * the events at positions pos .. pos+n-1, versions ver .. ver+n-1, encoded
 * one after the other in body and compressed with zstd when that pays
 * (see "the body" below). A commit so writes a few pages per batch instead
 * of a row and two index entries per event — the whole point of format 2;
 * a batch larger than CHUNK_EVENTS events or CHUNK_BYTES bytes is split
 * into several consecutive rows of the same transaction.
 *
 * Event ids: an id the client gave goes into the ids index (so re-appending
 * it is recognised). An id the store makes itself needs no index entry: it
 * encodes where its event is — a UUID of version 8 carrying the append
 * time (ms, so ids still sort by time), this file's random 26-bit tag and
 * the event's position — so "is it stored?" is answered by reading that
 * one position. A client may re-append such an id (it is found there), but
 * may not invent one: an id of this store's form that is not where it
 * says is refused, so a generated id can never meet a client's copy.
 *
 * Writes: one writer connection. Appends from many threads are merged by
 * group commit: the first appender to find no commit in progress becomes
 * the leader, takes every queued batch, runs each in its own SAVEPOINT
 * (a conflicting batch rolls back alone) inside one transaction, commits
 * once (one fsync for all of them) and wakes the others.
 *
 * Durability: journal_mode=WAL, synchronous=FULL, so the WAL is fsynced at
 * every commit: an append that returned 0 survives kill -9 and power loss.
 *
 * Ordering: positions are assigned inside the single write transaction and
 * commits are serialised, so a reader always sees a prefix of the log: no
 * later position is ever visible before an earlier one.
 *
 * Reads: a pool of read-only connections (WAL readers never block the
 * writer). read_all first looks in the tail: the last events this
 * process committed, kept in memory (bounded), so the log's followers
 * (projections, the fleet, the registry: a hub has about eight) read what
 * was just appended without going through SQLite each; anything not in
 * the tail, or past a gap in it, comes from a reader connection, which
 * finds the row holding the first wanted position and decodes from there.
 *
 * Format 1 files (a row per event) are converted to format 2 when opened
 * for writing, in one transaction (all or nothing).
 */
#define _GNU_SOURCE
#include "store_int.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <xxhash.h>
#include <zstd.h>

#define APP_ID 0x4c464c54 /* "LFLT" */
#define FORMAT_VERSION 2
#define CHUNK_EVENTS 1024      /* events per batch row at most */
#define CHUNK_BYTES (1u << 20) /* raw body bytes per row (one bigger event alone) */
#define ZSTD_MIN 256           /* bodies shorter than this stay raw */
#define READERS 8
/* The default cap on how long a new group commit leader waits for the
 * appenders of the last group to queue again (sqlite:PATH?commit_delay_us=N). */
#define COMMIT_DELAY_US 200

typedef struct append_req {
    const char *stream;
    int64_t expected;
    const lf_event_in *evs;
    size_t n;
    lf_append_result *res;
    int rc;
    char err[256];
    int done;
    unsigned char (*ids)[16]; /* the ids written (apply_one), for the tail */
    int64_t now;              /* the time given to events without one */
    pthread_cond_t cond;      /* this appender's own wake-up */
    lf_append_cb cb;          /* append_async: called when done (no waiter) */
    void *cb_ctx;
    lf_append_result ares; /* append_async: res points here */
    struct append_req *next;
} append_req;

/* One event of the in-memory tail of the log. */
typedef struct {
    int64_t position, version, time_ms;
    unsigned char id[16];
    char *buf; /* stream\0type\0data\0meta\0, one allocation */
    size_t type_off, data_off, meta_off, len;
} tail_ev;

/* The tail: a ring of the last committed events, in position order.
 * Filled by the group commit leader after each successful COMMIT; read by
 * read_all. Positions in it only grow, but may have gaps (another process
 * wrote to the file): a read stops at a gap and SQLite answers for it. */
#define TAIL_EVENTS 131072     /* a power of two */
#define TAIL_BYTES (32u << 20) /* bound on the bytes of the events held */
typedef struct {
    pthread_rwlock_t lock;
    tail_ev *v;      /* TAIL_EVENTS slots */
    size_t start, n; /* oldest slot, count */
    size_t bytes;
} tail_ring;

/* A growable byte buffer for encoding/decoding bodies. */
typedef struct {
    unsigned char *p;
    size_t cap;
} bytes;

typedef struct {
    sqlite3 *db;
    int busy;
    /* Prepared once per connection (NULL until first use). */
    sqlite3_stmt *st_all, *st_stream, *st_sid, *st_name, *st_head, *st_ver;
    ZSTD_DCtx *dctx;
    bytes raw; /* a decompressed body */
} reader;

/* The writer's cache of streams: name -> (sid, version). Only the group
 * commit leader touches it (one at a time); it is updated after a batch's
 * inserts succeeded and dropped whole when a commit fails or another
 * connection wrote to the file (PRAGMA data_version moved). */
typedef struct {
    char *name; /* owned; NULL = empty slot */
    uint64_t hash;
    int64_t sid, version;
} stream_slot;

typedef struct {
    stream_slot *v;
    size_t n, cap; /* cap is a power of two */
} stream_cache;

/* The readers' cache sid -> name (a sid's name never changes, so entries
 * never go stale). Names live until close, so a pointer from it stays
 * valid without the lock. */
typedef struct {
    int64_t sid; /* 0 = empty */
    char *name;
} name_slot;

typedef struct {
    char *path;
    sqlite3 *wdb;
    sqlite3_stmt *st_stream_get, *st_stream_ins, *st_stream_ver, *st_batch_ins, *st_id_ins,
        *st_id_get, *st_batch_at;
    int64_t next_pos; /* the writer's next position (leader only) */
    uint32_t tag;     /* this file's id tag (26 bits) */
    ZSTD_CCtx *cctx;  /* leader only */
    ZSTD_DCtx *dctx;  /* leader only: duplicate checks of generated ids */
    bytes enc, zbuf, dec;
    pthread_mutex_t qlock;
    pthread_cond_t qcond; /* close waiting for the last leader */
    pthread_cond_t hcond; /* waiters for a new head */
    append_req *qhead, *qtail;
    int leader;
    int closing;
    /* Commit delay (see gather): a new leader waits, at most
     * min(commit_delay_us, the last commit's duration), until as many
     * appenders are queued as the last group had. */
    pthread_cond_t gcond; /* the gathering leader: one more queued */
    int qlen;             /* appenders queued */
    int last_group;       /* size of the last group committed */
    int gathering;        /* a leader waits in gcond */
    int64_t commit_delay_us, last_commit_us;
    /* append_async: a committer thread (started at the first one) leads
     * the groups whose first member has no thread waiting. */
    pthread_t committer;
    int committer_started;
    pthread_cond_t ccond;
    /* ... and an acknowledger thread (started with it) runs their
     * callbacks, group after group in commit order, off the commit path:
     * the next group commits meanwhile, and no leader ever runs a caller's
     * callback (which may wait for a lock whose holder waits for a lead). */
    pthread_t acker;
    int acker_started, acker_stop; /* acker_stop under qlock */
    pthread_cond_t acond;
    append_req *ahead, **atail; /* committed async requests, in order; qlock */
    _Atomic int64_t head;
    pthread_mutex_t rlock;
    pthread_cond_t rcond;
    reader readers[READERS];
    stream_cache streams;
    sqlite3_stmt *st_sp, *st_sp_release, *st_sp_rollback, *st_data_version;
    int64_t data_version;
    pthread_mutex_t nlock;
    name_slot *names;
    size_t nnames, capnames;
    lf_sqlite_leases *leases; /* store_sqlite_lease.c */
    tail_ring tail;
} sq_store;

static int sq_err(sqlite3 *db, const char *what)
{
    lf_err_set("sqlite: %s: %s", what, sqlite3_errmsg(db));
    int ec = sqlite3_errcode(db);
    if (ec == SQLITE_NOTADB || ec == SQLITE_CORRUPT) return LF_ECORRUPT;
    return LF_EIO;
}

static int exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        lf_err_set("sqlite: %s: %s", sql, msg ? msg : "?");
        int ec = sqlite3_errcode(db);
        sqlite3_free(msg);
        return (ec == SQLITE_NOTADB || ec == SQLITE_CORRUPT) ? LF_ECORRUPT : LF_EIO;
    }
    return 0;
}

static int query_int(sqlite3 *db, const char *sql, int64_t *out)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return sq_err(db, sql);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        *out = 0;
        rc = 0;
    } else {
        rc = sq_err(db, sql);
    }
    sqlite3_finalize(st);
    return rc;
}

static int uuid_to_blob(const char *s, unsigned char out[16])
{
    char hex[33];
    int j = 0;
    for (int i = 0; s[i] && j < 32; i++)
        if (s[i] != '-') hex[j++] = s[i];
    hex[j] = '\0';
    size_t bl;
    if (sodium_hex2bin(out, 16, hex, 32, NULL, &bl, NULL) != 0 || bl != 16) return LF_EINVAL;
    return 0;
}

static void blob_to_uuid(const unsigned char *b, int n, char out[LF_UUID_LEN])
{
    if (n == 16)
        lf_uuid_text(b, out);
    else
        out[0] = '\0';
}

/* A canonical UUID (checked by lf_store_validate) into 16 bytes. */
static void uuid_parse16(const char *u, unsigned char out[16])
{
    int j = 0;
    for (const char *p = u; *p && j < 32; p++) {
        char c = *p;
        if (c == '-') continue;
        unsigned d = c <= '9' ? (unsigned)(c - '0') : (unsigned)((c | 0x20) - 'a' + 10);
        if (j & 1)
            out[j >> 1] = (unsigned char)(out[j >> 1] | d);
        else
            out[j >> 1] = (unsigned char)(d << 4);
        j++;
    }
}

/* Ids for a batch that will start at position first: the given ones
 * parsed, the missing ones generated (see "Event ids" at the top; lf_store_gen_id). */
static void batch_ids(const lf_event_in *evs, size_t n, uint32_t tag, int64_t first,
                      unsigned char (*ids)[16])
{
    uint64_t ms = (uint64_t)lf_now_ms();
    for (size_t i = 0; i < n; i++) {
        if (evs[i].id && *evs[i].id)
            uuid_parse16(evs[i].id, ids[i]);
        else
            lf_store_gen_id(ids[i], ms, tag, first + (int64_t)i);
    }
}

/* ---- the writer's stream cache ---------------------------------------- */
static stream_slot *scache_find(stream_cache *c, const char *name, uint64_t h)
{
    if (!c->cap) return NULL;
    for (size_t i = h & (c->cap - 1);; i = (i + 1) & (c->cap - 1)) {
        stream_slot *sl = &c->v[i];
        if (!sl->name) return NULL;
        if (sl->hash == h && strcmp(sl->name, name) == 0) return sl;
    }
}

static void scache_put(stream_cache *c, const char *name, uint64_t h, int64_t sid, int64_t ver)
{
    if ((c->n + 1) * 2 > c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 1024;
        stream_slot *nv = lf_xcalloc(nc, sizeof *nv);
        for (size_t i = 0; i < c->cap; i++)
            if (c->v[i].name) {
                size_t j = c->v[i].hash & (nc - 1);
                while (nv[j].name)
                    j = (j + 1) & (nc - 1);
                nv[j] = c->v[i];
            }
        free(c->v);
        c->v = nv;
        c->cap = nc;
    }
    size_t i = h & (c->cap - 1);
    while (c->v[i].name)
        i = (i + 1) & (c->cap - 1);
    c->v[i] = (stream_slot){.name = lf_strdup(name), .hash = h, .sid = sid, .version = ver};
    c->n++;
}

static void scache_clear(stream_cache *c)
{
    for (size_t i = 0; i < c->cap; i++)
        free(c->v[i].name);
    free(c->v);
    memset(c, 0, sizeof *c);
}

static int open_conn(const char *path, int readonly, sqlite3 **out)
{
    int flags = readonly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    flags |= SQLITE_OPEN_NOMUTEX;
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
        int rc = sq_err(db, "open");
        sqlite3_close(db);
        return rc;
    }
    sqlite3_busy_timeout(db, 10000);
    sqlite3_extended_result_codes(db, 0);
    *out = db;
    return 0;
}

/* Prepared by prepare_all, or earlier by migrate_v1 (which needs it first). */
#define BATCH_INS_SQL "INSERT INTO batches(pos, sid, ver, n, body) VALUES(?,?,?,?,?)"

static const char *SCHEMA =
    "CREATE TABLE IF NOT EXISTS streams(sid INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
    "CREATE TABLE IF NOT EXISTS batches(pos INTEGER PRIMARY KEY, sid INTEGER NOT NULL,"
    " ver INTEGER NOT NULL, n INTEGER NOT NULL, body BLOB NOT NULL);"
    "CREATE UNIQUE INDEX IF NOT EXISTS batches_stream ON batches(sid, ver);"
    "CREATE TABLE IF NOT EXISTS ids(id BLOB PRIMARY KEY, pos INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS lf_meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
    /* Immutability enforced in the file itself, not only by our code. */
    "CREATE TRIGGER IF NOT EXISTS batches_no_update BEFORE UPDATE ON batches"
    " BEGIN SELECT RAISE(ABORT, 'events are immutable'); END;"
    "CREATE TRIGGER IF NOT EXISTS batches_no_delete BEFORE DELETE ON batches"
    " BEGIN SELECT RAISE(ABORT, 'events are immutable'); END;"
    "CREATE TRIGGER IF NOT EXISTS ids_no_update BEFORE UPDATE ON ids"
    " BEGIN SELECT RAISE(ABORT, 'events are immutable'); END;"
    "CREATE TRIGGER IF NOT EXISTS ids_no_delete BEFORE DELETE ON ids"
    " BEGIN SELECT RAISE(ABORT, 'events are immutable'); END;";

static int bytes_reserve(bytes *b, size_t n)
{
    if (n <= b->cap) return 0;
    size_t c = b->cap ? b->cap : 4096;
    while (c < n)
        c *= 2;
    unsigned char *p = realloc(b->p, c);
    if (!p) {
        lf_err_set("out of memory (%zu bytes)", c);
        return LF_ENOMEM;
    }
    b->p = p;
    b->cap = c;
    return 0;
}

/* ---- the body ----------------------------------------------------------
 * body := codec byte, then
 *   codec 0: the events;  codec 1: u32 length of the events, a zstd frame
 * events := per event: id[16] time_ms[8] type_len[4] data_len[4]
 *           meta_len[4] type data meta   (integers little-endian; texts
 *           without their NUL). */
#define EV_HDR 36

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_i64(unsigned char *p, int64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)((uint64_t)v >> (8 * i));
}

static int64_t get_i64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return (int64_t)v;
}

/* One event of a decoded body (pointers into the body). */
typedef struct {
    const unsigned char *id;
    int64_t time_ms;
    const char *type, *data, *meta;
    size_t tlen, dlen, mlen;
} ev_view;

/* The next event of a body; 0, or LF_ECORRUPT when it runs past the end. */
static int ev_next(const unsigned char **p, const unsigned char *end, ev_view *v)
{
    if ((size_t)(end - *p) < EV_HDR) goto bad;
    const unsigned char *h = *p;
    v->id = h;
    v->time_ms = get_i64(h + 16);
    v->tlen = get_u32(h + 24);
    v->dlen = get_u32(h + 28);
    v->mlen = get_u32(h + 32);
    size_t rest = (size_t)(end - h) - EV_HDR;
    if (v->tlen > rest || v->dlen > rest - v->tlen || v->mlen > rest - v->tlen - v->dlen) goto bad;
    v->type = (const char *)h + EV_HDR;
    v->data = v->type + v->tlen;
    v->meta = v->data + v->dlen;
    *p = (const unsigned char *)v->meta + v->mlen;
    return 0;
bad:
    lf_err_set("sqlite: an event body is truncated or damaged");
    return LF_ECORRUPT;
}

/* The events of a stored body: *ev and *evlen point into blob (raw) or
 * into scratch (decompressed). */
static int body_open(ZSTD_DCtx *dctx, bytes *scratch, const unsigned char *blob, size_t len,
                     const unsigned char **ev, size_t *evlen)
{
    if (len >= 1 && blob[0] == 0) {
        *ev = blob + 1;
        *evlen = len - 1;
        return 0;
    }
    if (len >= 5 && blob[0] == 1) {
        size_t want = get_u32(blob + 1);
        int rc = bytes_reserve(scratch, want ? want : 1);
        if (rc) return rc;
        size_t got = ZSTD_decompressDCtx(dctx, scratch->p, want, blob + 5, len - 5);
        if (!ZSTD_isError(got) && got == want) {
            *ev = scratch->p;
            *evlen = want;
            return 0;
        }
    }
    lf_err_set("sqlite: an event body cannot be decoded (codec %d, %zu bytes)", len ? blob[0] : -1,
               len);
    return LF_ECORRUPT;
}

/* Format 1 (a row per event) to format 2, inside the caller's write
 * transaction: every run of consecutive events of one stream becomes
 * batch rows; every id goes into the ids index (format 1 does not say
 * which ids were made by the store). */
static int migrate_v1(sq_store *s);

static int check_or_init(sq_store *s, char *err, size_t errlen)
{
    int64_t app = 0, nobj = 0, uv = 0;
    int rc = query_int(s->wdb, "PRAGMA application_id", &app);
    if (!rc) rc = query_int(s->wdb, "SELECT count(*) FROM sqlite_master", &nobj);
    if (rc) {
        snprintf(err, errlen, "%s is not a lockerfleet event store (or is damaged): %s", s->path,
                 lf_err_get());
        return LF_ECORRUPT;
    }
    if (nobj > 0 && app != APP_ID) {
        snprintf(err, errlen, "%s is an SQLite database but not a lockerfleet event store",
                 s->path);
        return LF_ECORRUPT;
    }
    if (nobj > 0) {
        query_int(s->wdb, "PRAGMA user_version", &uv);
        if (uv != FORMAT_VERSION && uv != 1) {
            snprintf(err, errlen, "%s has store format %lld, this build reads 1 and %d", s->path,
                     (long long)uv, FORMAT_VERSION);
            return LF_ECORRUPT;
        }
        /* A quick structural check catches truncated or overwritten files. */
        sqlite3_stmt *st = NULL;
        int qc = sqlite3_prepare_v2(s->wdb, "PRAGMA quick_check(1)", -1, &st, NULL);
        if (qc == SQLITE_OK) qc = sqlite3_step(st);
        const char *what =
            qc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : sqlite3_errmsg(s->wdb);
        if (qc != SQLITE_ROW || !what || strcmp(what, "ok") != 0) {
            snprintf(err, errlen, "%s is damaged (integrity check failed: %s)", s->path,
                     what ? what : "?");
            for (char *c = err; *c; c++)
                if (*c == '\n') *c = ' ';
            sqlite3_finalize(st);
            return LF_ECORRUPT;
        }
        sqlite3_finalize(st);
    }
    if ((rc = exec(s->wdb, "PRAGMA journal_mode=WAL")) ||
        (rc = exec(s->wdb, "PRAGMA synchronous=FULL"))) {
        snprintf(err, errlen, "%s: %s", s->path, lf_err_get());
        return rc;
    }
    exec(s->wdb, "PRAGMA cache_size=-65536");
    exec(s->wdb, "PRAGMA wal_autocheckpoint=1000");
    if (nobj == 0 || uv == 1) {
        uint32_t tag = lf_store_new_id_tag();
        char sql[256];
        snprintf(sql, sizeof sql,
                 "PRAGMA application_id=%d; PRAGMA user_version=%d;"
                 "INSERT OR IGNORE INTO lf_meta VALUES('id_tag', %u);",
                 APP_ID, FORMAT_VERSION, (unsigned)tag);
        if ((rc = exec(s->wdb, "BEGIN IMMEDIATE"))) goto init_fail;
        if ((rc = exec(s->wdb, SCHEMA)) || (uv == 1 && (rc = migrate_v1(s))) ||
            (rc = exec(s->wdb, sql)) || (rc = exec(s->wdb, "COMMIT"))) {
            exec(s->wdb, "ROLLBACK");
            goto init_fail;
        }
        if (uv == 1)
            LF_INFO("store", "%s: converted from store format 1 to %d", s->path, FORMAT_VERSION);
    }
    int64_t tag = -1;
    if ((rc = query_int(s->wdb, "SELECT value FROM lf_meta WHERE key='id_tag'", &tag))) {
        snprintf(err, errlen, "%s: %s", s->path, lf_err_get());
        return rc;
    }
    if (tag < 0 || tag >= (1 << 26)) {
        snprintf(err, errlen, "%s is damaged (id tag %lld)", s->path, (long long)tag);
        return LF_ECORRUPT;
    }
    s->tag = (uint32_t)tag;
    return 0;
init_fail:
    snprintf(err, errlen, "%s: %s the schema: %s", s->path,
             uv == 1 ? "converting from format 1 to" : "creating", lf_err_get());
    return rc;
}

static int prepare_all(sq_store *s)
{
    struct {
        sqlite3_stmt **st;
        const char *sql;
    } list[] = {
        {&s->st_stream_get, "SELECT sid FROM streams WHERE name=?"},
        {&s->st_stream_ins, "INSERT INTO streams(name) VALUES(?)"},
        {&s->st_stream_ver,
         "SELECT ver + n - 1 FROM batches WHERE sid=? ORDER BY ver DESC LIMIT 1"},
        {&s->st_batch_ins, BATCH_INS_SQL},
        {&s->st_id_ins, "INSERT INTO ids(id, pos) VALUES(?,?)"},
        {&s->st_id_get, "SELECT pos FROM ids WHERE id=?"},
        /* The row holding a position. */
        {&s->st_batch_at, "SELECT pos, sid, ver, n, body FROM batches WHERE pos <= ?"
                          " ORDER BY pos DESC LIMIT 1"},
        {&s->st_sp, "SAVEPOINT b"},
        {&s->st_sp_release, "RELEASE b"},
        {&s->st_sp_rollback, "ROLLBACK TO b"},
        {&s->st_data_version, "PRAGMA data_version"},
    };
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
        if (!*list[i].st && sqlite3_prepare_v3(s->wdb, list[i].sql, -1, SQLITE_PREPARE_PERSISTENT,
                                               list[i].st, NULL) != SQLITE_OK)
            return sq_err(s->wdb, list[i].sql);
    return 0;
}

#define HEAD_SQL "SELECT pos + n - 1 FROM batches ORDER BY pos DESC LIMIT 1"

static void sq_close(void *impl);

static int sq_open(const char *url, void **impl, char *err, size_t errlen)
{
    const char *path = url + strlen("sqlite:");
    if (strncmp(path, "//", 2) == 0) path += 2;
    /* Options after '?': commit_delay_us=N (0 turns the delay off). */
    int64_t delay_us = COMMIT_DELAY_US;
    const char *q = strchr(path, '?');
    if (q) {
        const char *opt = q + 1;
        char *end = NULL;
        if (strncmp(opt, "commit_delay_us=", 16) == 0) {
            errno = 0;
            long long v = strtoll(opt + 16, &end, 10);
            if (errno || end == opt + 16 || *end || v < 0 || v > 100000) end = NULL;
            delay_us = v;
        }
        if (!end) {
            snprintf(err, errlen,
                     "sqlite store URL option '%s' is not understood (want "
                     "commit_delay_us=N, 0..100000)",
                     opt);
            return LF_EINVAL;
        }
    }
    size_t plen = q ? (size_t)(q - path) : strlen(path);
    if (!plen) {
        snprintf(err, errlen, "sqlite store URL has no path (want sqlite:PATH)");
        return LF_EINVAL;
    }
    sq_store *s = lf_xcalloc(1, sizeof *s);
    s->path = lf_xmalloc(plen + 1);
    memcpy(s->path, path, plen);
    s->path[plen] = 0;
    path = s->path;
    s->commit_delay_us = delay_us;
    pthread_mutex_init(&s->qlock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->gcond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&s->ccond, NULL);
    pthread_cond_init(&s->acond, NULL);
    s->atail = &s->ahead;
    pthread_cond_init(&s->qcond, NULL);
    pthread_cond_init(&s->hcond, NULL);
    pthread_mutex_init(&s->rlock, NULL);
    pthread_cond_init(&s->rcond, NULL);
    pthread_mutex_init(&s->nlock, NULL);
    pthread_rwlock_init(&s->tail.lock, NULL);
    s->tail.v = lf_xcalloc(TAIL_EVENTS, sizeof *s->tail.v);
    s->data_version = -1;
    int rc = open_conn(path, 0, &s->wdb);
    if (rc) {
        snprintf(err, errlen, "cannot open %s: %s", path, lf_err_get());
        goto fail;
    }
    s->cctx = ZSTD_createCCtx();
    s->dctx = ZSTD_createDCtx();
    if (!s->cctx || !s->dctx) {
        snprintf(err, errlen, "%s: out of memory (zstd)", path);
        rc = LF_ENOMEM;
        goto fail;
    }
    ZSTD_CCtx_setParameter(s->cctx, ZSTD_c_compressionLevel, 1);
    if ((rc = check_or_init(s, err, errlen))) goto fail;
    if ((rc = prepare_all(s))) {
        snprintf(err, errlen, "%s: %s", path, lf_err_get());
        goto fail;
    }
    int64_t h = 0;
    if ((rc = query_int(s->wdb, HEAD_SQL, &h))) {
        snprintf(err, errlen, "%s: %s", path, lf_err_get());
        goto fail;
    }
    atomic_store(&s->head, h);
    s->next_pos = h + 1;
    s->leases = lf_sqlite_leases_new(path);
    *impl = s;
    return 0;
fail:
    sq_close(s);
    return rc;
}

static void sq_close(void *impl)
{
    sq_store *s = impl;
    if (!s) return;
    pthread_mutex_lock(&s->qlock);
    s->closing = 1;
    pthread_cond_signal(&s->gcond);
    pthread_cond_broadcast(&s->ccond);
    if (s->committer_started) { /* it commits what is queued, then ends */
        pthread_mutex_unlock(&s->qlock);
        pthread_join(s->committer, NULL);
        pthread_mutex_lock(&s->qlock);
        s->committer_started = 0;
    }
    while (s->leader)
        pthread_cond_wait(&s->qcond, &s->qlock);
    pthread_cond_broadcast(&s->hcond);
    if (s->acker_started) { /* no group is committed after this: it acks the rest, then ends */
        s->acker_stop = 1;
        pthread_cond_signal(&s->acond);
        pthread_mutex_unlock(&s->qlock);
        pthread_join(s->acker, NULL);
        pthread_mutex_lock(&s->qlock);
        s->acker_started = 0;
    }
    pthread_mutex_unlock(&s->qlock);
    sqlite3_stmt *sts[] = {s->st_stream_get, s->st_stream_ins,  s->st_stream_ver,  s->st_batch_ins,
                           s->st_id_ins,     s->st_id_get,      s->st_batch_at,    s->st_sp,
                           s->st_sp_release, s->st_sp_rollback, s->st_data_version};
    for (size_t i = 0; i < sizeof sts / sizeof sts[0]; i++)
        sqlite3_finalize(sts[i]);
    for (int i = 0; i < READERS; i++) {
        reader *r = &s->readers[i];
        sqlite3_stmt *rs[] = {r->st_all,  r->st_stream, r->st_sid,
                              r->st_name, r->st_head,   r->st_ver};
        for (size_t k = 0; k < sizeof rs / sizeof rs[0]; k++)
            sqlite3_finalize(rs[k]);
        if (r->db) sqlite3_close(r->db);
        ZSTD_freeDCtx(r->dctx);
        free(r->raw.p);
    }
    ZSTD_freeCCtx(s->cctx);
    ZSTD_freeDCtx(s->dctx);
    free(s->enc.p);
    free(s->zbuf.p);
    free(s->dec.p);
    scache_clear(&s->streams);
    for (size_t i = 0; i < s->capnames; i++)
        free(s->names[i].name);
    free(s->names);
    lf_sqlite_leases_free(s->leases);
    for (size_t i = 0; i < s->tail.n; i++)
        free(s->tail.v[(s->tail.start + i) & (TAIL_EVENTS - 1)].buf);
    free(s->tail.v);
    pthread_rwlock_destroy(&s->tail.lock);
    pthread_mutex_destroy(&s->nlock);
    if (s->wdb) sqlite3_close(s->wdb);
    pthread_mutex_destroy(&s->qlock);
    pthread_cond_destroy(&s->qcond);
    pthread_cond_destroy(&s->gcond);
    pthread_cond_destroy(&s->ccond);
    pthread_cond_destroy(&s->acond);
    pthread_cond_destroy(&s->hcond);
    pthread_mutex_destroy(&s->rlock);
    pthread_cond_destroy(&s->rcond);
    free(s->path);
    free(s);
}

/* Where is an id stored? 1 = found (*pos, *sid, *ver), 0 = not stored,
 * 2 = of this store's generated form but not stored, <0 = error. Runs on
 * the writer's connection, inside the write transaction. */
static int id_find(sq_store *s, const unsigned char id[16], int64_t *pos, int64_t *sid,
                   int64_t *ver)
{
    int64_t gp = lf_store_gen_id_pos(id, s->tag), p = gp;
    int rc;
    if (!gp) {
        sqlite3_stmt *st = s->st_id_get;
        sqlite3_bind_blob(st, 1, id, 16, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) p = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
        if (rc == SQLITE_DONE) return 0;
        if (rc != SQLITE_ROW) return sq_err(s->wdb, "id lookup");
    }
    sqlite3_stmt *st = s->st_batch_at;
    sqlite3_bind_int64(st, 1, p);
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        if (rc != SQLITE_DONE) return sq_err(s->wdb, "id lookup");
        goto absent;
    }
    int64_t bpos = sqlite3_column_int64(st, 0), bn = sqlite3_column_int64(st, 3);
    *sid = sqlite3_column_int64(st, 1);
    *ver = sqlite3_column_int64(st, 2) + (p - bpos);
    *pos = p;
    if (p >= bpos + bn) {
        sqlite3_reset(st);
        goto absent;
    }
    rc = 1;
    if (gp) { /* is that event's id this one? */
        const unsigned char *blob = sqlite3_column_blob(st, 4), *ev;
        size_t evlen;
        rc = body_open(s->dctx, &s->dec, blob, (size_t)sqlite3_column_bytes(st, 4), &ev, &evlen);
        const unsigned char *end = ev + evlen;
        ev_view v = {0};
        for (int64_t i = 0; !rc && i <= p - bpos; i++)
            rc = ev_next(&ev, end, &v);
        if (!rc) rc = memcmp(v.id, id, 16) == 0 ? 1 : 2;
    }
    sqlite3_reset(st);
    return rc;
absent:
    if (gp) return 2;
    lf_err_set("sqlite: id index names position %lld, which holds no event", (long long)p);
    return LF_ECORRUPT;
}

/* Is the batch already stored in stream sid (0: the stream is new)?
 * 1 = yes (res filled), 0 = its first id is new (or it has none),
 * negative = error (LF_EEXIST when only part of it is, or elsewhere).
 * Runs inside the write transaction. */
static int check_duplicate(sq_store *s, append_req *r, int64_t sid)
{
    const lf_event_in *e0 = &r->evs[0];
    if (!e0->id || !*e0->id) return 0;
    int64_t first = 0, last = 0, lastv = 0;
    for (size_t i = 0; i < r->n; i++) {
        unsigned char b[16];
        if (!r->evs[i].id || !*r->evs[i].id || uuid_to_blob(r->evs[i].id, b)) {
            if (i == 0) return 0;
            snprintf(r->err, sizeof r->err, "event %zu: batch partly stored already", i);
            return LF_EEXIST;
        }
        int64_t pos = 0, esid = 0, ver = 0;
        int rc = id_find(s, b, &pos, &esid, &ver);
        if (rc < 0) return rc;
        if (rc != 1) {
            if (i == 0) return 0; /* new (a made-up id of our form: apply_one says so) */
            snprintf(r->err, sizeof r->err, "event %zu: batch partly stored already", i);
            return LF_EEXIST;
        }
        if (esid != sid || (i > 0 && pos != last + 1)) {
            snprintf(r->err, sizeof r->err,
                     "event %zu: id already stored in another stream or order", i);
            return LF_EEXIST;
        }
        if (i == 0) first = pos;
        last = pos;
        lastv = ver;
    }
    r->res->first_position = first;
    r->res->last_position = last;
    r->res->last_version = lastv;
    r->res->duplicate = 1;
    return 1;
}

static int step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : rc;
}

/* One batch row: the events [from, to) of r, encoded in s->enc (whose
 * first byte is the codec), at position pos and version ver. */
static int insert_row(sq_store *s, int64_t sid, int64_t pos, int64_t ver, int64_t n, size_t len)
{
    const unsigned char *body = s->enc.p;
    size_t blen = len;
    if (len >= ZSTD_MIN) {
        size_t bound = ZSTD_compressBound(len - 1) + 5;
        int rc = bytes_reserve(&s->zbuf, bound);
        if (rc) return rc;
        size_t z = ZSTD_compress2(s->cctx, s->zbuf.p + 5, bound - 5, s->enc.p + 1, len - 1);
        if (!ZSTD_isError(z) && z + 5 < len) {
            s->zbuf.p[0] = 1;
            put_u32(s->zbuf.p + 1, (uint32_t)(len - 1));
            body = s->zbuf.p;
            blen = z + 5;
        }
    }
    sqlite3_stmt *st = s->st_batch_ins;
    sqlite3_bind_int64(st, 1, pos);
    sqlite3_bind_int64(st, 2, sid);
    sqlite3_bind_int64(st, 3, ver);
    sqlite3_bind_int64(st, 4, n);
    sqlite3_bind_blob(st, 5, body, (int)blen, SQLITE_STATIC);
    if (step_done(st)) return sq_err(s->wdb, "batch insert");
    return 0;
}

/* Appends one event to s->enc at *len. */
static int enc_event(sq_store *s, size_t *len, const unsigned char id[16], int64_t time_ms,
                     const char *type, size_t tl, const char *data, size_t dl, const char *meta,
                     size_t ml)
{
    int rc = bytes_reserve(&s->enc, *len + EV_HDR + tl + dl + ml);
    if (rc) return rc;
    unsigned char *p = s->enc.p + *len;
    memcpy(p, id, 16);
    put_i64(p + 16, time_ms);
    put_u32(p + 24, (uint32_t)tl);
    put_u32(p + 28, (uint32_t)dl);
    put_u32(p + 32, (uint32_t)ml);
    memcpy(p + EV_HDR, type, tl);
    memcpy(p + EV_HDR + tl, data, dl);
    memcpy(p + EV_HDR + tl + dl, meta, ml);
    *len += EV_HDR + tl + dl + ml;
    return 0;
}

static int migrate_v1(sq_store *s)
{
    int rc;
    if ((rc = exec(s->wdb, "DROP TRIGGER IF EXISTS events_no_update;"
                           "DROP TRIGGER IF EXISTS events_no_delete;"
                           "ALTER TABLE streams DROP COLUMN version;"
                           "INSERT INTO ids(id, pos) SELECT id, position FROM events;")))
        return rc;
    if (!s->st_batch_ins && sqlite3_prepare_v3(s->wdb, BATCH_INS_SQL, -1, SQLITE_PREPARE_PERSISTENT,
                                               &s->st_batch_ins, NULL) != SQLITE_OK)
        return sq_err(s->wdb, "prepare");
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->wdb,
                           "SELECT position, sid, version, id, type, time, data, meta FROM events"
                           " ORDER BY position",
                           -1, &st, NULL) != SQLITE_OK)
        return sq_err(s->wdb, "prepare");
    if ((rc = bytes_reserve(&s->enc, 4096))) goto out;
    int64_t bpos = 0, bsid = 0, bver = 0, bn = 0;
    size_t len = 1;
    s->enc.p[0] = 0;
    int sr;
    while ((sr = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t pos = sqlite3_column_int64(st, 0), sid = sqlite3_column_int64(st, 1);
        int64_t ver = sqlite3_column_int64(st, 2);
        const unsigned char *id = sqlite3_column_blob(st, 3);
        const char *type = (const char *)sqlite3_column_text(st, 4);
        size_t tl = (size_t)sqlite3_column_bytes(st, 4);
        int64_t t = sqlite3_column_int64(st, 5);
        const char *data = (const char *)sqlite3_column_text(st, 6);
        size_t dl = (size_t)sqlite3_column_bytes(st, 6);
        const char *meta = (const char *)sqlite3_column_text(st, 7);
        size_t ml = (size_t)sqlite3_column_bytes(st, 7);
        if (!id || sqlite3_column_bytes(st, 3) != 16 || !type || !data || !meta) {
            lf_err_set("sqlite: format 1 event %lld is damaged", (long long)pos);
            rc = LF_ECORRUPT;
            goto out;
        }
        size_t need = EV_HDR + tl + dl + ml;
        if (bn && (sid != bsid || pos != bpos + bn || ver != bver + bn || bn == CHUNK_EVENTS ||
                   len + need > CHUNK_BYTES)) {
            if ((rc = insert_row(s, bsid, bpos, bver, bn, len))) goto out;
            bn = 0;
            len = 1;
        }
        if (!bn) {
            bpos = pos;
            bsid = sid;
            bver = ver;
        }
        if ((rc = enc_event(s, &len, id, t, type, tl, data, dl, meta, ml))) goto out;
        bn++;
    }
    if (sr != SQLITE_DONE) {
        rc = sq_err(s->wdb, "reading format 1 events");
        goto out;
    }
    if (bn && (rc = insert_row(s, bsid, bpos, bver, bn, len))) goto out;
    rc = exec(s->wdb, "DROP TABLE events");
out:
    sqlite3_finalize(st);
    return rc;
}

/* One batch inside the open transaction. */
static int apply_one(sq_store *s, append_req *r)
{
    uint64_t h = XXH3_64bits(r->stream, strlen(r->stream));
    stream_slot *sl = scache_find(&s->streams, r->stream, h);
    int64_t sid = 0, ver = 0;
    int rc;
    if (sl) {
        sid = sl->sid;
        ver = sl->version;
    } else {
        sqlite3_stmt *st = s->st_stream_get;
        sqlite3_bind_text(st, 1, r->stream, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) sid = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) return sq_err(s->wdb, "stream lookup");
        if (sid) {
            st = s->st_stream_ver;
            sqlite3_bind_int64(st, 1, sid);
            rc = sqlite3_step(st);
            if (rc == SQLITE_ROW) ver = sqlite3_column_int64(st, 0);
            sqlite3_reset(st);
            if (rc != SQLITE_ROW && rc != SQLITE_DONE) return sq_err(s->wdb, "stream version");
        }
    }
    rc = check_duplicate(s, r, sid);
    if (rc < 0) return rc;
    if (rc == 1) return 0;
    if (r->expected == LF_EXPECT_NO_STREAM && ver > 0) {
        snprintf(r->err, sizeof r->err, "stream '%s' exists (version %lld), expected none",
                 r->stream, (long long)ver);
        return LF_ECONFLICT;
    }
    if (r->expected >= 1 && r->expected != ver) {
        snprintf(r->err, sizeof r->err, "stream '%s' is at version %lld, expected %lld", r->stream,
                 (long long)ver, (long long)r->expected);
        return LF_ECONFLICT;
    }
    if (!sid) {
        sqlite3_bind_text(s->st_stream_ins, 1, r->stream, -1, SQLITE_STATIC);
        if (step_done(s->st_stream_ins)) return sq_err(s->wdb, "stream insert");
        sid = sqlite3_last_insert_rowid(s->wdb);
    }
    int64_t first = s->next_pos;
    unsigned char(*ids)[16] = lf_xmalloc(r->n * 16);
    batch_ids(r->evs, r->n, s->tag, first, ids);
    int64_t now = lf_now_ms();
    free(r->ids);
    r->ids = ids; /* freed by sq_append, after the tail has them */
    r->now = now;
    /* Ids the client gave: into the index (a stored one is a conflict). */
    for (size_t i = 0; i < r->n; i++) {
        if (!r->evs[i].id || !*r->evs[i].id) continue;
        if (lf_store_gen_id_pos(ids[i], s->tag)) {
            int64_t p, xs, xv;
            rc = id_find(s, ids[i], &p, &xs, &xv);
            if (rc < 0) return rc;
            if (rc == 1) {
                snprintf(r->err, sizeof r->err, "event %zu: id already stored", i);
                return LF_EEXIST;
            }
            snprintf(r->err, sizeof r->err,
                     "event %zu: id %s has the form of the ids this store makes itself, but no"
                     " stored event has it (such ids cannot be chosen by a client)",
                     i, r->evs[i].id);
            return LF_EINVAL;
        }
        sqlite3_stmt *st = s->st_id_ins;
        sqlite3_bind_blob(st, 1, ids[i], 16, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, first + (int64_t)i);
        int sr = sqlite3_step(st);
        sqlite3_reset(st);
        if (sr != SQLITE_DONE) {
            if (sqlite3_errcode(s->wdb) == SQLITE_CONSTRAINT) {
                snprintf(r->err, sizeof r->err, "event %zu: id already stored", i);
                return LF_EEXIST;
            }
            return sq_err(s->wdb, "id insert");
        }
    }
    /* The events, in rows of at most CHUNK_EVENTS / CHUNK_BYTES. */
    size_t start = 0, len = 1;
    if ((rc = bytes_reserve(&s->enc, 4096))) return rc;
    s->enc.p[0] = 0;
    for (size_t i = 0; i < r->n; i++) {
        const lf_event_in *e = &r->evs[i];
        const char *meta = e->meta ? e->meta : "{}";
        size_t tl = strlen(e->type), dl = strlen(e->data), ml = strlen(meta);
        size_t need = EV_HDR + tl + dl + ml;
        if (i > start && (i - start == CHUNK_EVENTS || len + need > CHUNK_BYTES)) {
            if ((rc = insert_row(s, sid, first + (int64_t)start, ver + (int64_t)start + 1,
                                 (int64_t)(i - start), len)))
                return rc;
            start = i;
            len = 1;
        }
        if ((rc = enc_event(s, &len, ids[i], e->time_ms ? e->time_ms : now, e->type, tl, e->data,
                            dl, meta, ml)))
            return rc;
    }
    if ((rc = insert_row(s, sid, first + (int64_t)start, ver + (int64_t)start + 1,
                         (int64_t)(r->n - start), len)))
        return rc;
    s->next_pos = first + (int64_t)r->n;
    r->res->first_position = first;
    r->res->last_position = first + (int64_t)r->n - 1;
    r->res->last_version = ver + (int64_t)r->n;
    r->res->duplicate = 0;
    /* Nothing of this batch can fail any more: the cache may follow. */
    if (sl)
        sl->version = r->res->last_version;
    else
        scache_put(&s->streams, r->stream, h, sid, r->res->last_version);
    return 0;
}

/* ---- the tail --------------------------------------------------------- */
static void tail_drop_oldest(tail_ring *t)
{
    tail_ev *o = &t->v[t->start];
    t->bytes -= o->len;
    free(o->buf);
    o->buf = NULL;
    t->start = (t->start + 1) & (TAIL_EVENTS - 1);
    t->n--;
}

/* After a successful COMMIT, by the leader: the group's new events into the
 * tail, in position order (the group's order). */
static void tail_push_group(sq_store *s, append_req *group)
{
    tail_ring *t = &s->tail;
    pthread_rwlock_wrlock(&t->lock);
    for (append_req *r = group; r; r = r->next) {
        if (r->rc || r->res->duplicate || !r->ids) continue;
        int64_t first = r->res->first_position;
        /* One transaction, one writer: a batch's positions are consecutive.
         * If that ever failed to hold, the tail would lie: forget it. */
        if (r->res->last_position - first + 1 != (int64_t)r->n ||
            (t->n && t->v[(t->start + t->n - 1) & (TAIL_EVENTS - 1)].position >= first)) {
            while (t->n)
                tail_drop_oldest(t);
            continue;
        }
        size_t slen = strlen(r->stream);
        for (size_t i = 0; i < r->n; i++) {
            const lf_event_in *e = &r->evs[i];
            const char *meta = e->meta ? e->meta : "{}";
            size_t tl = strlen(e->type), dl = strlen(e->data), ml = strlen(meta);
            size_t len = slen + tl + dl + ml + 4;
            while (t->n && (t->n == TAIL_EVENTS || t->bytes + len > TAIL_BYTES))
                tail_drop_oldest(t);
            tail_ev *x = &t->v[(t->start + t->n) & (TAIL_EVENTS - 1)];
            x->buf = lf_xmalloc(len);
            memcpy(x->buf, r->stream, slen + 1);
            x->type_off = slen + 1;
            memcpy(x->buf + x->type_off, e->type, tl + 1);
            x->data_off = x->type_off + tl + 1;
            memcpy(x->buf + x->data_off, e->data, dl + 1);
            x->meta_off = x->data_off + dl + 1;
            memcpy(x->buf + x->meta_off, meta, ml + 1);
            x->len = len;
            x->position = first + (int64_t)i;
            x->version = r->res->last_version - (int64_t)r->n + 1 + (int64_t)i;
            x->time_ms = e->time_ms ? e->time_ms : r->now;
            memcpy(x->id, r->ids[i], 16);
            t->n++;
            t->bytes += len;
        }
    }
    pthread_rwlock_unlock(&t->lock);
}

/* read_all from the tail: the events after `after`, consecutive, up to max.
 * Returns how many it appended to out (0: ask SQLite). */
static size_t tail_read(sq_store *s, int64_t after, size_t max, lf_event_list *out)
{
    tail_ring *t = &s->tail;
    size_t got = 0;
    pthread_rwlock_rdlock(&t->lock);
    if (t->n == 0) goto out;
    int64_t p0 = t->v[t->start].position;
    int64_t plast = t->v[(t->start + t->n - 1) & (TAIL_EVENTS - 1)].position;
    if (after + 1 < p0 || after + 1 > plast) goto out;
    /* Binary search for after + 1 (positions grow, with possible gaps). */
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->v[(t->start + mid) & (TAIL_EVENTS - 1)].position <= after)
            lo = mid + 1;
        else
            hi = mid;
    }
    int64_t want = after + 1;
    for (size_t i = lo; i < t->n && got < max; i++) {
        const tail_ev *x = &t->v[(t->start + i) & (TAIL_EVENTS - 1)];
        if (x->position != want) break; /* a gap: SQLite knows the rest */
        lf_event *e = lf_event_list_push_copy(out, x->buf, x->type_off - 1, x->buf + x->type_off,
                                              x->data_off - x->type_off - 1, x->buf + x->data_off,
                                              x->meta_off - x->data_off - 1, x->buf + x->meta_off,
                                              x->len - x->meta_off - 1);
        e->position = x->position;
        e->version = x->version;
        e->time_ms = x->time_ms;
        blob_to_uuid(x->id, 16, e->id);
        want++;
        got++;
    }
out:
    pthread_rwlock_unlock(&t->lock);
    return got;
}

/* The leader commits a group of batches in one transaction. */
static void commit_group(sq_store *s, append_req *group)
{
    int rc = exec(s->wdb, "BEGIN IMMEDIATE");
    if (rc) {
        for (append_req *r = group; r; r = r->next) {
            r->rc = rc;
            snprintf(r->err, sizeof r->err, "%s", lf_err_get());
        }
        return;
    }
    /* Another connection (an operator tool) wrote since our last commit:
     * the stream cache may be stale. */
    if (sqlite3_step(s->st_data_version) == SQLITE_ROW) {
        int64_t dv = sqlite3_column_int64(s->st_data_version, 0);
        if (dv != s->data_version) {
            scache_clear(&s->streams);
            s->next_pos = 0;
        }
        s->data_version = dv;
    } else {
        scache_clear(&s->streams);
        s->next_pos = 0;
    }
    sqlite3_reset(s->st_data_version);
    if (s->next_pos == 0) { /* where the log ends, as the file says */
        int64_t h = 0;
        if ((rc = query_int(s->wdb, HEAD_SQL, &h))) {
            for (append_req *r = group; r; r = r->next) {
                r->rc = rc;
                snprintf(r->err, sizeof r->err, "%s", lf_err_get());
            }
            exec(s->wdb, "ROLLBACK");
            return;
        }
        s->next_pos = h + 1;
    }
    for (append_req *r = group; r; r = r->next) {
        if (step_done(s->st_sp)) {
            r->rc = sq_err(s->wdb, "savepoint");
            snprintf(r->err, sizeof r->err, "%s", lf_err_get());
            continue;
        }
        int64_t next = s->next_pos;
        r->rc = apply_one(s, r);
        if (r->rc) {
            if (!r->err[0]) snprintf(r->err, sizeof r->err, "%s", lf_err_get());
            step_done(s->st_sp_rollback);
            s->next_pos = next;
        }
        step_done(s->st_sp_release);
    }
    rc = exec(s->wdb, "COMMIT");
    if (rc) {
        char msg[256];
        snprintf(msg, sizeof msg, "commit failed: %s", lf_err_get());
        exec(s->wdb, "ROLLBACK");
        scache_clear(&s->streams);
        s->next_pos = 0; /* re-read at the next group */
        for (append_req *r = group; r; r = r->next)
            if (r->rc == 0) {
                r->rc = rc;
                snprintf(r->err, sizeof r->err, "%s", msg);
            }
    }
}

/* Commit delay, by a new leader, under qlock: when the last group had
 * more appenders than are queued now, wait for them to queue again (a
 * woken appender needs a moment to come back with its next batch, longer
 * on few CPUs) — at most min(commit_delay_us, the last commit's time), so
 * a delay never costs more than the commit it saves. One appender alone
 * never waits: its last group was 1. Like PostgreSQL's commit_delay, but
 * sized from the last group instead of a siblings count. */
static void gather(sq_store *s)
{
    if (s->commit_delay_us <= 0 || s->qlen >= s->last_group || s->closing) return;
    int64_t wait = s->commit_delay_us;
    if (s->last_commit_us < wait) wait = s->last_commit_us;
    if (wait <= 0) return;
    struct timespec dl;
    lf_abstime_mono_us(wait, &dl);
    s->gathering = 1;
    while (s->qlen < s->last_group && !s->closing)
        if (pthread_cond_timedwait(&s->gcond, &s->qlock, &dl) == ETIMEDOUT) break;
    s->gathering = 0;
}

/* Leads one group: called with qlock held and no leader; returns with
 * qlock held. me is the caller's own request (NULL for the committer).
 * Waiting members are woken; async members go to the acknowledger, in the
 * group's order and after every earlier group's (so one appender's
 * callbacks run in the order of its appends). */
static void lead(sq_store *s, append_req *me)
{
    s->leader = 1;
    gather(s);
    append_req *group = s->qhead;
    s->last_group = s->qlen;
    s->qhead = s->qtail = NULL;
    s->qlen = 0;
    pthread_mutex_unlock(&s->qlock);
    int64_t t0 = lf_mono_us();
    commit_group(s, group);
    s->last_commit_us = lf_mono_us() - t0;
    tail_push_group(s, group);
    int64_t h = atomic_load(&s->head);
    int nasync = 0;
    for (append_req *r = group; r; r = r->next) {
        free(r->ids);
        r->ids = NULL;
        if (r->rc == 0 && r->res->last_position > h) h = r->res->last_position;
        if (r->cb) nasync++;
    }
    pthread_mutex_lock(&s->qlock);
    atomic_store(&s->head, h);
    pthread_cond_broadcast(&s->hcond);
    /* Wake the waiting members of this group, each on its own condition
     * (not everyone queued: those wait for the next group). Done is set
     * under the lock, so a member cannot return (and free its request)
     * while the leader holds qlock. Async members are relinked, in order,
     * onto the acknowledger's queue. */
    for (append_req *r = group, *nx; r; r = nx) {
        nx = r->next;
        if (r->cb) { /* the acknowledger's until its callback */
            r->next = NULL;
            *s->atail = r;
            s->atail = &r->next;
            continue;
        }
        r->done = 1; /* gone once qlock is let go: not touched after */
        if (r != me) pthread_cond_signal(&r->cond);
    }
    if (nasync) pthread_cond_signal(&s->acond);
    s->leader = 0;
    /* Hand the lead to the first appender queued meanwhile: its thread, or
     * the committer when it has none. */
    if (s->qhead) {
        if (s->qhead->cb)
            pthread_cond_signal(&s->ccond);
        else
            pthread_cond_signal(&s->qhead->cond);
    }
    if (s->closing) {
        pthread_cond_broadcast(&s->qcond);
        pthread_cond_broadcast(&s->ccond);
    }
}

static void *committer_main(void *p)
{
    sq_store *s = p;
    pthread_setname_np(pthread_self(), "lf-commit");
    pthread_mutex_lock(&s->qlock);
    for (;;) {
        if (s->qhead && !s->leader && s->qhead->cb)
            lead(s, NULL);
        else if (s->closing && !s->qhead && !s->leader)
            break;
        else
            pthread_cond_wait(&s->ccond, &s->qlock);
    }
    pthread_mutex_unlock(&s->qlock);
    return NULL;
}

/* Runs the callbacks of committed async appends, in commit order, until
 * close has seen the last group committed (acker_stop) and all are run. */
static void *acker_main(void *p)
{
    sq_store *s = p;
    pthread_setname_np(pthread_self(), "lf-ack");
    pthread_mutex_lock(&s->qlock);
    for (;;) {
        append_req *list = s->ahead;
        if (!list) {
            if (s->acker_stop) break;
            pthread_cond_wait(&s->acond, &s->qlock);
            continue;
        }
        s->ahead = NULL;
        s->atail = &s->ahead;
        pthread_mutex_unlock(&s->qlock);
        for (append_req *r = list, *nx; r; r = nx) {
            nx = r->next;
            r->cb(r->cb_ctx, r->rc, r->rc ? NULL : r->res, r->rc ? r->err : NULL);
            free(r);
        }
        pthread_mutex_lock(&s->qlock);
    }
    pthread_mutex_unlock(&s->qlock);
    return NULL;
}

static void enqueue(sq_store *s, append_req *r)
{
    if (s->qtail)
        s->qtail->next = r;
    else
        s->qhead = r;
    s->qtail = r;
    s->qlen++;
    if (s->gathering && s->qlen >= s->last_group) pthread_cond_signal(&s->gcond);
}

static int sq_append(void *impl, const char *stream, int64_t expected, const lf_event_in *evs,
                     size_t n, lf_append_result *res)
{
    sq_store *s = impl;
    append_req me = {.stream = stream, .expected = expected, .evs = evs, .n = n, .res = res};
    pthread_cond_init(&me.cond, NULL);
    pthread_mutex_lock(&s->qlock);
    if (s->closing) {
        pthread_mutex_unlock(&s->qlock);
        pthread_cond_destroy(&me.cond);
        return LF_ECLOSED;
    }
    enqueue(s, &me);
    while (!me.done) {
        if (!s->leader)
            lead(s, &me);
        else
            pthread_cond_wait(&me.cond, &s->qlock);
    }
    pthread_mutex_unlock(&s->qlock);
    pthread_cond_destroy(&me.cond);
    if (me.rc && me.err[0]) lf_err_set("%s", me.err);
    return me.rc;
}

/* Starts one of the store's threads unless it runs (qlock held). */
static int start_once(sq_store *s, pthread_t *t, int *started, void *(*fn)(void *),
                      const char *what)
{
    if (*started) return 0;
    if (pthread_create(t, NULL, fn, s)) {
        lf_err_set("cannot start the store's %s thread", what);
        return LF_EIO;
    }
    *started = 1;
    return 0;
}

/* Queues the batch and returns: the committer thread (or a waiting
 * appender that leads meanwhile) commits it with its group, then calls
 * cb. The caller keeps stream and evs alive until then. */
static int sq_append_async(void *impl, const char *stream, int64_t expected, const lf_event_in *evs,
                           size_t n, lf_append_cb cb, void *ctx)
{
    sq_store *s = impl;
    append_req *r = lf_xcalloc(1, sizeof *r);
    *r = (append_req){
        .stream = stream, .expected = expected, .evs = evs, .n = n, .cb = cb, .cb_ctx = ctx};
    r->res = &r->ares;
    pthread_mutex_lock(&s->qlock);
    if (s->closing) {
        pthread_mutex_unlock(&s->qlock);
        free(r);
        lf_err_set("store is closing");
        return LF_ECLOSED;
    }
    if (start_once(s, &s->acker, &s->acker_started, acker_main, "acknowledger") ||
        start_once(s, &s->committer, &s->committer_started, committer_main, "committer")) {
        pthread_mutex_unlock(&s->qlock);
        free(r);
        return LF_EIO;
    }
    enqueue(s, r);
    if (!s->leader && s->qhead == r) pthread_cond_signal(&s->ccond);
    pthread_mutex_unlock(&s->qlock);
    return 0;
}

/* ---- reads ----------------------------------------------------------- */
static int reader_get(sq_store *s, int *idx)
{
    pthread_mutex_lock(&s->rlock);
    for (;;) {
        for (int i = 0; i < READERS; i++)
            if (!s->readers[i].busy) {
                s->readers[i].busy = 1;
                pthread_mutex_unlock(&s->rlock);
                if (!s->readers[i].db) {
                    int rc = open_conn(s->path, 1, &s->readers[i].db);
                    if (rc) {
                        pthread_mutex_lock(&s->rlock);
                        s->readers[i].busy = 0;
                        pthread_cond_signal(&s->rcond);
                        pthread_mutex_unlock(&s->rlock);
                        return rc;
                    }
                }
                *idx = i;
                return 0;
            }
        pthread_cond_wait(&s->rcond, &s->rlock);
    }
}

static void reader_put(sq_store *s, int idx)
{
    pthread_mutex_lock(&s->rlock);
    s->readers[idx].busy = 0;
    pthread_cond_signal(&s->rcond);
    pthread_mutex_unlock(&s->rlock);
}

/* sid -> name through the shared cache; on a miss, from the streams
 * table on this reader's connection. Returns a pointer valid until close. */
static const char *name_of(sq_store *s, reader *rd, int64_t sid)
{
    pthread_mutex_lock(&s->nlock);
    if (s->capnames) {
        for (size_t i = (size_t)((uint64_t)sid * 0x9E3779B97F4A7C15ull) & (s->capnames - 1);;
             i = (i + 1) & (s->capnames - 1)) {
            if (s->names[i].sid == sid) {
                pthread_mutex_unlock(&s->nlock);
                return s->names[i].name;
            }
            if (s->names[i].sid == 0) break;
        }
    }
    pthread_mutex_unlock(&s->nlock);
    if (!rd->st_name && sqlite3_prepare_v3(rd->db, "SELECT name FROM streams WHERE sid=?", -1,
                                           SQLITE_PREPARE_PERSISTENT, &rd->st_name, NULL))
        return NULL;
    sqlite3_bind_int64(rd->st_name, 1, sid);
    char *name = NULL;
    if (sqlite3_step(rd->st_name) == SQLITE_ROW)
        name = lf_strdup((const char *)sqlite3_column_text(rd->st_name, 0));
    sqlite3_reset(rd->st_name);
    if (!name) return NULL;
    pthread_mutex_lock(&s->nlock);
    if ((s->nnames + 1) * 2 > s->capnames) {
        size_t nc = s->capnames ? s->capnames * 2 : 1024;
        name_slot *nv = lf_xcalloc(nc, sizeof *nv);
        for (size_t i = 0; i < s->capnames; i++)
            if (s->names[i].sid) {
                size_t j = (size_t)((uint64_t)s->names[i].sid * 0x9E3779B97F4A7C15ull) & (nc - 1);
                while (nv[j].sid)
                    j = (j + 1) & (nc - 1);
                nv[j] = s->names[i];
            }
        free(s->names);
        s->names = nv;
        s->capnames = nc;
    }
    size_t i = (size_t)((uint64_t)sid * 0x9E3779B97F4A7C15ull) & (s->capnames - 1);
    while (s->names[i].sid && s->names[i].sid != sid)
        i = (i + 1) & (s->capnames - 1);
    if (s->names[i].sid == sid) { /* another reader was first */
        free(name);
        name = s->names[i].name;
    } else {
        s->names[i].sid = sid;
        s->names[i].name = name;
        s->nnames++;
    }
    pthread_mutex_unlock(&s->nlock);
    return name;
}

/* Steps st, whose rows are (pos, sid, ver, n, body) in log or stream
 * order, and appends their events with position > after and version >=
 * from_version to out, up to max. stream: the name when the caller knows
 * it (read_stream), else NULL. */
static int read_batches(sq_store *s, reader *rd, sqlite3_stmt *st, const char *stream,
                        int64_t after, int64_t from_version, size_t max, lf_event_list *out)
{
    int rc = SQLITE_DONE;
    int64_t last_sid = 0;
    const char *last_name = stream;
    size_t last_len = stream ? strlen(stream) : 0, got = 0;
    if (!rd->dctx && !(rd->dctx = ZSTD_createDCtx())) {
        lf_err_set("out of memory (zstd)");
        return LF_ENOMEM;
    }
    while (got < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t bpos = sqlite3_column_int64(st, 0), sid = sqlite3_column_int64(st, 1);
        int64_t bver = sqlite3_column_int64(st, 2), bn = sqlite3_column_int64(st, 3);
        if (!stream && sid != last_sid) {
            last_name = name_of(s, rd, sid);
            last_sid = sid;
            if (!last_name) {
                lf_err_set("sqlite: events at %lld have no stream (sid %lld)", (long long)bpos,
                           (long long)sid);
                return LF_ECORRUPT;
            }
            last_len = strlen(last_name);
        }
        const unsigned char *ev, *blob = sqlite3_column_blob(st, 4);
        size_t evlen;
        int e =
            body_open(rd->dctx, &rd->raw, blob, (size_t)sqlite3_column_bytes(st, 4), &ev, &evlen);
        if (e) return e;
        const unsigned char *end = ev + evlen;
        int64_t i = 0;
        for (; i < bn && got < max; i++) {
            ev_view v;
            if ((e = ev_next(&ev, end, &v))) return e;
            if (bpos + i <= after || bver + i < from_version) continue;
            lf_event *x = lf_event_list_push_copy(out, last_name, last_len, v.type, v.tlen, v.data,
                                                  v.dlen, v.meta, v.mlen);
            x->position = bpos + i;
            x->version = bver + i;
            x->time_ms = v.time_ms;
            blob_to_uuid(v.id, 16, x->id);
            got++;
        }
        if (i == bn && ev != end) {
            lf_err_set("sqlite: the events at %lld hold more than their %lld events",
                       (long long)bpos, (long long)bn);
            return LF_ECORRUPT;
        }
    }
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : sq_err(rd->db, "read");
}

/* Prepares *st on the reader's connection once. */
static int reader_stmt(reader *rd, sqlite3_stmt **st, const char *sql)
{
    if (*st) return 0;
    if (sqlite3_prepare_v3(rd->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK)
        return sq_err(rd->db, "prepare read");
    return 0;
}

#define BATCH_COLS "pos, sid, ver, n, body"

static int sq_read_stream(void *impl, const char *stream, int64_t from_version, size_t max,
                          lf_event_list *out)
{
    sq_store *s = impl;
    int idx, rc = reader_get(s, &idx);
    if (rc) return rc;
    reader *rd = &s->readers[idx];
    /* From the row holding from_version (the last one starting at or
     * before it), in version order. */
    if ((rc = reader_stmt(rd, &rd->st_sid, "SELECT sid FROM streams WHERE name=?")) ||
        (rc = reader_stmt(rd, &rd->st_stream,
                          "SELECT " BATCH_COLS " FROM batches WHERE sid=?1 AND ver >= coalesce("
                          "(SELECT ver FROM batches WHERE sid=?1 AND ver <= ?2"
                          " ORDER BY ver DESC LIMIT 1), 0) ORDER BY ver")))
        goto out;
    sqlite3_bind_text(rd->st_sid, 1, stream, -1, SQLITE_STATIC);
    rc = sqlite3_step(rd->st_sid);
    int64_t sid = rc == SQLITE_ROW ? sqlite3_column_int64(rd->st_sid, 0) : 0;
    sqlite3_reset(rd->st_sid);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        rc = sq_err(rd->db, "stream lookup");
        goto out;
    }
    rc = 0;
    if (!sid) goto out; /* a missing stream reads as empty */
    sqlite3_bind_int64(rd->st_stream, 1, sid);
    sqlite3_bind_int64(rd->st_stream, 2, from_version);
    rc = read_batches(s, rd, rd->st_stream, stream, 0, from_version, max, out);
    sqlite3_reset(rd->st_stream);
out:
    reader_put(s, idx);
    return rc;
}

static int sq_read_all(void *impl, int64_t after, size_t max, lf_event_list *out)
{
    sq_store *s = impl;
    if (tail_read(s, after, max, out)) return 0;
    int idx, rc = reader_get(s, &idx);
    if (rc) return rc;
    reader *rd = &s->readers[idx];
    /* From the row holding position after + 1, in log order. */
    if (!(rc = reader_stmt(rd, &rd->st_all,
                           "SELECT " BATCH_COLS " FROM batches WHERE pos >= coalesce("
                           "(SELECT pos FROM batches WHERE pos <= ?1 ORDER BY pos DESC LIMIT 1),"
                           " 0) ORDER BY pos"))) {
        sqlite3_bind_int64(rd->st_all, 1, after + 1);
        rc = read_batches(s, rd, rd->st_all, NULL, after, 0, max, out);
        sqlite3_reset(rd->st_all);
    }
    reader_put(s, idx);
    return rc;
}

static int reader_int(sq_store *s, sqlite3_stmt **(*which)(reader *), const char *sql,
                      const char *text, int64_t *out)
{
    int idx, rc = reader_get(s, &idx);
    if (rc) return rc;
    reader *rd = &s->readers[idx];
    sqlite3_stmt **st = which(rd);
    *out = 0;
    if (!(rc = reader_stmt(rd, st, sql))) {
        if (text) sqlite3_bind_text(*st, 1, text, -1, SQLITE_STATIC);
        int sr = sqlite3_step(*st);
        if (sr == SQLITE_ROW)
            *out = sqlite3_column_int64(*st, 0);
        else if (sr != SQLITE_DONE)
            rc = sq_err(rd->db, sql);
        sqlite3_reset(*st);
    }
    reader_put(s, idx);
    return rc;
}

static sqlite3_stmt **st_head_of(reader *rd)
{
    return &rd->st_head;
}

static sqlite3_stmt **st_ver_of(reader *rd)
{
    return &rd->st_ver;
}

static int sq_head(void *impl, int64_t *pos)
{
    /* Another process (an operator tool) may have appended: trust the file. */
    return reader_int(impl, st_head_of, HEAD_SQL, NULL, pos);
}

static int sq_stream_version(void *impl, const char *stream, int64_t *version)
{
    return reader_int(impl, st_ver_of,
                      "SELECT ver + n - 1 FROM batches WHERE sid=(SELECT sid FROM streams"
                      " WHERE name=?) ORDER BY ver DESC LIMIT 1",
                      stream, version);
}

static int sq_wait(void *impl, int64_t after, int timeout_ms)
{
    sq_store *s = impl;
    /* Woken by our own commits; capped at 100 ms to notice other writers. */
    int wait = timeout_ms < 100 ? timeout_ms : 100;
    struct timespec ts;
    lf_abstime_us((int64_t)wait * 1000, &ts);
    int rc = 0;
    pthread_mutex_lock(&s->qlock);
    if (s->closing)
        rc = LF_ECLOSED;
    else if (atomic_load(&s->head) <= after)
        pthread_cond_timedwait(&s->hcond, &s->qlock, &ts);
    if (s->closing) rc = LF_ECLOSED;
    pthread_mutex_unlock(&s->qlock);
    return rc;
}

static int sq_lease(void *impl, const char *name, const char *owner, int64_t ttl_ms, lf_lease *out)
{
    return lf_sqlite_lease(((sq_store *)impl)->leases, name, owner, ttl_ms, out);
}

static int sq_lease_release(void *impl, const char *name, const char *owner)
{
    return lf_sqlite_lease_release(((sq_store *)impl)->leases, name, owner);
}

static int sq_lease_list(void *impl, const char *prefix, lf_lease *out, size_t max, size_t *n)
{
    return lf_sqlite_lease_list(((sq_store *)impl)->leases, prefix, out, max, n);
}

const lf_store_ops lf_store_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .append = sq_append,
    .append_async = sq_append_async,
    .read_stream = sq_read_stream,
    .read_all = sq_read_all,
    .head = sq_head,
    .stream_version = sq_stream_version,
    .wait = sq_wait,
    .lease = sq_lease,
    .lease_release = sq_lease_release,
    .lease_list = sq_lease_list,
};
