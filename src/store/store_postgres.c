/*
 * store_postgres.c — the event store on PostgreSQL (libpq), URL
 * "postgres://USER@HOST:PORT/DB[?schema=NAME&...]" (schema defaults to
 * "lockerfleet"; every other parameter goes to libpq unchanged).
 *
 * Schema (in its own PostgreSQL schema, format 1 in lf_meta):
 *   lf_events(position bigint PRIMARY KEY, stream text, version bigint,
 *             id uuid UNIQUE, type text, time bigint, data text, meta text)
 *   + UNIQUE(stream, version); triggers refuse UPDATE and DELETE.
 *   lf_append(...) — a PL/pgSQL function doing one append in one round trip.
 *
 * Ordering (the SQL event store trap): a bigserial position is taken at
 * INSERT time but becomes visible at COMMIT time, so two concurrent writers
 * can commit positions 11 and 10 in that order and a reader that saw 11
 * would skip 10 forever. We serialise appends with a transaction-level
 * advisory lock taken first thing in lf_append; positions are max+1 under
 * that lock. The lock is released only after the commit is visible, so
 * commits become visible in position order and every reader sees a prefix
 * of the log: a plain "WHERE position > $after ORDER BY position" is safe.
 * The cost: appends (of all processes sharing the schema) commit one at a
 * time, one WAL flush each; batching is the way to throughput. We chose
 * this over a reader-side xmin horizon because it keeps readers trivial
 * and keeps positions gap-free.
 *
 * Durability: synchronous_commit=on (checked at open; we refuse "off"), so
 * a returned append has its commit record flushed to the WAL.
 *
 * Idempotency, the version check and the insert all run inside lf_append
 * under the same lock, so they are atomic with respect to other appenders.
 *
 * Threads: a small pool of connections (POOL), each used by one thread at
 * a time. read_all goes through lf_tail (store_tail.c): the process's
 * readers at the top of the log share one query. wait(): a listener thread holds one more
 * connection doing LISTEN on a per-schema channel; lf_append NOTIFYs the new head, which PostgreSQL
 * delivers at commit.
 */
#define _GNU_SOURCE
#include "store_int.h"

#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POOL 8
#define TAIL_EVENTS 8192              /* lf_tail: newest events kept in memory */
#define TAIL_BYTES (16 * 1024 * 1024) /* and at most about this much text */
#define FORMAT_VERSION "1"
#define SCHEMA_MAX 48

typedef struct {
    PGconn *conn;
} pg_slot;

typedef struct {
    char *conninfo;
    char schema[SCHEMA_MAX + 1];
    char channel[SCHEMA_MAX + 8];
    pthread_mutex_t lock; /* pool, head, closing */
    pthread_cond_t head_cond;
    lf_slots slots; /* which of pool[] are in use */
    pg_slot pool[POOL];
    int closing;
    int64_t head;  /* highest position seen through NOTIFY or our appends */
    lf_tail *tail; /* read_all of the newest events, shared by our readers */
    pthread_t listener;
    int listener_started;
    /* Appends waiting to go in the next group transaction (pg_append). */
    pthread_mutex_t glock;
    pthread_cond_t gcond;
    struct pg_req *gq_head, *gq_tail;
    int gleader; /* a thread is running a group */
} pg_store;

/* ---- helpers --------------------------------------------------------- */
static int pg_fail(PGconn *c, PGresult *r, const char *what)
{
    const char *m = r ? PQresultErrorMessage(r) : NULL;
    if (!m || !*m) m = c ? PQerrorMessage(c) : "no connection";
    char msg[512];
    snprintf(msg, sizeof msg, "%s", m);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    lf_err_set("postgres: %s: %s", what, msg);
    return LF_EIO;
}

static int exec_ok(PGconn *c, const char *sql, const char *what)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) ? 0 : pg_fail(c, r, what);
    PQclear(r);
    return rc;
}

/* Splits our "schema=" parameter off the URL; the rest goes to libpq. */
static int parse_url(const char *url, char **conninfo, char *schema, char *err, size_t errlen)
{
    snprintf(schema, SCHEMA_MAX + 1, "lockerfleet");
    char *u = lf_strdup(url);
    char *q = strchr(u, '?');
    if (q) {
        lf_buf rest;
        lf_buf_init(&rest, 0);
        char *save = NULL;
        for (char *p = strtok_r(q + 1, "&", &save); p; p = strtok_r(NULL, "&", &save)) {
            if (strncmp(p, "schema=", 7) == 0) {
                const char *v = p + 7;
                size_t n = strlen(v);
                int ok = n >= 1 && n <= SCHEMA_MAX;
                for (size_t i = 0; ok && i < n; i++)
                    ok =
                        (v[i] >= 'a' && v[i] <= 'z') || (v[i] >= '0' && v[i] <= '9') || v[i] == '_';
                if (!ok) {
                    snprintf(err, errlen, "postgres URL: schema must be [a-z0-9_]{1,%d}",
                             SCHEMA_MAX);
                    lf_buf_free(&rest);
                    free(u);
                    return LF_EINVAL;
                }
                snprintf(schema, SCHEMA_MAX + 1, "%s", v);
            } else {
                lf_buf_printf(&rest, "%s%s", rest.len ? "&" : "", p);
            }
        }
        *q = '\0';
        *conninfo = rest.len ? lf_asprintf("%s?%s", u, rest.data) : lf_strdup(u);
        lf_buf_free(&rest);
        free(u);
        return 0;
    }
    *conninfo = u;
    return 0;
}

