/*
 * store_nats.c — the event store on NATS JetStream (libnats), URL
 * "nats://HOST:PORT[,nats://HOST2:PORT2...][/STREAM][?replicas=N]"
 * (STREAM defaults to "LF", replicas to 1).
 *
 * Layout: one JetStream stream STREAM (file storage) with subjects
 * "STREAM.e.<stream>", the event stream's name escaped into one subject
 * token (bytes outside [A-Za-z0-9_-] become "=XX"). One JetStream message
 * per append carries the whole batch, so a batch is all-or-nothing by
 * construction (nats-server 2.9 has no atomic multi-message publish). A
 * second stream STREAM_IDS indexes client-given event ids.
 *
 * Positions: the message at stream sequence `seq` holding n events gives
 * them positions seq*K + (K - n) + i, i = 0..n-1, with K = LF_BATCH_MAX
 * (100,000 >= any n). So positions strictly increase with the sequence and
 * inside a batch, the last event of every message sits at seq*K + K-1 (the
 * head is (last_seq+1)*K - 1 without reading the message) and a position
 * maps back to its message by arithmetic. Positions are NOT contiguous:
 * they jump between messages (documented; the crash test runs with
 * LF_TEST_ALLOW_GAPS=1). JetStream assigns sequences in order and a
 * message is readable once its sequence is, so readers see a prefix.
 *
 * Expected version: the last message on the subject tells the stream's
 * version (its first version + n - 1) and its sequence; the publish carries
 * Nats-Expected-Last-Subject-Sequence (or expect-no-message), so the
 * server refuses it if anyone appended to that stream in between. ANY
 * retries that loop; an exact version reports LF_ECONFLICT.
 *
 * Idempotency: batches with client ids carry Nats-Msg-Id = first id + a
 * hash of all ids (the server drops a re-publish inside the duplicate
 * window, 1 h here, and answers with the stored sequence), and every client
 * id is recorded in STREAM_IDS ("STREAM.ids.<uuid>" -> position, version,
 * stream) after the batch is stored; an append first looks its ids up
 * there, which is what makes a retry after the window, or a partial
 * overlap, answer like the other backends. The index write follows the
 * batch, so a crash (or a lost reply) in between leaves it to the Msg-Id
 * window — which a cluster does not always honour after a leader change
 * (the new leader answered "wrong last sequence"; tests/conformance/
 * server_kill.c found it). So a retry with an exact expected version that
 * the server refuses also reads the stream at the version it expected to
 * follow: if its batch is there, it is a duplicate (and indexed now).
 *
 * Durability: nats-server 2.9 acknowledges a publish once the message is
 * written to the stream's block file (the OS page cache), and fsyncs on its
 * own timer (2 min by default; 2.10's `sync_interval: always` fsyncs
 * each message before its ack: one fsync per append here). An
 * acknowledged append survives the nats-server process being killed, but
 * not a power loss on a single server. With replicas=3 the ack comes after
 * a quorum of servers has the message, which is the durability NATS
 * offers: losing the acked append needs two machines to lose power within
 * the sync interval.
 *
 * Threads: one natsConnection and jsCtx, which libnats makes safe to share.
 * wait(): the stream RePublishes a headers-only copy of each stored
 * message to "STREAM.stored.<...>"; a subscription there wakes waiters.
 * read_all: a reader that comes back from where it stopped (every
 * subscription) reads through a pull consumer of its own; other reads
 * through message gets (see "read_all through pull consumers").
 */
#define _GNU_SOURCE
#include "store_int.h"

#include <ctype.h>
#include <jansson.h>
#include <nats/nats.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define K ((int64_t)LF_BATCH_MAX)
#define NAME_MAX_ 32
#define GET_WINDOW 64                           /* message-get requests in flight at once */
#define DUP_WINDOW_S 3600                       /* Msg-Id duplicate window */
#define ANY_RETRIES 1000                        /* optimistic retries for LF_EXPECT_ANY */
#define CURSORS 12                              /* pull consumers kept for read_all's readers */
#define CURSOR_FETCH 256                        /* messages per pull request */
#define CURSOR_BYTES (4 * 1024 * 1024)          /* and bytes at most */
#define CURSOR_IDLE_US (20 * 1000000LL)         /* a consumer unused this long is deleted */
#define CURSOR_INACTIVE_NS (120 * 1000000000LL) /* the server drops it after this */

/* A reader of the log that read_all expects back: set after a read that
 * returned events (valid, no consumer yet); the next read that starts
 * where it ended creates a pull consumer from there, and later ones fetch
 * from it. One thread at a time (busy). */
typedef struct {
    int valid, busy;
    int64_t last_pos;      /* the last event returned to this reader */
    natsSubscription *sub; /* pull subscription on an ephemeral consumer, or NULL */
    uint64_t next_seq;     /* the stream sequence the consumer delivers next */
    natsMsgList held;      /* fetched messages from index held_i on not all returned yet */
    int held_i;
    int64_t used_us;
} cursor;

typedef struct {
    natsConnection *nc;
    jsCtx *js;
    natsSubscription *stored_sub;
    char name[NAME_MAX_ + 1], idx_name[NAME_MAX_ + 8];
    int replicas;
    pthread_mutex_t lock;
    pthread_cond_t head_cond;
    int closing;
    int64_t head;
    kvStore *leases;     /* the "<NAME>_LEASES" KV bucket, opened on first use */
    cursor cur[CURSORS]; /* read_all's pull consumers, under lock */
} nt_store;

/* One reply of the message-get API. */
typedef struct {
    int found;
    uint64_t seq;
    unsigned char *data; /* malloc'd, NUL-terminated */
    size_t len;
} got_msg;

static int nt_fail(natsStatus st, jsErrCode jerr, const char *what)
{
    const char *last = nats_GetLastError(NULL);
    lf_err_set("nats: %s: %s%s%s (jetstream error %d)", what, natsStatus_GetText(st),
               last && *last ? ": " : "", last ? last : "", (int)jerr);
    return LF_EIO;
}

/* ---- names ----------------------------------------------------------- */
static char *subject_of(const nt_store *s, const char *kind, const char *name)
{
    lf_buf b;
    lf_buf_init(&b, 0);
    lf_buf_printf(&b, "%s.%s.", s->name, kind);
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (isalnum(*p) || *p == '_' || *p == '-')
            lf_buf_append(&b, p, 1);
        else
            lf_buf_printf(&b, "=%02X", *p);
    }
    lf_buf_append(&b, "", 1);
    return b.data;
}

/* ---- batch encoding ---------------------------------------------------
 * "LF1 <first_version> <n> <stream_len>\n<stream>" then per event
 * "<id> <time_ms> <type_len> <data_len> <meta_len>\n<type><data><meta>". */
static void batch_encode(lf_buf *b, const char *stream, int64_t first_version,
                         const lf_event_in *evs, size_t n, char (*ids)[LF_UUID_LEN])
{
    int64_t now = lf_now_ms();
    lf_buf_printf(b, "LF1 %lld %zu %zu\n%s", (long long)first_version, n, strlen(stream), stream);
    for (size_t i = 0; i < n; i++) {
        const lf_event_in *e = &evs[i];
        const char *meta = e->meta ? e->meta : "{}";
        size_t tl = strlen(e->type), dl = strlen(e->data), ml = strlen(meta);
        lf_buf_printf(b, "%s %lld %zu %zu %zu\n", ids[i],
                      (long long)(e->time_ms ? e->time_ms : now), tl, dl, ml);
        lf_buf_append(b, e->type, tl);
        lf_buf_append(b, e->data, dl);
        lf_buf_append(b, meta, ml);
    }
}

