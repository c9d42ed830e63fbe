/*
 * store_sqlite_lease.c — leases for the sqlite backend (see lf_store_lease
 * in store.h), kept in a table `leases(name, owner, expires)` of the same
 * file, beside the log, written through a connection of their own (so they
 * never wait for, or enter, the event group commit).
 *
 * Clock: this machine's wall clock (lf_now_ms), which every process sharing
 * the file shares. Acquire-or-renew is one UPSERT inside BEGIN IMMEDIATE,
 * so two processes racing for a lease cannot both win.
 */
#define _GNU_SOURCE
#include "store_int.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lf_sqlite_leases {
    pthread_mutex_t lock;
    char *path;
    sqlite3 *db; /* opened on first use */
};

lf_sqlite_leases *lf_sqlite_leases_new(const char *path)
{
    lf_sqlite_leases *l = lf_xcalloc(1, sizeof *l);
    pthread_mutex_init(&l->lock, NULL);
    l->path = lf_strdup(path);
    return l;
}

void lf_sqlite_leases_free(lf_sqlite_leases *l)
{
    if (!l) return;
    if (l->db) sqlite3_close(l->db);
    pthread_mutex_destroy(&l->lock);
    free(l->path);
    free(l);
}

static int lease_err(lf_sqlite_leases *l, const char *what)
{
    lf_err_set("sqlite leases: %s: %s", what, l->db ? sqlite3_errmsg(l->db) : "no connection");
    return LF_EIO;
}

/* Called with l->lock held. */
static int lease_db(lf_sqlite_leases *l)
{
    if (l->db) return 0;
    if (sqlite3_open_v2(l->path, &l->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        int rc = lease_err(l, "open");
        sqlite3_close(l->db);
        l->db = NULL;
        return rc;
    }
    sqlite3_busy_timeout(l->db, 10000);
    char *msg = NULL;
    if (sqlite3_exec(l->db,
                     "PRAGMA synchronous=FULL;"
                     "CREATE TABLE IF NOT EXISTS leases(name TEXT PRIMARY KEY,"
                     " owner TEXT NOT NULL, expires INTEGER NOT NULL)",
                     NULL, NULL, &msg) != SQLITE_OK) {
        lf_err_set("sqlite leases: create table: %s", msg ? msg : "?");
        sqlite3_free(msg);
        sqlite3_close(l->db);
        l->db = NULL;
        return LF_EIO;
    }
    return 0;
}

static int exec1(lf_sqlite_leases *l, const char *sql)
{
    return sqlite3_exec(l->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : lease_err(l, sql);
}

int lf_sqlite_lease(lf_sqlite_leases *l, const char *name, const char *owner, int64_t ttl_ms,
                    lf_lease *out)
{
    sqlite3_stmt *up = NULL, *get = NULL;
    int rc, in_tx = 0;
    pthread_mutex_lock(&l->lock);
    if ((rc = lease_db(l)) || (rc = exec1(l, "BEGIN IMMEDIATE"))) goto out;
    in_tx = 1;
    int64_t now = lf_now_ms();
    if (sqlite3_prepare_v2(l->db,
                           "INSERT INTO leases(name, owner, expires) VALUES(?1, ?2, ?3)"
                           " ON CONFLICT(name) DO UPDATE SET owner=excluded.owner,"
                           " expires=excluded.expires"
                           " WHERE leases.owner=excluded.owner OR leases.expires<=?4",
                           -1, &up, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(l->db, "SELECT owner, expires FROM leases WHERE name=?1", -1, &get,
                           NULL) != SQLITE_OK) {
        rc = lease_err(l, "prepare");
        goto out;
    }
    sqlite3_bind_text(up, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(up, 2, owner, -1, SQLITE_STATIC);
    sqlite3_bind_int64(up, 3, now + ttl_ms);
    sqlite3_bind_int64(up, 4, now);
    if (sqlite3_step(up) != SQLITE_DONE) {
        rc = lease_err(l, "upsert");
        goto out;
    }
    sqlite3_bind_text(get, 1, name, -1, SQLITE_STATIC);
    if (sqlite3_step(get) != SQLITE_ROW) {
        rc = lease_err(l, "read back");
        goto out;
    }
    snprintf(out->name, sizeof out->name, "%s", name);
    snprintf(out->owner, sizeof out->owner, "%s", (const char *)sqlite3_column_text(get, 0));
    out->left_ms = sqlite3_column_int64(get, 1) - now;
    sqlite3_finalize(get);
    get = NULL;
    if ((rc = exec1(l, "COMMIT"))) goto out;
    in_tx = 0;
    if (strcmp(out->owner, owner) != 0) {
        lf_err_set("lease %s is held by %s", name, out->owner);
        rc = LF_ECONFLICT;
    }
out:
    sqlite3_finalize(up);
    sqlite3_finalize(get);
    if (in_tx) sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
    pthread_mutex_unlock(&l->lock);
    return rc;
}

int lf_sqlite_lease_release(lf_sqlite_leases *l, const char *name, const char *owner)
{
    sqlite3_stmt *st = NULL;
    int rc;
    pthread_mutex_lock(&l->lock);
    if ((rc = lease_db(l))) goto out;
    if (sqlite3_prepare_v2(l->db, "DELETE FROM leases WHERE name=?1 AND owner=?2", -1, &st, NULL) !=
        SQLITE_OK) {
        rc = lease_err(l, "prepare");
        goto out;
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) rc = lease_err(l, "delete");
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&l->lock);
    return rc;
}

int lf_sqlite_lease_list(lf_sqlite_leases *l, const char *prefix, lf_lease *out, size_t max,
                         size_t *n)
{
    sqlite3_stmt *st = NULL;
    int rc;
    pthread_mutex_lock(&l->lock);
    if ((rc = lease_db(l))) goto out;
    int64_t now = lf_now_ms();
    if (sqlite3_prepare_v2(l->db,
                           "SELECT name, owner, expires FROM leases WHERE expires > ?1 AND"
                           " substr(name, 1, length(?2)) = ?2 ORDER BY name",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = lease_err(l, "prepare");
        goto out;
    }
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_text(st, 2, prefix, -1, SQLITE_STATIC);
    int step = SQLITE_DONE;
    while (*n < max && (step = sqlite3_step(st)) == SQLITE_ROW) {
        lf_lease *e = &out[(*n)++];
        snprintf(e->name, sizeof e->name, "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(e->owner, sizeof e->owner, "%s", (const char *)sqlite3_column_text(st, 1));
        e->left_ms = sqlite3_column_int64(st, 2) - now;
    }
    if (*n < max && step != SQLITE_DONE) rc = lease_err(l, "list");
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&l->lock);
    return rc;
}