static const char *SCHEMA_SQL =
    "CREATE TABLE IF NOT EXISTS lf_meta(k text PRIMARY KEY, v text NOT NULL);"
    "INSERT INTO lf_meta VALUES ('format', '" FORMAT_VERSION "') ON CONFLICT DO NOTHING;"
    "CREATE TABLE IF NOT EXISTS lf_events("
    " position bigint PRIMARY KEY, stream text NOT NULL, version bigint NOT NULL,"
    " id uuid NOT NULL UNIQUE, type text NOT NULL, time bigint NOT NULL,"
    " data text NOT NULL, meta text NOT NULL, UNIQUE(stream, version));"
    "CREATE OR REPLACE FUNCTION lf_immutable() RETURNS trigger LANGUAGE plpgsql AS"
    " $$BEGIN RAISE EXCEPTION 'events are immutable'; END$$;"
    "CREATE TRIGGER lf_events_immutable BEFORE UPDATE OR DELETE OR TRUNCATE ON lf_events"
    " FOR EACH STATEMENT EXECUTE FUNCTION lf_immutable();";

/* One append: lock, idempotency, version check, insert, notify. Replaced at
 * every open (CREATE OR REPLACE), so a store created by an older build gets
 * the current body.
 *
 * No statement here may have a plan that scans lf_events: PL/pgSQL caches a
 * generic plan after five calls, and one made while the table was small
 * ("id = ANY(p_ids)" as a Seq Scan) stayed in use as the table grew: every
 * append scanned the whole table (16 ms per batch of 100 at 20k events,
 * bench/RESULTS.md "Backends vs their raw engines").
 * So ids are looked up only by equality on the unique index, and the
 * insert itself is the "is any id stored?" check (unique_violation on
 * lf_events_id_key -> 'exist'; the block's subtransaction undoes it). */
static const char *APPEND_FN_SQL =
    "CREATE OR REPLACE FUNCTION lf_append(p_stream text, p_expected bigint, p_ids uuid[],"
    "  p_types text[], p_times bigint[], p_data text[], p_meta text[], p_channel text,"
    "  OUT o_status text, OUT o_first bigint, OUT o_last bigint, OUT o_ver bigint,"
    "  OUT o_detail text)"
    " LANGUAGE plpgsql AS $$\n"
    "DECLARE n int := cardinality(p_ids); v bigint; h bigint; r record; prev bigint := 0;\n"
    "  c text;\n"
    "BEGIN\n"
    "  PERFORM pg_advisory_xact_lock(hashtext('lf_append'), hashtext(current_schema()));\n"
    "  o_first := 0; o_last := 0; o_ver := 0; o_detail := '';\n"
    "  SELECT e.position INTO r FROM lf_events e WHERE e.id = p_ids[1];\n"
    "  IF FOUND THEN\n"
    "    FOR i IN 1..n LOOP\n"
    "      SELECT e.position, e.version, e.stream INTO r FROM lf_events e WHERE e.id = p_ids[i];\n"
    "      IF NOT FOUND OR r.stream <> p_stream OR r.position <= prev THEN\n"
    "        o_status := 'exist';\n"
    "        o_detail := format('event %s: id already stored in another stream or order,'\n"
    "                           ' or the batch is partly stored already', i - 1);\n"
    "        RETURN;\n"
    "      END IF;\n"
    "      IF i = 1 THEN o_first := r.position; END IF;\n"
    "      prev := r.position; o_ver := r.version;\n"
    "    END LOOP;\n"
    "    o_status := 'dup'; o_last := prev; RETURN;\n"
    "  END IF;\n"
    "  SELECT coalesce(max(e.version), 0) INTO v FROM lf_events e WHERE e.stream = p_stream;\n"
    "  IF (p_expected = -2 AND v > 0) OR (p_expected >= 1 AND p_expected <> v) THEN\n"
    "    FOR i IN 2..n LOOP\n" /* a stored id wins over a conflict, as before */
    "      PERFORM 1 FROM lf_events e WHERE e.id = p_ids[i];\n"
    "      IF FOUND THEN\n"
    "        o_status := 'exist'; o_detail := 'an event id of the batch is already stored';\n"
    "        RETURN;\n"
    "      END IF;\n"
    "    END LOOP;\n"
    "    o_status := 'conflict'; o_ver := v;\n"
    "    o_detail := format('stream ''%s'' is at version %s, expected %s', p_stream, v,\n"
    "                       CASE WHEN p_expected = -2 THEN 'none' ELSE p_expected::text END);\n"
    "    RETURN;\n"
    "  END IF;\n"
    "  SELECT coalesce(max(e.position), 0) INTO h FROM lf_events e;\n"
    "  BEGIN\n"
    "    INSERT INTO lf_events(position, stream, version, id, type, time, data, meta)\n"
    "      SELECT h + x.o, p_stream, v + x.o, x.id, x.t, x.tm, x.d, x.m\n"
    "      FROM unnest(p_ids, p_types, p_times, p_data, p_meta)\n"
    "           WITH ORDINALITY AS x(id, t, tm, d, m, o);\n"
    "  EXCEPTION WHEN unique_violation THEN\n"
    "    GET STACKED DIAGNOSTICS c = CONSTRAINT_NAME;\n"
    "    IF c IS DISTINCT FROM 'lf_events_id_key' THEN RAISE; END IF;\n"
    "    o_status := 'exist'; o_detail := 'an event id of the batch is already stored';\n"
    "    o_first := 0; o_last := 0; o_ver := 0;\n"
    "    RETURN;\n"
    "  END;\n"
    "  PERFORM pg_notify(p_channel, (h + n)::text);\n"
    "  o_status := 'ok'; o_first := h + 1; o_last := h + n; o_ver := v + n;\n"
    "END$$;";