/* Reads "<numbers...>\n" fields; returns a pointer past the newline. */
static const char *scan_line(const char *p, const char *end, int count, int64_t *out)
{
    for (int i = 0; i < count; i++) {
        char *q;
        if (p >= end) return NULL;
        long long v = strtoll(p, &q, 10);
        if (q == p || v < 0) return NULL;
        out[i] = v;
        p = q;
        if (p >= end || *p != (i + 1 == count ? '\n' : ' ')) return NULL;
        p++;
    }
    return p;
}

/* Decodes a batch header: first version, count. */
static int batch_header(const got_msg *m, int64_t *first_version, int64_t *n)
{
    const char *p = (const char *)m->data, *end = p + m->len;
    int64_t h[3];
    if (m->len < 4 || memcmp(p, "LF1 ", 4) != 0 || !scan_line(p + 4, end, 3, h) || h[1] < 1 ||
        h[1] > K) {
        lf_err_set("nats: message %llu is not a lockerfleet batch", (unsigned long long)m->seq);
        return LF_ECORRUPT;
    }
    *first_version = h[0];
    *n = h[1];
    return 0;
}

/* Decodes the events of message m with position > after and version >=
 * min_version, appending at most *room of them to out. */
static int batch_decode(const got_msg *m, int64_t after, int64_t min_version, size_t *room,
                        lf_event_list *out)
{
    const char *p = (const char *)m->data, *end = p + m->len;
    int64_t h[3];
    if (m->len < 4 || memcmp(p, "LF1 ", 4) != 0 || !(p = scan_line(p + 4, end, 3, h)) || h[1] < 1 ||
        h[1] > K || (int64_t)(end - p) < h[2])
        goto bad;
    const char *stream = p;
    size_t slen = (size_t)h[2];
    p += slen;
    int64_t n = h[1];
    for (int64_t i = 0; i < n && *room; i++) {
        if (end - p < 37 || p[36] != ' ') goto bad;
        const char *id = p;
        int64_t f[4];
        const char *q = scan_line(p + 37, end, 4, f);
        if (!q || (int64_t)(end - q) < f[1] + f[2] + f[3]) goto bad;
        int64_t pos = (int64_t)m->seq * K + (K - n) + i, ver = h[0] + i;
        if (pos > after && ver >= min_version) {
            lf_event *e = lf_event_list_push_copy(out, stream, slen, q, (size_t)f[1], q + f[1],
                                                  (size_t)f[2], q + f[1] + f[2], (size_t)f[3]);
            memcpy(e->id, id, 36);
            e->id[36] = '\0';
            e->version = ver;
            e->position = pos;
            e->time_ms = f[0];
            (*room)--;
        }
        p = q + f[1] + f[2] + f[3];
    }
    return 0;
bad:
    lf_err_set("nats: message %llu is not a lockerfleet batch", (unsigned long long)m->seq);
    return LF_ECORRUPT;
}

/* ---- message get, pipelined --------------------------------------------
 * Sends n requests to $JS.API.STREAM.MSG.GET.<stream> (answered by the
 * stream leader, so a read sees every acknowledged append) with up to
 * GET_WINDOW in flight, and fills out[i] (free with got_free). */
static void got_free(got_msg *g, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(g[i].data);
        g[i].data = NULL;
    }
}

static int parse_get_reply(natsMsg *m, got_msg *g)
{
    json_error_t je;
    json_t *root = json_loadb(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), 0, &je);
    int rc = 0;
    if (!root) {
        lf_err_set("nats: bad message-get reply: %s", je.text);
        return LF_EIO;
    }
    json_t *err = json_object_get(root, "error");
    json_t *msg = json_object_get(root, "message");
    if (err) {
        json_int_t code = json_integer_value(json_object_get(err, "code"));
        if (code == 404) {
            g->found = 0;
        } else {
            lf_err_set("nats: message get: %s",
                       json_string_value(json_object_get(err, "description"))
                           ? json_string_value(json_object_get(err, "description"))
                           : "error");
            rc = LF_EIO;
        }
    } else if (msg) {
        const char *b64 = json_string_value(json_object_get(msg, "data"));
        size_t bl = b64 ? strlen(b64) : 0;
        g->found = 1;
        g->seq = (uint64_t)json_integer_value(json_object_get(msg, "seq"));
        g->data = lf_xmalloc(bl / 4 * 3 + 4);
        if (bl && sodium_base642bin(g->data, bl / 4 * 3 + 3, b64, bl, NULL, &g->len, NULL,
                                    sodium_base64_VARIANT_ORIGINAL) != 0) {
            lf_err_set("nats: message %llu: bad base64", (unsigned long long)g->seq);
            rc = LF_EIO;
        }
        if (!bl) g->len = 0;
        g->data[g->len] = '\0';
    } else {
        lf_err_set("nats: unexpected message-get reply");
        rc = LF_EIO;
    }
    json_decref(root);
    return rc;
}

static int get_many(nt_store *s, const char *stream, size_t n, char **bodies, got_msg *out)
{
    memset(out, 0, n * sizeof *out);
    natsInbox *inbox = NULL;
    natsSubscription *sub = NULL;
    char subj[128], wild[128], reply[160];
    int rc = 0;
    natsStatus st = natsInbox_Create(&inbox);
    if (st == NATS_OK) {
        snprintf(wild, sizeof wild, "%s.*", (const char *)inbox);
        st = natsConnection_SubscribeSync(&sub, s->nc, wild);
    }
    if (st != NATS_OK) {
        rc = nt_fail(st, 0, "message get subscribe");
        goto out;
    }
    snprintf(subj, sizeof subj, "$JS.API.STREAM.MSG.GET.%s", stream);
    size_t sent = 0, done = 0;
    while (done < n && !rc) {
        while (sent < n && sent - done < GET_WINDOW) {
            snprintf(reply, sizeof reply, "%s.%zu", (const char *)inbox, sent);
            st = natsConnection_PublishRequest(s->nc, subj, reply, bodies[sent],
                                               (int)strlen(bodies[sent]));
            if (st != NATS_OK) {
                rc = nt_fail(st, 0, "message get request");
                goto out;
            }
            sent++;
        }
        natsMsg *m = NULL;
        st = natsSubscription_NextMsg(&m, sub, 10000);
        if (st != NATS_OK) {
            rc = nt_fail(st, 0, "message get reply");
            break;
        }
        const char *dot = strrchr(natsMsg_GetSubject(m), '.');
        int64_t idx = -1;
        if (dot && lf_parse_i64(dot + 1, &idx) == 0 && idx >= 0 && (size_t)idx < sent) {
            rc = parse_get_reply(m, &out[idx]);
            done++;
        }
        natsMsg_Destroy(m);
    }
out:
    if (sub) {
        natsSubscription_Unsubscribe(sub);
        natsSubscription_Destroy(sub);
    }
    if (inbox) natsInbox_Destroy(inbox);
    if (rc) got_free(out, n);
    return rc;
}

