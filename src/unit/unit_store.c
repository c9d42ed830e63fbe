/*
 * unit_store.c — the unit's local event store on SQLite (see unit.h,
 * unit_int.h). One file holds one unit or many (the simulator): every row
 * is keyed by the unit name, so 10,000 units need one file descriptor.
 *
 *   unit_events(unit, seq, id, type, time_ms, data)  PRIMARY KEY(unit, seq)
 *   unit_meta(unit, head, acked, pruned, snap_seq, snapshot)
 *
 * WAL journal. synchronous=FULL for a real unit: a rental the person at the
 * screen paid for must survive a power cut, and a unit appends a handful
 * of events per minute, so an fsync per transaction costs nothing that
 * matters. synchronous=NORMAL for the simulator (thousands of units in one
 * file): still consistent after a crash, only the last transactions may be
 * lost on power loss, which a simulation can afford.
 *
 * Unlike the hub's store, this log is pruned: events <= the seq the hub
 * acknowledged are deleted, after a snapshot of the state that covers
 * them, in the same transaction. Nothing unacknowledged is ever deleted.
 *
 * One connection per lf_unit_db, guarded by a mutex (transactions of
 * different units must not interleave on one connection).
 */
#include "unit/unit_int.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    ST_META,
    ST_META_INS,
    ST_APPEND,
    ST_READ,
    ST_ACK,
    ST_SNAP,
    ST_DELETE,
    ST_COUNT,
    ST_HEAD,
    ST_N
};

static const char *const sql_text[ST_N] = {
    [ST_META] = "SELECT head, acked, pruned, snap_seq, snapshot FROM unit_meta WHERE unit=?1",
    [ST_META_INS] = "INSERT OR IGNORE INTO unit_meta(unit) VALUES(?1)",
    [ST_APPEND] = "INSERT INTO unit_events(unit, seq, id, type, time_ms, data) "
                  "VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_READ] = "SELECT seq, id, type, time_ms, data FROM unit_events "
                "WHERE unit=?1 AND seq>?2 ORDER BY seq LIMIT ?3",
    [ST_ACK] = "UPDATE unit_meta SET acked=?2 WHERE unit=?1 AND acked<?2",
    [ST_SNAP] = "UPDATE unit_meta SET snap_seq=?2, snapshot=?3, pruned=MAX(pruned, ?4) "
                "WHERE unit=?1",
    [ST_DELETE] = "DELETE FROM unit_events WHERE unit=?1 AND seq<=?2",
    [ST_COUNT] = "SELECT count(*) FROM unit_events WHERE unit=?1",
    [ST_HEAD] = "UPDATE unit_meta SET head=?2 WHERE unit=?1",
};

struct lf_unit_db {
    sqlite3 *db;
    sqlite3_stmt *st[ST_N];
    pthread_mutex_t mu;
};

static int db_fail(lf_unit_db *d, const char *what)
{
    lf_err_set("unit store: %s: %s", what, sqlite3_errmsg(d->db));
    int ec = sqlite3_errcode(d->db);
    if (ec == SQLITE_CORRUPT || ec == SQLITE_NOTADB) return LF_ECORRUPT;
    if (ec == SQLITE_CONSTRAINT) return LF_ECONFLICT;
    if (ec == SQLITE_NOMEM) return LF_ENOMEM;
    return LF_EIO;
}

static int exec(lf_unit_db *d, const char *sql)
{
    if (sqlite3_exec(d->db, sql, NULL, NULL, NULL) != SQLITE_OK) return db_fail(d, sql);
    return 0;
}

int lf_unit_db_open(const char *path, bool durable, int cache_kib, lf_unit_db **out)
{
    int rc = 0;
    *out = NULL;
    lf_unit_db *d = calloc(1, sizeof *d);
    if (!d) return LF_ENOMEM;
    pthread_mutex_init(&d->mu, NULL);
    if (sqlite3_open_v2(path, &d->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        rc = d->db ? db_fail(d, "open") : LF_ENOMEM;
        if (d->db) lf_err_set("unit store: cannot open '%s': %s", path, sqlite3_errmsg(d->db));
        goto out;
    }
    sqlite3_busy_timeout(d->db, 5000);
    char pragmas[256];
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA cache_size=-%d;"
             "PRAGMA foreign_keys=OFF; PRAGMA temp_store=MEMORY;",
             durable ? "FULL" : "NORMAL", cache_kib > 0 ? cache_kib : 256);
    if ((rc = exec(d, pragmas))) goto out;
    rc = exec(d, "CREATE TABLE IF NOT EXISTS unit_events("
                 " unit TEXT NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL,"
                 " type TEXT NOT NULL, time_ms INTEGER NOT NULL, data TEXT NOT NULL,"
                 " PRIMARY KEY(unit, seq)) WITHOUT ROWID;"
                 "CREATE TABLE IF NOT EXISTS unit_meta("
                 " unit TEXT PRIMARY KEY, head INTEGER NOT NULL DEFAULT 0,"
                 " acked INTEGER NOT NULL DEFAULT 0, pruned INTEGER NOT NULL DEFAULT 0,"
                 " snap_seq INTEGER NOT NULL DEFAULT 0, snapshot TEXT);");
    if (rc) goto out;
    for (int i = 0; i < ST_N; i++) {
        if (sqlite3_prepare_v3(d->db, sql_text[i], -1, SQLITE_PREPARE_PERSISTENT, &d->st[i],
                               NULL) != SQLITE_OK) {
            rc = db_fail(d, "prepare");
            goto out;
        }
    }
out:
    if (rc) {
        lf_unit_db_close(d);
        return rc;
    }
    *out = d;
    return 0;
}