static int conn_open(pg_store *s, PGconn **out)
{
    PGconn *c = PQconnectdb(s->conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        int rc = pg_fail(c, NULL, "connect");
        PQfinish(c);
        return rc;
    }
    char sql[128];
    snprintf(sql, sizeof sql, "SET search_path TO \"%s\"; SET client_min_messages TO warning",
             s->schema);
    int rc = exec_ok(c, sql, "set search_path");
    if (rc) {
        PQfinish(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* Creates or checks the schema. A session advisory lock keeps concurrent
 * openers from racing on CREATE ... IF NOT EXISTS. */
static int init_schema(pg_store *s, PGconn *c, char *err, size_t errlen)
{
    char sql[256];
    int rc = exec_ok(c, "SELECT pg_advisory_lock(hashtext('lf_init'))", "init lock");
    if (rc) goto out_nolock;
    PGresult *r = PQexec(c, "SHOW synchronous_commit");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && strcmp(PQgetvalue(r, 0, 0), "off") == 0) {
        snprintf(err, errlen, "postgres: synchronous_commit=off would lose acknowledged appends");
        PQclear(r);
        rc = LF_EINVAL;
        goto out;
    }
    PQclear(r);
    snprintf(sql, sizeof sql, "CREATE SCHEMA IF NOT EXISTS \"%s\"", s->schema);
    if ((rc = exec_ok(c, sql, "create schema"))) goto fail;
    /* A schema holding other tables but not ours is someone else's. */
    const char *params[1] = {s->schema};
    r = PQexecParams(c,
                     "SELECT (SELECT count(*) FROM pg_tables WHERE schemaname=$1),"
                     " (SELECT count(*) FROM pg_tables WHERE schemaname=$1 AND"
                     "  tablename='lf_meta')",
                     1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = pg_fail(c, r, "inspect schema");
        PQclear(r);
        goto fail;
    }
    long ntables = atol(PQgetvalue(r, 0, 0)), nmeta = atol(PQgetvalue(r, 0, 1));
    PQclear(r);
    if (ntables > 0 && nmeta == 0) {
        snprintf(err, errlen, "postgres schema '%s' holds tables that are not a lockerfleet store",
                 s->schema);
        rc = LF_ECORRUPT;
        goto out;
    }
    if (nmeta) {
        r = PQexec(c, "SELECT v FROM lf_meta WHERE k='format'");
        int ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
                 strcmp(PQgetvalue(r, 0, 0), FORMAT_VERSION) == 0;
        PQclear(r);
        if (!ok) {
            snprintf(err, errlen, "postgres schema '%s' has another store format than %s",
                     s->schema, FORMAT_VERSION);
            rc = LF_ECORRUPT;
            goto out;
        }
    }
    if (nmeta) { /* created before (format checked): refresh the append function */
        if ((rc = exec_ok(c, APPEND_FN_SQL, "create lf_append"))) goto fail;
        goto out;
    }
    if ((rc = exec_ok(c, "BEGIN", "begin")) || (rc = exec_ok(c, SCHEMA_SQL, "create schema")) ||
        (rc = exec_ok(c, APPEND_FN_SQL, "create lf_append")) ||
        (rc = exec_ok(c, "COMMIT", "commit"))) {
        exec_ok(c, "ROLLBACK", "rollback");
        goto fail;
    }
    goto out;
fail:
    snprintf(err, errlen, "%s", lf_err_get());
out:
    exec_ok(c, "SELECT pg_advisory_unlock(hashtext('lf_init'))", "init unlock");
    return rc;
out_nolock:
    snprintf(err, errlen, "%s", lf_err_get());
    return rc;
}

/* The lease table (not part of the event format: coordination state beside
 * the log, see lf_store_lease). Created under the init lock because
 * concurrent CREATE TABLE IF NOT EXISTS can fail on the catalog. */
static int init_leases(PGconn *c)
{
    int rc = exec_ok(c, "SELECT pg_advisory_lock(hashtext('lf_init'))", "init lock");
    if (rc) return rc;
    rc = exec_ok(c,
                 "CREATE TABLE IF NOT EXISTS lf_leases(name text PRIMARY KEY,"
                 " owner text NOT NULL, expires timestamptz NOT NULL)",
                 "create lf_leases");
    exec_ok(c, "SELECT pg_advisory_unlock(hashtext('lf_init'))", "init unlock");
    return rc;
}

/* ---- pool ------------------------------------------------------------ */
static int conn_get(pg_store *s, int *idx)
{
    int rc = lf_slots_take(&s->slots, idx);
    if (rc) {
        lf_err_set("postgres: store is closing");
        return rc;
    }
    pg_slot *sl = &s->pool[*idx];
    /* A broken connection (server restart) is replaced. */
    if (sl->conn && PQstatus(sl->conn) != CONNECTION_OK) {
        PQfinish(sl->conn);
        sl->conn = NULL;
    }
    if (!sl->conn && (rc = conn_open(s, &sl->conn))) lf_slots_give(&s->slots, *idx);
    return rc;
}

static void conn_put(pg_store *s, int idx)
{
    lf_slots_give(&s->slots, idx);
}

static void head_seen(pg_store *s, int64_t h)
{
    pthread_mutex_lock(&s->lock);
    if (h > s->head) {
        s->head = h;
        pthread_cond_broadcast(&s->head_cond);
    }
    pthread_mutex_unlock(&s->lock);
}

/* ---- listener -------------------------------------------------------- */
static int listen_open(pg_store *s, PGconn **out)
{
    PGconn *c = NULL;
    int rc = conn_open(s, &c);
    if (rc) return rc;
    char sql[128];
    snprintf(sql, sizeof sql, "LISTEN \"%s\"", s->channel);
    if ((rc = exec_ok(c, sql, "listen"))) {
        PQfinish(c);
        return rc;
    }
    *out = c;
    return 0;
}

static void *listener_main(void *arg)
{
    pg_store *s = arg;
    PGconn *c = NULL;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        int closing = s->closing;
        pthread_mutex_unlock(&s->lock);
        if (closing) break;
        if (!c || PQstatus(c) != CONNECTION_OK) {
            if (c) PQfinish(c);
            c = NULL;
            if (listen_open(s, &c)) {
                lf_sleep_ms(200);
                continue;
            }
            /* Notifications may have been missed: wake waiters to re-check. */
            pthread_mutex_lock(&s->lock);
            pthread_cond_broadcast(&s->head_cond);
            pthread_mutex_unlock(&s->lock);
        }
        struct pollfd pfd = {.fd = PQsocket(c), .events = POLLIN};
        if (poll(&pfd, 1, 100) < 0) continue;
        if (!PQconsumeInput(c)) continue; /* reconnects on the next turn */
        PGnotify *nt;
        int64_t h = 0;
        while ((nt = PQnotifies(c))) {
            int64_t v = 0;
            if (nt->extra && lf_parse_i64(nt->extra, &v) == 0 && v > h) h = v;
            PQfreemem(nt);
        }
        if (h) head_seen(s, h);
    }
    if (c) PQfinish(c);
    return NULL;
}

/* ---- open / close ---------------------------------------------------- */
static void pg_close(void *impl);

static int pg_open(const char *url, void **impl, char *err, size_t errlen)
{
    pg_store *s = lf_xcalloc(1, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    lf_slots_init(&s->slots, &s->lock, &s->closing, POOL);
    pthread_cond_init(&s->head_cond, NULL);
    pthread_mutex_init(&s->glock, NULL);
    pthread_cond_init(&s->gcond, NULL);
    s->tail = lf_tail_new(TAIL_EVENTS, TAIL_BYTES);
    int rc = parse_url(url, &s->conninfo, s->schema, err, errlen);
    if (rc) goto fail;
    snprintf(s->channel, sizeof s->channel, "lf_%s", s->schema);
    if ((rc = conn_open(s, &s->pool[0].conn))) {
        snprintf(err, errlen, "%s", lf_err_get());
        goto fail;
    }
    if ((rc = init_schema(s, s->pool[0].conn, err, errlen))) goto fail;
    if ((rc = init_leases(s->pool[0].conn))) {
        snprintf(err, errlen, "%s", lf_err_get());
        goto fail;
    }
    PGresult *r = PQexec(s->pool[0].conn, "SELECT coalesce(max(position), 0) FROM lf_events");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = pg_fail(s->pool[0].conn, r, "head");
        snprintf(err, errlen, "%s", lf_err_get());
        PQclear(r);
        goto fail;
    }
    lf_parse_i64(PQgetvalue(r, 0, 0), &s->head);
    PQclear(r);
    if (pthread_create(&s->listener, NULL, listener_main, s) != 0) {
        snprintf(err, errlen, "postgres: cannot start the listener thread");
        rc = LF_EIO;
        goto fail;
    }
    s->listener_started = 1;
    *impl = s;
    return 0;
fail:
    pg_close(s);
    return rc;
}

static void pg_close(void *impl)
{
    pg_store *s = impl;
    if (!s) return;
    pthread_mutex_lock(&s->lock);
    s->closing = 1;
    pthread_cond_broadcast(&s->head_cond);
    lf_slots_drain_locked(&s->slots);
    pthread_mutex_unlock(&s->lock);
    if (s->listener_started) pthread_join(s->listener, NULL);
    for (int i = 0; i < POOL; i++)
        if (s->pool[i].conn) PQfinish(s->pool[i].conn);
    pthread_mutex_destroy(&s->lock);
    lf_slots_destroy(&s->slots);
    pthread_cond_destroy(&s->head_cond);
    pthread_mutex_destroy(&s->glock);
    pthread_cond_destroy(&s->gcond);
    lf_tail_free(s->tail);
    free(s->conninfo);
    free(s);
}

/* ---- append ---------------------------------------------------------- */
/* Adds one element to a PostgreSQL array literal: "..." with " and \
 * escaped. */
static void array_add(lf_buf *b, const char *v)
{
    lf_buf_append(b, b->len > 1 ? ",\"" : "\"", b->len > 1 ? 2 : 1);
    const char *p = v;
    while (*p) {
        size_t run = strcspn(p, "\"\\");
        lf_buf_append(b, p, run);
        p += run;
        if (*p) {
            char esc[2] = {'\\', *p++};
            lf_buf_append(b, esc, 2);
        }
    }
    lf_buf_append(b, "\"", 1);
}

/* One append waiting for its group (see pg_append). */
typedef struct pg_req {
    const char *params[8];
    size_t n;
    int rc, done;
    char err[256];
    lf_append_result res;
    struct pg_req *next;
} pg_req;

#define APPEND_SQL "SELECT * FROM lf_append($1,$2,$3,$4,$5,$6,$7,$8)"
#define GROUP_MAX_EVENTS 5000 /* events per group transaction (one append may be more) */

/* Reads lf_append's row into q. */
static void take_row(pg_req *q, PGconn *c, PGresult *r)
{
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        q->rc = pg_fail(c, r, "append");
        snprintf(q->err, sizeof q->err, "%s", lf_err_get());
        return;
    }
    const char *st = PQgetvalue(r, 0, 0);
    int64_t first = 0, last = 0, ver = 0;
    lf_parse_i64(PQgetvalue(r, 0, 1), &first);
    lf_parse_i64(PQgetvalue(r, 0, 2), &last);
    lf_parse_i64(PQgetvalue(r, 0, 3), &ver);
    q->err[0] = '\0';
    if (strcmp(st, "ok") == 0 || strcmp(st, "dup") == 0) {
        q->res.first_position = first;
        q->res.last_position = last;
        q->res.last_version = ver;
        q->res.duplicate = st[0] == 'd';
        q->rc = 0;
    } else {
        snprintf(q->err, sizeof q->err, "%s", PQgetvalue(r, 0, 4));
        q->rc = strcmp(st, "conflict") == 0 ? LF_ECONFLICT : LF_EEXIST;
    }
}