static int get_one(nt_store *s, const char *stream, const char *body, got_msg *out)
{
    char *b = (char *)body;
    return get_many(s, stream, 1, &b, out);
}

/* The last message of a subject (out->found = 0 when none). */
static int get_last(nt_store *s, const char *subject, got_msg *out)
{
    char *body = lf_asprintf("{\"last_by_subj\":\"%s\"}", subject);
    int rc = get_one(s, s->name, body, out);
    free(body);
    return rc;
}

/* ---- open / close ---------------------------------------------------- */
static void head_seen(nt_store *s, int64_t h)
{
    pthread_mutex_lock(&s->lock);
    if (h > s->head) s->head = h;
    pthread_cond_broadcast(&s->head_cond);
    pthread_mutex_unlock(&s->lock);
}

static void on_stored(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    nt_store *s = closure;
    const char *v = NULL;
    int64_t seq = 0;
    if (natsMsgHeader_Get(msg, "Nats-Sequence", &v) == NATS_OK && v && lf_parse_i64(v, &seq) == 0 &&
        seq > 0)
        head_seen(s, (seq + 1) * K - 1);
    else
        head_seen(s, 0); /* just wake the waiters */
    natsMsg_Destroy(msg);
}

/* A JetStream cluster that is still forming (servers up, the meta group
 * not yet aware of every peer, or electing) refuses stream info and
 * creation for a moment: "no suitable peers for placement", "temporarily
 * unavailable", no leader. Seen with nats-server 2.10 right after its
 * health check passed, under load. */
#define ENSURE_WAIT_MS 15000
static int cluster_forming(natsStatus st, jsErrCode jerr)
{
    return jerr == JSClusterNoPeersErr || jerr == JSClusterNotAvailErr ||
           jerr == JSClusterNotLeaderErr || st == NATS_TIMEOUT || st == NATS_NO_RESPONDERS;
}

static int ensure_stream_once(nt_store *s, const char *name, const char *subjects, int republish,
                              natsStatus *stp, jsErrCode *jerrp);

/* Finds or creates a stream, waiting up to ENSURE_WAIT_MS while the
 * cluster forms; err says what failed last. */
static int ensure_stream(nt_store *s, const char *name, const char *subjects, int republish,
                         char *err, size_t errlen)
{
    int64_t deadline = lf_mono_us() + ENSURE_WAIT_MS * 1000LL;
    for (;;) {
        natsStatus st = NATS_OK;
        jsErrCode jerr = 0;
        int rc = ensure_stream_once(s, name, subjects, republish, &st, &jerr);
        if (rc == 0) return 0;
        if (!cluster_forming(st, jerr) || lf_mono_us() >= deadline) {
            snprintf(err, errlen, "%s%s", lf_err_get(),
                     cluster_forming(st, jerr) ? " (still so after 15 s)" : "");
            return rc;
        }
        lf_sleep_ms(250);
    }
}

static int ensure_stream_once(nt_store *s, const char *name, const char *subjects, int republish,
                              natsStatus *stp, jsErrCode *jerrp)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus st = js_GetStreamInfo(&si, s->js, name, NULL, &jerr);
    if (st == NATS_OK) {
        jsStreamInfo_Destroy(si);
        return 0;
    }
    if (st != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr) {
        *stp = st;
        *jerrp = jerr;
        nt_fail(st, jerr, "stream info");
        return LF_EIO;
    }
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const char *subj[1] = {subjects};
    char src[64], dst[64];
    jsRePublish rp = {.Source = src, .Destination = dst, .HeadersOnly = true};
    cfg.Name = name;
    cfg.Subjects = subj;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Replicas = s->replicas;
    cfg.Duplicates = (int64_t)DUP_WINDOW_S * 1000000000LL;
    cfg.DenyDelete = true;
    cfg.DenyPurge = true;
    if (republish) {
        snprintf(src, sizeof src, "%s.e.>", s->name);
        snprintf(dst, sizeof dst, "%s.stored.>", s->name);
        cfg.RePublish = &rp;
    }
    jerr = 0;
    st = js_AddStream(&si, s->js, &cfg, NULL, &jerr);
    if (st != NATS_OK) {
        *stp = st;
        *jerrp = jerr;
        nt_fail(st, jerr, "create stream");
        return LF_EIO;
    }
    jsStreamInfo_Destroy(si);
    return 0;
}

static int parse_url(nt_store *s, const char *url, char **servers, char *err, size_t errlen)
{
    char *u = lf_strdup(url);
    snprintf(s->name, sizeof s->name, "LF");
    s->replicas = 1;
    char *q = strchr(u, '?');
    if (q) {
        *q++ = '\0';
        char *save = NULL;
        for (char *p = strtok_r(q, "&", &save); p; p = strtok_r(NULL, "&", &save)) {
            int64_t r = 0;
            if (strncmp(p, "replicas=", 9) == 0 && lf_parse_i64(p + 9, &r) == 0 && r >= 1 &&
                r <= 5) {
                s->replicas = (int)r;
            } else {
                snprintf(err, errlen, "nats URL: unknown parameter '%s' (want replicas=1..5)", p);
                free(u);
                return LF_EINVAL;
            }
        }
    }
    char *last = strrchr(u, ',');
    char *host = strstr(last ? last : u, "://");
    char *slash = host ? strchr(host + 3, '/') : NULL;
    if (slash) {
        *slash++ = '\0';
        size_t n = strlen(slash);
        int ok = n >= 1 && n <= NAME_MAX_;
        for (size_t i = 0; ok && i < n; i++)
            ok = isalnum((unsigned char)slash[i]) || slash[i] == '_' || slash[i] == '-';
        if (!ok) {
            snprintf(err, errlen, "nats URL: stream name must be [A-Za-z0-9_-]{1,%d}", NAME_MAX_);
            free(u);
            return LF_EINVAL;
        }
        snprintf(s->name, sizeof s->name, "%s", slash);
    }
    snprintf(s->idx_name, sizeof s->idx_name, "%s_IDS", s->name);
    *servers = u;
    return 0;
}

static void nt_close(void *impl);
static void cursor_clear(cursor *c, natsSubscription **drop);
static void cursor_drop(natsSubscription *sub);