void lf_unit_db_close(lf_unit_db *d)
{
    if (!d) return;
    for (int i = 0; i < ST_N; i++)
        sqlite3_finalize(d->st[i]);
    if (d->db) sqlite3_close(d->db);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

static sqlite3_stmt *stmt(lf_unit_db *d, int which, const char *unit)
{
    sqlite3_stmt *s = d->st[which];
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    sqlite3_bind_text(s, 1, unit, -1, SQLITE_STATIC);
    return s;
}

void lf_unit_event_list_free(lf_unit_event_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->ev[i].data);
    free(l->ev);
    memset(l, 0, sizeof *l);
}

int lf_unit_store_meta(lf_unit_db *d, const char *unit, lf_unit_meta *out)
{
    int rc = 0;
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&d->mu);
    sqlite3_stmt *s = stmt(d, ST_META, unit);
    int r = sqlite3_step(s);
    if (r == SQLITE_ROW) {
        out->head = sqlite3_column_int64(s, 0);
        out->acked = sqlite3_column_int64(s, 1);
        out->pruned = sqlite3_column_int64(s, 2);
        out->snap_seq = sqlite3_column_int64(s, 3);
        const unsigned char *snap = sqlite3_column_text(s, 4);
        if (snap) {
            out->snapshot = strdup((const char *)snap);
            if (!out->snapshot) rc = LF_ENOMEM;
        }
    } else if (r != SQLITE_DONE) {
        rc = db_fail(d, "read meta");
    }
    sqlite3_reset(s);
    pthread_mutex_unlock(&d->mu);
    return rc;
}

int lf_unit_store_append(lf_unit_db *d, const char *unit, const lf_unit_event *evs, size_t n)
{
    int rc = 0;
    bool in_tx = false;
    if (n == 0) return 0;
    pthread_mutex_lock(&d->mu);
    if ((rc = exec(d, "BEGIN IMMEDIATE"))) goto out;
    in_tx = true;
    sqlite3_stmt *s = stmt(d, ST_META_INS, unit);
    if (sqlite3_step(s) != SQLITE_DONE) {
        rc = db_fail(d, "meta row");
        goto out;
    }
    s = stmt(d, ST_META, unit);
    int64_t head = -1;
    if (sqlite3_step(s) == SQLITE_ROW) head = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    if (head < 0) {
        rc = db_fail(d, "read head");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (evs[i].seq != head + 1 + (int64_t)i) {
            lf_err_set("unit store: append seq %lld, expected %lld", (long long)evs[i].seq,
                       (long long)(head + 1 + (int64_t)i));
            rc = LF_ECONFLICT;
            goto out;
        }
        s = stmt(d, ST_APPEND, unit);
        sqlite3_bind_int64(s, 2, evs[i].seq);
        sqlite3_bind_text(s, 3, evs[i].id, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 4, evs[i].type, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 5, evs[i].time_ms);
        sqlite3_bind_text(s, 6, evs[i].data, -1, SQLITE_STATIC);
        if (sqlite3_step(s) != SQLITE_DONE) {
            rc = db_fail(d, "append");
            goto out;
        }
    }
    s = stmt(d, ST_HEAD, unit);
    sqlite3_bind_int64(s, 2, head + (int64_t)n);
    if (sqlite3_step(s) != SQLITE_DONE) {
        rc = db_fail(d, "update head");
        goto out;
    }
    rc = exec(d, "COMMIT");
    if (rc == 0) in_tx = false;
out:
    if (in_tx) sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
    for (int i = 0; i < ST_N; i++)
        sqlite3_reset(d->st[i]);
    pthread_mutex_unlock(&d->mu);
    return rc;
}