/* k > 1 appends in one transaction, one round trip (pipeline mode). Each
 * lf_append answers conflict/exist as a row, so one append's refusal does
 * not undo the others'. Returns 0 when the transaction committed (every
 * q filled), -1 when it did not (nothing stored: run them one by one). */
static int run_pipeline(PGconn *c, pg_req **qs, int k)
{
    if (!PQenterPipelineMode(c)) return -1;
    int ok = PQsendQueryParams(c, "BEGIN", 0, NULL, NULL, NULL, NULL, 0);
    for (int i = 0; ok && i < k; i++)
        ok = PQsendQueryParams(c, APPEND_SQL, 8, NULL, qs[i]->params, NULL, NULL, 0);
    ok = ok && PQsendQueryParams(c, "COMMIT", 0, NULL, NULL, NULL, NULL, 0);
    ok = ok && PQpipelineSync(c);
    /* Results: BEGIN, k rows, COMMIT, each ended by NULL, then the sync. */
    for (int i = 0; ok && i < k + 2; i++) {
        PGresult *r = PQgetResult(c);
        if (!r) {
            ok = 0;
            break;
        }
        if (i >= 1 && i <= k)
            take_row(qs[i - 1], c, r);
        else
            ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (i >= 1 && i <= k && PQresultStatus(r) != PGRES_TUPLES_OK) ok = 0;
        PQclear(r);
        if ((r = PQgetResult(c))) { /* not the NULL that ends a result */
            PQclear(r);
            ok = 0;
        }
    }
    for (;;) { /* up to the sync (also after a failure) */
        PGresult *r = PQgetResult(c);
        if (!r) {
            if (PQstatus(c) != CONNECTION_OK) break;
            continue;
        }
        ExecStatusType st = PQresultStatus(r);
        PQclear(r);
        if (st == PGRES_PIPELINE_SYNC) break;
    }
    if (!PQexitPipelineMode(c)) ok = 0;
    return ok ? 0 : -1;
}