static int nt_open(const char *url, void **impl, char *err, size_t errlen)
{
    nt_store *s = lf_xcalloc(1, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->head_cond, NULL);
    char *servers = NULL;
    natsOptions *o = NULL;
    int rc = parse_url(s, url, &servers, err, errlen);
    if (rc) goto fail;
    /* "a,b,c": natsOptions_SetURL takes one URL, SetServers the list. */
    const char *list[8];
    int nlist = 0;
    char *save = NULL;
    for (char *p = strtok_r(servers, ",", &save); p && nlist < 8; p = strtok_r(NULL, ",", &save))
        list[nlist++] = p;
    natsStatus st = natsOptions_Create(&o);
    if (st == NATS_OK) st = natsOptions_SetServers(o, list, nlist);
    if (st == NATS_OK) st = natsOptions_SetTimeout(o, 5000);
    if (st == NATS_OK) st = natsOptions_SetMaxReconnect(o, -1);
    if (st == NATS_OK) st = natsOptions_SetReconnectWait(o, 100);
    if (st == NATS_OK) st = natsConnection_Connect(&s->nc, o);
    if (st != NATS_OK) {
        nt_fail(st, 0, "connect");
        snprintf(err, errlen, "%s (%s)", lf_err_get(), url);
        rc = LF_EIO;
        goto fail;
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 10000;
    if ((st = natsConnection_JetStream(&s->js, s->nc, &jo)) != NATS_OK) {
        nt_fail(st, 0, "jetstream");
        snprintf(err, errlen, "%s", lf_err_get());
        rc = LF_EIO;
        goto fail;
    }
    char subj[64];
    snprintf(subj, sizeof subj, "%s.e.>", s->name);
    if ((rc = ensure_stream(s, s->name, subj, 1, err, errlen))) goto fail;
    snprintf(subj, sizeof subj, "%s.ids.>", s->name);
    if ((rc = ensure_stream(s, s->idx_name, subj, 0, err, errlen))) goto fail;
    snprintf(subj, sizeof subj, "%s.stored.>", s->name);
    if ((st = natsConnection_Subscribe(&s->stored_sub, s->nc, subj, on_stored, s)) != NATS_OK) {
        nt_fail(st, 0, "subscribe");
        snprintf(err, errlen, "%s", lf_err_get());
        rc = LF_EIO;
        goto fail;
    }
    natsOptions_Destroy(o);
    free(servers);
    *impl = s;
    return 0;
fail:
    natsOptions_Destroy(o);
    free(servers);
    nt_close(s);
    return rc;
}

static void nt_close(void *impl)
{
    nt_store *s = impl;
    if (!s) return;
    pthread_mutex_lock(&s->lock);
    s->closing = 1;
    pthread_cond_broadcast(&s->head_cond);
    pthread_mutex_unlock(&s->lock);
    if (s->stored_sub) {
        natsSubscription_Unsubscribe(s->stored_sub);
        natsSubscription_Destroy(s->stored_sub);
    }
    for (int i = 0; i < CURSORS; i++) {
        natsSubscription *d = NULL;
        cursor_clear(&s->cur[i], &d);
        cursor_drop(d);
    }
    if (s->leases) kvStore_Destroy(s->leases);
    if (s->js) jsCtx_Destroy(s->js);
    if (s->nc) {
        natsConnection_Close(s->nc);
        natsConnection_Destroy(s->nc);
    }
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->head_cond);
    free(s);
}

/* ---- append ---------------------------------------------------------- */
/* Looks every client id up in the index. 1: all stored, in this stream and
 * order (res filled); 0: none stored; LF_EEXIST: some are, or elsewhere. */
static int check_ids(nt_store *s, const char *stream, char (*ids)[LF_UUID_LEN], size_t n,
                     lf_append_result *res)
{
    char **bodies = lf_xcalloc(n, sizeof *bodies);
    got_msg *got = lf_xcalloc(n, sizeof *got);
    for (size_t i = 0; i < n; i++)
        bodies[i] = lf_asprintf("{\"last_by_subj\":\"%s.ids.%s\"}", s->name, ids[i]);
    int rc = get_many(s, s->idx_name, n, bodies, got);
    if (rc) goto out;
    size_t found = 0;
    int64_t prev = 0;
    int same = 1;
    for (size_t i = 0; i < n; i++) {
        if (!got[i].found) continue;
        found++;
        int64_t pos = 0, ver = 0;
        char *p = (char *)got[i].data, *q;
        pos = strtoll(p, &q, 10);
        ver = strtoll(q, &p, 10);
        if (*p == ' ') p++;
        if (strcmp(p, stream) != 0 || pos <= prev) same = 0;
        if (i == 0) res->first_position = pos;
        prev = pos;
        res->last_position = pos;
        res->last_version = ver;
    }
    if (found == 0) {
        rc = 0;
    } else if (found == n && same) {
        res->duplicate = 1;
        rc = 1;
    } else {
        lf_err_set("%zu event id(s) of the batch already stored in another stream or order, or "
                   "the batch is partly stored already",
                   found);
        rc = LF_EEXIST;
    }
out:
    got_free(got, n);
    for (size_t i = 0; i < n; i++)
        free(bodies[i]);
    free(bodies);
    free(got);
    return rc;
}

/* Records the client ids of a stored batch (message seq, n events).
 * The publishes are asynchronous on a JetStream context of this call's
 * own: libnats 3.4 has no timeout per async publish, so one whose ack is
 * lost (the connected node died) would stay pending for ever, and on a
 * shared context every later wait for completion would time out on it.
 * Here a lost one fails this call only (the append fails, and its retry
 * finds the batch stored and indexes it again). */
static int index_ids(nt_store *s, const char *stream, char (*ids)[LF_UUID_LEN], size_t n,
                     uint64_t seq, int64_t first_version)
{
    jsCtx *js = NULL;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 10000;
    natsStatus st = natsConnection_JetStream(&js, s->nc, &jo);
    if (st != NATS_OK) return nt_fail(st, 0, "index context");
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        char subj[96];
        snprintf(subj, sizeof subj, "%s.ids.%s", s->name, ids[i]);
        char *val = lf_asprintf("%lld %lld %s",
                                (long long)((int64_t)seq * K + (K - (int64_t)n) + (int64_t)i),
                                (long long)(first_version + (int64_t)i), stream);
        st = js_PublishAsync(js, subj, val, (int)strlen(val), NULL);
        free(val);
        if (st != NATS_OK) rc = nt_fail(st, 0, "index publish");
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 10000;
    st = js_PublishAsyncComplete(js, &po);
    if (st != NATS_OK && !rc) rc = nt_fail(st, 0, "index publish complete");
    if (st != NATS_OK) { /* forget what never got its ack */
        natsMsgList pending;
        if (js_PublishAsyncGetPendingList(&pending, js) == NATS_OK) natsMsgList_Destroy(&pending);
    }
    jsCtx_Destroy(js);
    return rc;
}

/* Fills res from the stored message seq (a deduplicated publish). */
static int result_from_seq(nt_store *s, uint64_t seq, lf_append_result *res)
{
    char body[64];
    snprintf(body, sizeof body, "{\"seq\":%llu}", (unsigned long long)seq);
    got_msg m;
    int rc = get_one(s, s->name, body, &m);
    if (rc) return rc;
    int64_t fv = 0, n = 0;
    if (!m.found) {
        lf_err_set("nats: deduplicated message %llu is gone", (unsigned long long)seq);
        rc = LF_EIO;
    } else if (!(rc = batch_header(&m, &fv, &n))) {
        res->first_position = (int64_t)seq * K + (K - n);
        res->last_position = (int64_t)seq * K + K - 1;
        res->last_version = fv + n - 1;
    }
    got_free(&m, 1);
    return rc;
}

static int nt_read_stream(void *impl, const char *stream, int64_t from_version, size_t max,
                          lf_event_list *out);