int lf_unit_store_read(lf_unit_db *d, const char *unit, int64_t after, size_t limit,
                       lf_unit_event_list *out)
{
    int rc = 0;
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&d->mu);
    sqlite3_stmt *s = stmt(d, ST_READ, unit);
    sqlite3_bind_int64(s, 2, after);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)limit);
    int r;
    while ((r = sqlite3_step(s)) == SQLITE_ROW) {
        if (out->n == out->cap) {
            size_t nc = out->cap ? out->cap * 2 : 16;
            lf_unit_event *ne = realloc(out->ev, nc * sizeof *ne);
            if (!ne) {
                rc = LF_ENOMEM;
                goto out;
            }
            out->ev = ne;
            out->cap = nc;
        }
        lf_unit_event *e = &out->ev[out->n];
        memset(e, 0, sizeof *e);
        e->seq = sqlite3_column_int64(s, 0);
        snprintf(e->id, sizeof e->id, "%s", (const char *)sqlite3_column_text(s, 1));
        snprintf(e->type, sizeof e->type, "%s", (const char *)sqlite3_column_text(s, 2));
        e->time_ms = sqlite3_column_int64(s, 3);
        const char *data = (const char *)sqlite3_column_text(s, 4);
        e->data = strdup(data ? data : "{}");
        if (!e->data) {
            rc = LF_ENOMEM;
            goto out;
        }
        out->n++;
    }
    if (r != SQLITE_DONE) rc = db_fail(d, "read events");
out:
    sqlite3_reset(s);
    pthread_mutex_unlock(&d->mu);
    if (rc) lf_unit_event_list_free(out);
    return rc;
}

int lf_unit_store_set_acked(lf_unit_db *d, const char *unit, int64_t acked)
{
    int rc = 0;
    pthread_mutex_lock(&d->mu);
    sqlite3_stmt *s = stmt(d, ST_META_INS, unit);
    if (sqlite3_step(s) != SQLITE_DONE) {
        rc = db_fail(d, "meta row");
        goto out;
    }
    s = stmt(d, ST_ACK, unit);
    sqlite3_bind_int64(s, 2, acked);
    if (sqlite3_step(s) != SQLITE_DONE) rc = db_fail(d, "set acked");
out:
    sqlite3_reset(d->st[ST_META_INS]);
    sqlite3_reset(d->st[ST_ACK]);
    pthread_mutex_unlock(&d->mu);
    return rc;
}

int lf_unit_store_prune(lf_unit_db *d, const char *unit, int64_t snap_seq, const char *snapshot,
                        int64_t through)
{
    int rc = 0;
    bool in_tx = false;
    pthread_mutex_lock(&d->mu);
    if ((rc = exec(d, "BEGIN IMMEDIATE"))) goto out;
    in_tx = true;
    sqlite3_stmt *s = stmt(d, ST_META, unit);
    int64_t acked = -1;
    if (sqlite3_step(s) == SQLITE_ROW) acked = sqlite3_column_int64(s, 1);
    sqlite3_reset(s);
    /* The invariant that makes pruning safe, checked where the data is. */
    if (through > acked || through > snap_seq) {
        lf_err_set("unit store: refusing to prune through %lld (acked %lld, snapshot %lld)",
                   (long long)through, (long long)acked, (long long)snap_seq);
        rc = LF_EINVAL;
        goto out;
    }
    s = stmt(d, ST_SNAP, unit);
    sqlite3_bind_int64(s, 2, snap_seq);
    sqlite3_bind_text(s, 3, snapshot, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, through);
    if (sqlite3_step(s) != SQLITE_DONE) {
        rc = db_fail(d, "save snapshot");
        goto out;
    }
    s = stmt(d, ST_DELETE, unit);
    sqlite3_bind_int64(s, 2, through);
    if (sqlite3_step(s) != SQLITE_DONE) {
        rc = db_fail(d, "prune");
        goto out;
    }
    rc = exec(d, "COMMIT");
    if (rc == 0) in_tx = false;
out:
    if (in_tx) sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
    for (int i = 0; i < ST_N; i++)
        sqlite3_reset(d->st[i]);
    pthread_mutex_unlock(&d->mu);
    return rc;
}

int lf_unit_store_count(lf_unit_db *d, const char *unit, int64_t *out)
{
    int rc = 0;
    pthread_mutex_lock(&d->mu);
    sqlite3_stmt *s = stmt(d, ST_COUNT, unit);
    if (sqlite3_step(s) == SQLITE_ROW)
        *out = sqlite3_column_int64(s, 0);
    else
        rc = db_fail(d, "count");
    sqlite3_reset(s);
    pthread_mutex_unlock(&d->mu);
    return rc;
}