/* Runs the group qs[0..k): one transaction when k > 1 (falls back to one
 * call each if it did not commit). */
static void run_group(pg_store *s, pg_req **qs, int k)
{
    int idx, rc = conn_get(s, &idx);
    if (rc) {
        for (int i = 0; i < k; i++) {
            qs[i]->rc = rc;
            snprintf(qs[i]->err, sizeof qs[i]->err, "%s", lf_err_get());
        }
        return;
    }
    PGconn *c = s->pool[idx].conn;
    if (k > 1 && run_pipeline(c, qs, k) != 0) {
        if (PQstatus(c) != CONNECTION_OK || PQpipelineStatus(c) != PQ_PIPELINE_OFF) {
            PQfinish(c); /* replaced by the next conn_get */
            s->pool[idx].conn = NULL;
            conn_put(s, idx);
            if ((rc = conn_get(s, &idx))) {
                for (int i = 0; i < k; i++) {
                    qs[i]->rc = rc;
                    snprintf(qs[i]->err, sizeof qs[i]->err, "%s", lf_err_get());
                }
                return;
            }
            c = s->pool[idx].conn;
        }
        k = -k; /* one by one below */
    }
    if (k <= 1) {
        for (int i = 0; i < (k < 0 ? -k : k); i++) {
            PGresult *r = PQexecParams(c, APPEND_SQL, 8, NULL, qs[i]->params, NULL, NULL, 0);
            take_row(qs[i], c, r);
            PQclear(r);
        }
        k = k < 0 ? -k : k;
    }
    conn_put(s, idx);
    for (int i = 0; i < k; i++)
        if (qs[i]->rc == 0 && !qs[i]->res.duplicate) head_seen(s, qs[i]->res.last_position);
}