/* A retry of a batch with client ids whose first try was stored but whose
 * reply (and so its index write) was lost — the server's Msg-Id window
 * does not always answer it (after a leader change in a cluster): the
 * batch must be the one at the version it expected to follow. 1 = it is
 * (res filled, and its ids indexed now), 0 = it is not, < 0 = error
 * (LF_EEXIST: only partly). */
static int stored_at_expected(nt_store *s, const char *stream, int64_t expected,
                              char (*ids)[LF_UUID_LEN], size_t n, lf_append_result *res)
{
    int64_t v = expected == LF_EXPECT_NO_STREAM ? 1 : expected + 1;
    lf_event_list l;
    lf_event_list_init(&l);
    int rc = nt_read_stream(s, stream, v, n, &l);
    if (rc || l.n == 0 || l.ev[0].version != v || strcmp(l.ev[0].id, ids[0]) != 0) goto out;
    for (size_t i = 0; i < n; i++)
        if (i >= l.n || strcmp(l.ev[i].id, ids[i]) != 0 ||
            l.ev[i].position != l.ev[0].position + (int64_t)i) {
            lf_err_set("event %zu: batch partly stored already", i);
            rc = LF_EEXIST;
            goto out;
        }
    res->first_position = l.ev[0].position;
    res->last_position = l.ev[n - 1].position;
    res->last_version = l.ev[n - 1].version;
    res->duplicate = 1;
    rc = index_ids(s, stream, ids, n, (uint64_t)(res->first_position / K), v);
    if (rc == 0) rc = 1;
out:
    lf_event_list_free(&l);
    return rc;
}

static int nt_append(void *impl, const char *stream, int64_t expected, const lf_event_in *evs,
                     size_t n, lf_append_result *res)
{
    nt_store *s = impl;
    char(*ids)[LF_UUID_LEN] = lf_xcalloc(n, LF_UUID_LEN);
    size_t nclient = 0; /* leading client ids (the whole batch when all have one) */
    int all_client = 1;
    for (size_t i = 0; i < n; i++) {
        if (evs[i].id && *evs[i].id) {
            for (int j = 0; j < LF_UUID_LEN - 1; j++)
                ids[i][j] = (char)tolower((unsigned char)evs[i].id[j]);
            nclient++;
        } else {
            lf_uuid_v7(ids[i]);
            all_client = 0;
        }
    }
    char *subject = subject_of(s, "e", stream);
    char msgid[80] = "";
    lf_buf b;
    lf_buf_init(&b, 0);
    got_msg last = {0};
    natsMsg *msg = NULL;
    jsPubAck *pa = NULL;
    int rc = 0;
    memset(res, 0, sizeof *res);

    if (nclient) {
        /* Client ids: the index answers retries and overlaps. Only ids
         * given by the client are looked up (generated ones are new). */
        char(*cids)[LF_UUID_LEN] = lf_xcalloc(nclient, LF_UUID_LEN);
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (evs[i].id && *evs[i].id) memcpy(cids[k++], ids[i], LF_UUID_LEN);
        rc = check_ids(s, stream, cids, nclient, res);
        free(cids);
        if (rc == LF_EEXIST && all_client && expected != LF_EXPECT_ANY) {
            /* Some ids indexed, not all: the index write of an earlier try
             * was cut short. The batch (one message) is all or nothing: if
             * it is where it expected to be, this is a duplicate. */
            char keep[256];
            snprintf(keep, sizeof keep, "%s", lf_err_get());
            int st = stored_at_expected(s, stream, expected, ids, n, res);
            if (st == 1) { /* a duplicate, indexed now */
                rc = 0;
                goto out;
            }
            if (st == 0) lf_err_set("%s", keep);
            rc = st < 0 ? st : LF_EEXIST;
        }
        if (rc == 1 && !all_client) {
            lf_err_set("the batch is partly stored already");
            rc = LF_EEXIST;
        }
        if (rc == 1) rc = 0;
        if (rc || res->duplicate) goto out;
        if (all_client) {
            char h[17];
            lf_buf hb;
            lf_buf_init(&hb, 0);
            for (size_t i = 0; i < n; i++)
                lf_buf_append(&hb, ids[i], 36);
            lf_buf_append(&hb, "", 1);
            lf_hash_hex(hb.data, h);
            lf_buf_free(&hb);
            snprintf(msgid, sizeof msgid, "%s-%zu-%s", ids[0], n, h);
        }
    }

    for (int attempt = 0;; attempt++) {
        got_free(&last, 1);
        if ((rc = get_last(s, subject, &last))) goto out;
        int64_t ver = 0, fv = 0, ln = 0;
        if (last.found) {
            if ((rc = batch_header(&last, &fv, &ln))) goto out;
            ver = fv + ln - 1;
        }
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MaxWait = 30000;
        if (msgid[0]) po.MsgId = msgid;
        int mismatch =
            (expected == LF_EXPECT_NO_STREAM && ver > 0) || (expected >= 1 && expected != ver);
        if (mismatch && !msgid[0]) {
            lf_err_set("stream '%s' is at version %lld, expected %s%lld", stream, (long long)ver,
                       expected == LF_EXPECT_NO_STREAM ? "none " : "",
                       (long long)(expected == LF_EXPECT_NO_STREAM ? 0 : expected));
            rc = LF_ECONFLICT;
            goto out;
        }
        if (mismatch) {
            /* A retry whose index write was lost: publish a probe that
             * can never be stored; the server checks Msg-Id first, so a
             * stored batch answers "duplicate", anything else conflicts. */
            po.ExpectLastSubjectSeq = UINT64_MAX - 1;
        } else if (last.found) {
            po.ExpectLastSubjectSeq = last.seq;
        } else {
            po.ExpectNoMessage = true;
        }
        lf_buf_free(&b);
        batch_encode(&b, stream, ver + 1, evs, n, ids);
        if ((int64_t)b.len > natsConnection_GetMaxPayload(s->nc)) {
            lf_err_set("batch is %zu bytes encoded, larger than the NATS server's max_payload "
                       "(%lld): send fewer or smaller events",
                       b.len, (long long)natsConnection_GetMaxPayload(s->nc));
            rc = LF_EINVAL;
            goto out;
        }
        natsStatus st = natsMsg_Create(&msg, subject, NULL, b.data, (int)b.len);
        jsErrCode jerr = 0;
        if (st == NATS_OK) st = js_PublishMsg(&pa, s->js, msg, &po, &jerr);
        natsMsg_Destroy(msg);
        msg = NULL;
        if (st == NATS_OK) {
            uint64_t seq = pa->Sequence;
            if (pa->Duplicate) {
                if ((rc = result_from_seq(s, seq, res))) goto out;
                res->duplicate = 1;
            } else {
                res->first_position = (int64_t)seq * K + (K - (int64_t)n);
                res->last_position = (int64_t)seq * K + K - 1;
                res->last_version = ver + (int64_t)n;
                head_seen(s, res->last_position);
            }
            if (nclient) rc = index_ids(s, stream, ids, n, seq, res->last_version - (int64_t)n + 1);
            goto out;
        }
        if (jerr == JSStreamWrongLastSequenceErr) {
            if (mismatch && all_client) {
                int dup = stored_at_expected(s, stream, expected, ids, n, res);
                if (dup != 0) { /* 1: a duplicate, indexed now */
                    rc = dup < 0 ? dup : 0;
                    goto out;
                }
            }
            if (mismatch || expected != LF_EXPECT_ANY) {
                lf_err_set("stream '%s' is at version %lld (or moved on), expected %s%lld", stream,
                           (long long)ver, expected == LF_EXPECT_NO_STREAM ? "none " : "",
                           (long long)(expected == LF_EXPECT_NO_STREAM ? 0 : expected));
                rc = LF_ECONFLICT;
                goto out;
            }
            if (attempt < ANY_RETRIES) continue; /* ANY: someone appended; again */
        }
        rc = nt_fail(st, jerr, "publish");
        goto out;
    }
out:
    if (pa) jsPubAck_Destroy(pa);
    got_free(&last, 1);
    lf_buf_free(&b);
    free(subject);
    free(ids);
    return rc;
}