/* Appends go through a combiner: a thread that finds no group running runs
 * its own append and every other one queued by then (up to
 * GROUP_MAX_EVENTS) in one transaction; the others wait for it. Appends
 * are serialised by the advisory lock anyway, so concurrent appenders of a
 * process would otherwise each pay a commit (one WAL flush) in turn; in a
 * group they share it. A lone appender runs at once, as before. */
static int pg_append(void *impl, const char *stream, int64_t expected, const lf_event_in *evs,
                     size_t n, lf_append_result *res)
{
    pg_store *s = impl;
    lf_buf arr[5]; /* ids, types, times, data, meta */
    for (int k = 0; k < 5; k++) {
        lf_buf_init(&arr[k], 0);
        lf_buf_append(&arr[k], "{", 1);
    }
    int64_t now = lf_now_ms();
    for (size_t i = 0; i < n; i++) {
        const lf_event_in *e = &evs[i];
        char gen[LF_UUID_LEN], tm[24];
        if (!e->id || !*e->id) lf_uuid_v7(gen);
        array_add(&arr[0], e->id && *e->id ? e->id : gen);
        array_add(&arr[1], e->type);
        snprintf(tm, sizeof tm, "%lld", (long long)(e->time_ms ? e->time_ms : now));
        array_add(&arr[2], tm);
        array_add(&arr[3], e->data);
        array_add(&arr[4], e->meta ? e->meta : "{}");
    }
    for (int k = 0; k < 5; k++)
        lf_buf_append(&arr[k], "}", 2); /* with the NUL */
    char exp[24];
    snprintf(exp, sizeof exp, "%lld", (long long)expected);
    pg_req me = {.params = {stream, exp, arr[0].data, arr[1].data, arr[2].data, arr[3].data,
                            arr[4].data, s->channel},
                 .n = n};

    pthread_mutex_lock(&s->glock);
    if (s->gq_tail)
        s->gq_tail->next = &me;
    else
        s->gq_head = &me;
    s->gq_tail = &me;
    while (!me.done) {
        if (s->gleader) {
            pthread_cond_wait(&s->gcond, &s->glock);
            continue;
        }
        s->gleader = 1;
        pg_req *qs[64];
        int k = 0;
        size_t events = 0;
        while (s->gq_head && k < 64 && (k == 0 || events + s->gq_head->n <= GROUP_MAX_EVENTS)) {
            pg_req *q = s->gq_head;
            s->gq_head = q->next;
            if (!s->gq_head) s->gq_tail = NULL;
            q->next = NULL;
            events += q->n;
            qs[k++] = q;
        }
        pthread_mutex_unlock(&s->glock);
        run_group(s, qs, k);
        pthread_mutex_lock(&s->glock);
        for (int i = 0; i < k; i++)
            qs[i]->done = 1;
        s->gleader = 0;
        pthread_cond_broadcast(&s->gcond);
    }
    pthread_mutex_unlock(&s->glock);

    int rc = me.rc;
    if (rc)
        lf_err_set("%s", me.err);
    else
        *res = me.res;
    for (int k = 0; k < 5; k++)
        lf_buf_free(&arr[k]);
    return rc;
}

/* ---- reads ----------------------------------------------------------- */
#define EVENT_COLS "position, stream, version, id, type, time, data, meta"

static int pg_query(pg_store *s, const char *sql, int nparams, const char *const *params,
                    PGresult **out)
{
    int idx, rc = conn_get(s, &idx);
    if (rc) return rc;
    PGconn *c = s->pool[idx].conn;
    PGresult *r = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = pg_fail(c, r, "read");
        PQclear(r);
        r = NULL;
    }
    conn_put(s, idx);
    *out = r;
    return rc;
}

static int read_events(pg_store *s, const char *sql, int nparams, const char *const *params,
                       lf_event_list *out)
{
    PGresult *r;
    int rc = pg_query(s, sql, nparams, params, &r);
    if (rc) return rc;
    for (int i = 0, n = PQntuples(r); i < n; i++) {
        lf_event *e = lf_event_list_push_copy(
            out, PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1), PQgetvalue(r, i, 4),
            (size_t)PQgetlength(r, i, 4), PQgetvalue(r, i, 6), (size_t)PQgetlength(r, i, 6),
            PQgetvalue(r, i, 7), (size_t)PQgetlength(r, i, 7));
        lf_parse_i64(PQgetvalue(r, i, 0), &e->position);
        lf_parse_i64(PQgetvalue(r, i, 2), &e->version);
        snprintf(e->id, sizeof e->id, "%s", PQgetvalue(r, i, 3));
        lf_parse_i64(PQgetvalue(r, i, 5), &e->time_ms);
    }
    PQclear(r);
    return 0;
}

static int pg_read_stream(void *impl, const char *stream, int64_t from_version, size_t max,
                          lf_event_list *out)
{
    char from[24], lim[24];
    snprintf(from, sizeof from, "%lld", (long long)from_version);
    snprintf(lim, sizeof lim, "%llu", (unsigned long long)(max > INT64_MAX ? INT64_MAX : max));
    const char *params[3] = {stream, from, lim};
    return read_events(impl,
                       "SELECT " EVENT_COLS " FROM lf_events WHERE stream = $1 AND version >= $2"
                       " ORDER BY version LIMIT $3",
                       3, params, out);
}

static int pg_read_all_server(void *impl, int64_t after, size_t max, lf_event_list *out)
{
    char from[24], lim[24];
    snprintf(from, sizeof from, "%lld", (long long)after);
    snprintf(lim, sizeof lim, "%llu", (unsigned long long)(max > INT64_MAX ? INT64_MAX : max));
    const char *params[2] = {from, lim};
    /* Safe without a horizon: commits are serialised in position order. */
    return read_events(impl,
                       "SELECT " EVENT_COLS " FROM lf_events WHERE position > $1"
                       " ORDER BY position LIMIT $2",
                       2, params, out);
}

/* Through the shared tail: the hub's readers at the top of the log (each
 * projection, the fleet, the registry...) share one query (store_tail.c). */
static int pg_read_all(void *impl, int64_t after, size_t max, lf_event_list *out)
{
    pg_store *s = impl;
    return lf_tail_read_all(s->tail, after, max, out, pg_read_all_server, s);
}

static int query_i64(pg_store *s, const char *sql, const char *param, int64_t *out)
{
    PGresult *r;
    const char *params[1] = {param};
    int rc = pg_query(s, sql, param ? 1 : 0, params, &r);
    if (rc) return rc;
    *out = 0;
    if (PQntuples(r) == 1) lf_parse_i64(PQgetvalue(r, 0, 0), out);
    PQclear(r);
    return 0;
}

static int pg_head(void *impl, int64_t *pos)
{
    pg_store *s = impl;
    int rc = query_i64(s, "SELECT coalesce(max(position), 0) FROM lf_events", NULL, pos);
    if (rc == 0) head_seen(s, *pos);
    return rc;
}