/* ---- reads ----------------------------------------------------------- */
static int nt_read_stream(void *impl, const char *stream, int64_t from_version, size_t max,
                          lf_event_list *out)
{
    nt_store *s = impl;
    char *subject = subject_of(s, "e", stream);
    got_msg m = {0};
    int64_t fv = 0, n = 0;
    int rc = get_last(s, subject, &m);
    if (rc || !m.found) goto out;
    if ((rc = batch_header(&m, &fv, &n))) goto out;
    if (fv + n - 1 < from_version) goto out; /* nothing that new */
    if (fv > from_version) {
        /* Walk the subject from its start (next message by subject). */
        uint64_t seq = 1;
        size_t room = max;
        while (room) {
            got_free(&m, 1);
            char *body = lf_asprintf("{\"seq\":%llu,\"next_by_subj\":\"%s\"}",
                                     (unsigned long long)seq, subject);
            rc = get_one(s, s->name, body, &m);
            free(body);
            if (rc || !m.found) break;
            if ((rc = batch_header(&m, &fv, &n))) break;
            if (fv + n - 1 >= from_version && (rc = batch_decode(&m, 0, from_version, &room, out)))
                break;
            seq = m.seq + 1;
        }
        goto out;
    }
    size_t room = max;
    rc = batch_decode(&m, 0, from_version, &room, out);
out:
    got_free(&m, 1);
    free(subject);
    return rc;
}

/* read_all by message gets: n pipelined requests to the stream leader. */
static int read_all_get(nt_store *s, int64_t after, size_t max, lf_event_list *out)
{
    uint64_t seq = (uint64_t)((after + 1) / K);
    if (seq < 1) seq = 1;
    size_t room = max, msgs = 0, evs = 0;
    int rc = 0;
    while (room && !rc) {
        /* As many messages as the events still wanted need, judged by the
         * messages read so far (4 to start with): asking GET_WINDOW
         * messages of 500 events for 2,000 events read and decoded 16
         * times too much. Each message holds at least one event. */
        size_t want = 4;
        if (msgs) {
            size_t per = evs / msgs ? evs / msgs : 1;
            want = (room + per - 1) / per;
        }
        if (want > GET_WINDOW) want = GET_WINDOW;
        if (want > room) want = room;
        char **bodies = lf_xcalloc(want, sizeof *bodies);
        got_msg *got = lf_xcalloc(want, sizeof *got);
        for (size_t i = 0; i < want; i++)
            bodies[i] = lf_asprintf("{\"seq\":%llu}", (unsigned long long)(seq + i));
        rc = get_many(s, s->name, want, bodies, got);
        int end = 0;
        for (size_t i = 0; i < want && !rc && !end; i++) {
            if (!got[i].found) {
                end = 1; /* past the last stored message */
                break;
            }
            size_t n0 = out->n;
            rc = batch_decode(&got[i], after, 1, &room, out);
            evs += out->n - n0;
            msgs++;
            seq++;
        }
        if (!rc) got_free(got, want);
        for (size_t i = 0; i < want; i++)
            free(bodies[i]);
        free(bodies);
        free(got);
        if (end) break;
    }
    return rc;
}

/* ---- read_all through pull consumers ---------------------------------
 * A subscriber (projection follower, catch-up) calls read_all again and
 * again, each time from the last event it got. Such a reader is served by
 * a JetStream pull consumer of its own: an ephemeral consumer on the
 * stream from the sequence it needs (deliver by start sequence, no acks,
 * the server drops it after CURSOR_INACTIVE_NS without pulls), fetched
 * CURSOR_FETCH messages per request, the bodies raw (a message get
 * answers one message per request, in JSON with the body in base64).
 * A reader is recognised by its position: after a read that returned
 * events, the next read_all from exactly its last position creates the
 * consumer (a one-off read never does). Whatever does not fit in one
 * call stays held for the next. The consumer must deliver every sequence
 * in order; on anything else (a gap, an error, a server restart that lost
 * it, a message over CURSOR_BYTES) the reader falls back to message gets
 * and the consumer is deleted. So does a reader whose consumer has
 * nothing while the log goes further (cursor_read): a read still sees
 * every acknowledged append, as message gets (answered by the stream
 * leader) do. */
static void cursor_clear(cursor *c, natsSubscription **drop)
{
    *drop = c->sub;
    natsMsgList_Destroy(&c->held);
    memset(c, 0, sizeof *c);
}

static void cursor_drop(natsSubscription *sub)
{
    if (!sub) return;
    natsSubscription_Unsubscribe(sub); /* deletes the ephemeral consumer */
    natsSubscription_Destroy(sub);
}

/* Fetches the next messages into c->held (none: c->held.Count == 0);
 * checks that they carry the sequences the consumer owes. */
static int cursor_fetch(cursor *c, int batch)
{
    natsMsgList_Destroy(&c->held);
    memset(&c->held, 0, sizeof c->held);
    c->held_i = 0;
    jsFetchRequest fr;
    jsFetchRequest_Init(&fr);
    fr.Batch = batch;
    fr.MaxBytes = CURSOR_BYTES;
    fr.NoWait = true;
    fr.Expires = 2000 * 1000000LL; /* only a bound: asked when there is more */
    natsStatus st = natsSubscription_FetchRequest(&c->held, c->sub, &fr);
    if (st == NATS_NOT_FOUND || st == NATS_TIMEOUT) return 0; /* nothing now */
    if (st != NATS_OK) return nt_fail(st, 0, "fetch");
    for (int i = 0; i < c->held.Count; i++) {
        jsMsgMetaData *md = NULL;
        st = natsMsg_GetMetaData(&md, c->held.Msgs[i]);
        uint64_t seq = st == NATS_OK ? md->Sequence.Stream : 0;
        if (md) jsMsgMetaData_Destroy(md);
        if (seq != c->next_seq) {
            lf_err_set("nats: consumer delivered sequence %llu, expected %llu",
                       (unsigned long long)seq, (unsigned long long)c->next_seq);
            return LF_EIO;
        }
        c->next_seq++;
    }
    return 0;
}