static int pg_stream_version(void *impl, const char *stream, int64_t *version)
{
    return query_i64(impl, "SELECT coalesce(max(version), 0) FROM lf_events WHERE stream = $1",
                     stream, version);
}

static int pg_wait(void *impl, int64_t after, int timeout_ms)
{
    pg_store *s = impl;
    /* Capped so that a lost notification (listener reconnecting) costs at
     * most this much latency; store.c re-checks the head. */
    int wait = timeout_ms < 1000 ? timeout_ms : 1000;
    struct timespec ts;
    lf_abstime_us((int64_t)wait * 1000, &ts);
    int rc = 0;
    pthread_mutex_lock(&s->lock);
    if (!s->closing && s->head <= after) pthread_cond_timedwait(&s->head_cond, &s->lock, &ts);
    if (s->closing) rc = LF_ECLOSED;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* ---- leases ----------------------------------------------------------
 * One statement each, timed by the server's clock (clock_timestamp()), so
 * hub nodes on machines whose clocks differ still agree on expiry. The
 * UPSERT's WHERE makes acquire-or-renew atomic: the row lock taken by
 * ON CONFLICT serialises racers, and only a free, expired or own lease is
 * overwritten. */
#define LEASE_COLS "name, owner, (extract(epoch FROM expires - clock_timestamp()) * 1000)::bigint"

static void lease_row(PGresult *r, int i, lf_lease *out)
{
    snprintf(out->name, sizeof out->name, "%s", PQgetvalue(r, i, 0));
    snprintf(out->owner, sizeof out->owner, "%s", PQgetvalue(r, i, 1));
    lf_parse_i64(PQgetvalue(r, i, 2), &out->left_ms);
}

static int pg_lease(void *impl, const char *name, const char *owner, int64_t ttl_ms, lf_lease *out)
{
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%lld", (long long)ttl_ms);
    const char *params[3] = {name, owner, ttl};
    PGresult *r = NULL;
    int rc = 0;
    /* A racer's insert committed after our snapshot shows in neither branch
     * (zero rows): ask again. */
    for (int attempt = 0; attempt < 5; attempt++) {
        if (r) PQclear(r);
        rc = pg_query(impl,
                      "WITH up AS (INSERT INTO lf_leases AS l(name, owner, expires)"
                      " VALUES($1, $2, clock_timestamp() + $3::bigint * interval '1 millisecond')"
                      " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner,"
                      " expires = excluded.expires"
                      " WHERE l.owner = excluded.owner OR l.expires <= clock_timestamp()"
                      " RETURNING " LEASE_COLS ")"
                      " SELECT * FROM up UNION ALL"
                      " SELECT " LEASE_COLS " FROM lf_leases WHERE name = $1"
                      " AND NOT EXISTS (SELECT 1 FROM up)",
                      3, params, &r);
        if (rc) return rc;
        if (PQntuples(r) == 1) break;
    }
    if (PQntuples(r) != 1) {
        PQclear(r);
        lf_err_set("postgres: lease %s: no row", name);
        return LF_EIO;
    }
    lease_row(r, 0, out);
    PQclear(r);
    if (strcmp(out->owner, owner) != 0) {
        lf_err_set("lease %s is held by %s", name, out->owner);
        return LF_ECONFLICT;
    }
    return 0;
}

static int pg_lease_release(void *impl, const char *name, const char *owner)
{
    const char *params[2] = {name, owner};
    PGresult *r;
    int rc = pg_query(impl, "DELETE FROM lf_leases WHERE name = $1 AND owner = $2 RETURNING name",
                      2, params, &r);
    if (rc == 0) PQclear(r);
    return rc;
}

static int pg_lease_list(void *impl, const char *prefix, lf_lease *out, size_t max, size_t *n)
{
    char lim[24];
    snprintf(lim, sizeof lim, "%zu", max);
    const char *params[2] = {prefix, lim};
    PGresult *r;
    int rc = pg_query(impl,
                      "SELECT " LEASE_COLS " FROM lf_leases WHERE starts_with(name, $1)"
                      " AND expires > clock_timestamp() ORDER BY name COLLATE \"C\" LIMIT $2",
                      2, params, &r);
    if (rc) return rc;
    for (int i = 0, k = PQntuples(r); i < k && *n < max; i++)
        lease_row(r, i, &out[(*n)++]);
    PQclear(r);
    return 0;
}

const lf_store_ops lf_store_postgres_ops = {
    .name = "postgres",
    .open = pg_open,
    .close = pg_close,
    .append = pg_append,
    .read_stream = pg_read_stream,
    .read_all = pg_read_all,
    .head = pg_head,
    .stream_version = pg_stream_version,
    .wait = pg_wait,
    .lease = pg_lease,
    .lease_release = pg_lease_release,
    .lease_list = pg_lease_list,
};