static int cursor_create(nt_store *s, cursor *c, int64_t after)
{
    uint64_t seq = (uint64_t)((after + 1) / K);
    if (seq < 1) seq = 1;
    char subj[64];
    snprintf(subj, sizeof subj, "%s.e.>", s->name);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = s->name;
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = seq;
    so.Config.AckPolicy = js_AckNone;
    so.Config.InactiveThreshold = CURSOR_INACTIVE_NS;
    jsErrCode jerr = 0;
    natsStatus st = js_PullSubscribe(&c->sub, s->js, subj, NULL, NULL, &so, &jerr);
    if (st != NATS_OK) {
        c->sub = NULL;
        return nt_fail(st, jerr, "pull consumer");
    }
    c->next_seq = seq;
    return 0;
}

/* cursor_read: the consumer has nothing although the log goes further. */
#define CURSOR_LAGS 1

static int nt_head(void *impl, int64_t *pos);

/* Reads from the consumer: events after `after`, at most *room. A pull
 * request is sent only when the log holds more than the reader has: a
 * no-wait request on an empty consumer is held until it expires by
 * nats-server 2.9, not answered "no messages". What the log holds is the
 * head this process knows (its appends, the RePublish), asked from the
 * server (stream info) when that says the reader is at the end. */
static int cursor_read(nt_store *s, cursor *c, int64_t after, size_t *room, lf_event_list *out)
{
    int rc = 0, asked = 0;
    if (!c->sub && (rc = cursor_create(s, c, after))) return rc;
    while (*room) {
        while (c->held_i < c->held.Count && *room) {
            natsMsg *m = c->held.Msgs[c->held_i];
            uint64_t seq = c->next_seq - (uint64_t)(c->held.Count - c->held_i);
            got_msg g = {.found = 1,
                         .seq = seq,
                         .data = (unsigned char *)(uintptr_t)natsMsg_GetData(m),
                         .len = (size_t)natsMsg_GetDataLength(m)};
            if ((rc = batch_decode(&g, after, 1, room, out))) return rc;
            /* all of it returned: room left, or its last event was */
            if (*room || (out->n && out->ev[out->n - 1].position == (int64_t)(seq + 1) * K - 1))
                c->held_i++;
        }
        if (!*room) break;
        /* the next message's last event is at next_seq * K + K - 1 */
        int64_t next_last = (int64_t)c->next_seq * K + K - 1;
        pthread_mutex_lock(&s->lock);
        int more = s->head >= next_last;
        pthread_mutex_unlock(&s->lock);
        if (!more && !asked) {
            int64_t h = 0;
            asked = 1;
            if ((rc = nt_head(s, &h))) return rc;
            head_seen(s, h);
            more = h >= next_last;
        }
        if (!more) break; /* the end of the log */
        size_t want = *room < CURSOR_FETCH ? *room : CURSOR_FETCH;
        if ((rc = cursor_fetch(c, (int)want))) return rc;
        if (c->held.Count == 0) return CURSOR_LAGS;
    }
    return 0;
}

static int nt_read_all(void *impl, int64_t after, size_t max, lf_event_list *out)
{
    nt_store *s = impl;
    natsSubscription *drop[CURSORS];
    int ndrop = 0;
    cursor *c = NULL, *spare = NULL, *lru = NULL;
    int64_t now = lf_mono_us();
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < CURSORS; i++) {
        cursor *x = &s->cur[i];
        if (x->busy) continue;
        if (x->valid && now - x->used_us > CURSOR_IDLE_US) cursor_clear(x, &drop[ndrop++]);
        if (!x->valid) {
            if (!spare) spare = x; /* a free slot */
        } else if (x->last_pos == after && !c) {
            c = x;
        } else if (!lru || x->used_us < lru->used_us) {
            lru = x; /* else the least recently used */
        }
    }
    if (!spare) spare = lru;
    if (c) c->busy = 1;
    pthread_mutex_unlock(&s->lock);
    for (int i = 0; i < ndrop; i++)
        cursor_drop(drop[i]);

    size_t n0 = out->n, room = max;
    int rc = 0;
    if (c) {
        rc = cursor_read(s, c, after, &room, out);
        if (rc) {
            /* keep what was read; message gets go on from there */
            int64_t at = out->n > n0 ? out->ev[out->n - 1].position : after;
            LF_INFO("store", "nats: pull consumer left for message gets at %lld: %s", (long long)at,
                    rc == CURSOR_LAGS ? "it lags" : lf_err_get());
            pthread_mutex_lock(&s->lock);
            natsSubscription *d = NULL;
            cursor_clear(c, &d);
            pthread_mutex_unlock(&s->lock);
            cursor_drop(d);
            c = NULL;
            rc = read_all_get(s, at, room, out);
        }
    } else {
        rc = read_all_get(s, after, max, out);
    }
    if (rc) return rc;
    /* remember where this reader will come back */
    pthread_mutex_lock(&s->lock);
    if (c) {
        c->busy = 0;
        c->used_us = lf_mono_us();
        if (out->n > n0) c->last_pos = out->ev[out->n - 1].position;
    } else if (out->n > n0 && spare && !spare->busy) {
        natsSubscription *d = NULL;
        if (spare->valid) cursor_clear(spare, &d);
        spare->valid = 1;
        spare->last_pos = out->ev[out->n - 1].position;
        spare->used_us = lf_mono_us();
        pthread_mutex_unlock(&s->lock);
        if (d) cursor_drop(d);
        return 0;
    }
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static int nt_head(void *impl, int64_t *pos)
{
    nt_store *s = impl;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus st = js_GetStreamInfo(&si, s->js, s->name, NULL, &jerr);
    if (st != NATS_OK) return nt_fail(st, jerr, "stream info");
    *pos = si->State.Msgs ? ((int64_t)si->State.LastSeq + 1) * K - 1 : 0;
    jsStreamInfo_Destroy(si);
    return 0;
}

static int nt_stream_version(void *impl, const char *stream, int64_t *version)
{
    nt_store *s = impl;
    char *subject = subject_of(s, "e", stream);
    got_msg m = {0};
    int64_t fv = 0, n = 0;
    *version = 0;
    int rc = get_last(s, subject, &m);
    if (!rc && m.found && !(rc = batch_header(&m, &fv, &n))) *version = fv + n - 1;
    got_free(&m, 1);
    free(subject);
    return rc;
}

static int nt_wait(void *impl, int64_t after, int timeout_ms)
{
    nt_store *s = impl;
    /* Woken by the RePublish subscription; capped so a missed wake-up (a
     * reconnect) costs little. */
    int wait = timeout_ms < 250 ? timeout_ms : 250;
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
 * A KV bucket "<NAME>_LEASES" (history 1, the stream's replicas), key =
 * lease name, value "<expires ms> <owner>". Acquire-or-renew reads the
 * entry and writes it back with kvStore_Update at the revision it read
 * (kvStore_Create when there is none): JetStream refuses the write if
 * anyone wrote in between, so two racers cannot both win. Expiry is judged
 * with the clients' wall clocks (JetStream 2.9 has no per-key TTL nor a
 * server clock to ask): nodes must keep their clocks in step (NTP) to well
 * under the ttl. Release overwrites the entry with an expired one. */
/* libnats makes KV buckets with AllowDirect, so kvStore_Get may be
 * answered by any replica: on a cluster, by one that has not applied the
 * last write yet (a release just made, a lease just taken). Leases need to
 * read their own writes: direct gets are turned off on the bucket's stream
 * and the bucket reopened, so its gets go to the stream leader. */
static natsStatus leases_leader_reads(nt_store *s, const char *bucket)
{
    char stream[NAME_MAX_ + 32];
    snprintf(stream, sizeof stream, "KV_%s", bucket);
    jsStreamInfo *si = NULL;
    natsStatus st = js_GetStreamInfo(&si, s->js, stream, NULL, NULL);
    if (st == NATS_OK && si->Config->AllowDirect) {
        si->Config->AllowDirect = false;
        jsStreamInfo *up = NULL;
        st = js_UpdateStream(&up, s->js, si->Config, NULL, NULL);
        jsStreamInfo_Destroy(up);
        if (st == NATS_OK) {
            kvStore_Destroy(s->leases);
            s->leases = NULL;
            st = js_KeyValue(&s->leases, s->js, bucket);
        }
    }
    jsStreamInfo_Destroy(si);
    return st;
}

static int leases_kv(nt_store *s, kvStore **out)
{
    pthread_mutex_lock(&s->lock);
    natsStatus st = NATS_OK;
    if (!s->leases) {
        char bucket[NAME_MAX_ + 16];
        snprintf(bucket, sizeof bucket, "%s_LEASES", s->name);
        st = js_KeyValue(&s->leases, s->js, bucket);
        if (st != NATS_OK) {
            kvConfig kc;
            kvConfig_Init(&kc);
            kc.Bucket = bucket;
            kc.History = 1;
            kc.StorageType = js_FileStorage;
            kc.Replicas = s->replicas;
            st = js_CreateKeyValue(&s->leases, s->js, &kc);
        }
        if (st == NATS_OK) st = leases_leader_reads(s, bucket);
        if (st != NATS_OK && s->leases) {
            kvStore_Destroy(s->leases);
            s->leases = NULL;
        }
    }
    *out = s->leases;
    pthread_mutex_unlock(&s->lock);
    return st == NATS_OK ? 0 : nt_fail(st, 0, "lease bucket");
}

/* Parses "<expires> <owner>"; 0 or LF_EIO. */
static int lease_value(kvEntry *e, int64_t *expires, char *owner, size_t olen)
{
    const char *v = kvEntry_ValueString(e);
    const char *sp = v ? strchr(v, ' ') : NULL;
    if (!sp) return LF_EIO;
    char num[24];
    snprintf(num, sizeof num, "%.*s", (int)(sp - v < 23 ? sp - v : 23), v);
    if (lf_parse_i64(num, expires)) return LF_EIO;
    snprintf(owner, olen, "%s", sp + 1);
    return 0;
}

static int nt_lease(void *impl, const char *name, const char *owner, int64_t ttl_ms, lf_lease *out)
{
    kvStore *kv;
    int rc = leases_kv(impl, &kv);
    if (rc) return rc;
    snprintf(out->name, sizeof out->name, "%s", name);
    natsStatus st = NATS_OK;
    for (int attempt = 0; attempt < 10; attempt++) {
        kvEntry *e = NULL;
        int64_t now = lf_now_ms(), expires = 0;
        uint64_t rev = 0, newrev = 0;
        char holder[LF_LEASE_NAME_MAX + 1] = "";
        st = kvStore_Get(&e, kv, name);
        if (st == NATS_OK) {
            rev = kvEntry_Revision(e);
            if (lease_value(e, &expires, holder, sizeof holder)) expires = 0;
            kvEntry_Destroy(e);
            if (strcmp(holder, owner) != 0 && expires > now) {
                snprintf(out->owner, sizeof out->owner, "%s", holder);
                out->left_ms = expires - now;
                lf_err_set("lease %s is held by %s", name, holder);
                return LF_ECONFLICT;
            }
        } else if (st != NATS_NOT_FOUND) {
            return nt_fail(st, 0, "lease get");
        }
        char *val = lf_asprintf("%lld %s", (long long)(now + ttl_ms), owner);
        st = rev ? kvStore_UpdateString(&newrev, kv, name, val, rev)
                 : kvStore_CreateString(&newrev, kv, name, val);
        free(val);
        if (st == NATS_OK) {
            snprintf(out->owner, sizeof out->owner, "%s", owner);
            out->left_ms = ttl_ms;
            return 0;
        }
        /* Someone wrote in between (wrong last sequence): look again. */
    }
    return nt_fail(st, 0, "lease write");
}

static int nt_lease_release(void *impl, const char *name, const char *owner)
{
    kvStore *kv;
    int rc = leases_kv(impl, &kv);
    if (rc) return rc;
    kvEntry *e = NULL;
    natsStatus st = kvStore_Get(&e, kv, name);
    if (st == NATS_NOT_FOUND) return 0;
    if (st != NATS_OK) return nt_fail(st, 0, "lease get");
    int64_t expires = 0;
    char holder[LF_LEASE_NAME_MAX + 1] = "";
    uint64_t rev = kvEntry_Revision(e), newrev;
    int mine = lease_value(e, &expires, holder, sizeof holder) == 0 && strcmp(holder, owner) == 0;
    kvEntry_Destroy(e);
    if (!mine) return 0;
    char *val = lf_asprintf("0 %s", owner);
    st = kvStore_UpdateString(&newrev, kv, name, val, rev);
    free(val);
    return 0; /* a failed CAS means someone else took it meanwhile */
}

static int nt_lease_list(void *impl, const char *prefix, lf_lease *out, size_t max, size_t *n)
{
    kvStore *kv;
    int rc = leases_kv(impl, &kv);
    if (rc) return rc;
    kvKeysList keys = {0};
    natsStatus st = kvStore_Keys(&keys, kv, NULL);
    if (st == NATS_NOT_FOUND) {
        return 0;
    }
    if (st != NATS_OK) return nt_fail(st, 0, "lease keys");
    lf_lease *all = lf_xcalloc(keys.Count ? (size_t)keys.Count : 1, sizeof *all);
    size_t k = 0;
    int64_t now = lf_now_ms();
    for (int i = 0; i < keys.Count; i++) {
        if (strncmp(keys.Keys[i], prefix, strlen(prefix)) != 0) continue;
        kvEntry *e = NULL;
        if (kvStore_Get(&e, kv, keys.Keys[i]) != NATS_OK) {
            continue;
        }
        int64_t expires = 0;
        if (lease_value(e, &expires, all[k].owner, sizeof all[k].owner) == 0 && expires > now) {
            snprintf(all[k].name, sizeof all[k].name, "%s", keys.Keys[i]);
            all[k].left_ms = expires - now;
            k++;
        }
        kvEntry_Destroy(e);
    }
    kvKeysList_Destroy(&keys);
    lf_store_lease_sort(all, k);
    for (size_t i = 0; i < k && *n < max; i++)
        out[(*n)++] = all[i];
    free(all);
    return 0;
}

const lf_store_ops lf_store_nats_ops = {
    .name = "nats",
    .open = nt_open,
    .close = nt_close,
    .append = nt_append,
    .read_stream = nt_read_stream,
    .read_all = nt_read_all,
    .head = nt_head,
    .stream_version = nt_stream_version,
    .wait = nt_wait,
    .lease = nt_lease,
    .lease_release = nt_lease_release,
    .lease_list = nt_lease_list,
};
