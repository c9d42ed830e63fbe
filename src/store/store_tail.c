/*
 * store_tail.c — the server backends' shared log tail (lf_tail, see
 * store_int.h): read_all through one in-memory copy of the newest events.
 *
 * Why: a hub process reads the whole log from several threads at once —
 * each projection's live thread, the fleet, the registry and the
 * reservation-conflict subscriptions — so on a server store every append
 * was read back by every one of them: 8 queries per hub node, each
 * shipping the same rows (bench/bench_cluster.c measured ~13 event rows
 * read per event stored with one node, ~40 with three). Through the tail,
 * the first reader to ask for events past the tail fetches them (one query
 * at a time), the others copy them from memory.
 *
 * Correctness: events are immutable, and a backend's read_all returns a
 * prefix of the log after `after` (no reader sees a later position before
 * an earlier one). So a result e1..ek of read_all(after) proves that the
 * events with after < position <= ek.position are exactly e1..ek: the
 * tail keeps such a range (base, top] and answers read_all(after) with
 * base <= after < top from memory. It never answers "nothing new" from
 * memory: a reader at the top (after >= top) waits for a query already
 * running and is served from what it brought only if that is past `after`
 * (then a correct, non-empty prefix: the caller reads again for more, as
 * with any read); otherwise it queries itself.
 *
 * Readers further back than the tail (followers that fell behind during a
 * burst, a catch-up, a rebuild) query the server themselves, but the last
 * BEHIND_PAGES results of such queries are kept as pages, each a range
 * (base, top] like the tail: a reader whose `after` falls in one copies
 * from it. Such a query starts at the multiple of BEHIND_ALIGN at or
 * before the reader's position, so followers catching up through the same
 * region ask for the same pages: the first fetches one, the others read
 * it from memory.
 * A read goes on page after page until it has max events, so a follower
 * still gets whole batches (a projection commits once per read).
 * Without the pages a hub's ~8 followers each read every such event from
 * the server (`bench ingest` on Redis, 500k events: 5.9-10.9 s to catch up
 * after the last acknowledgement; with the pages 3.4-4.9 s). Pages cost memory only while readers
 * are behind: at most BEHIND_BYTES, and a page nobody read for BEHIND_IDLE_MS is let go at the next
 * query at the top.
 */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

#define TAIL_FETCH_MIN 512       /* events fetched at least per query */
#define BEHIND_PAGES 32          /* results kept for readers behind the tail */
#define BEHIND_BYTES (48u << 20) /* about, all pages together */
#define BEHIND_IDLE_MS 5000      /* a page unused this long is let go */
#define BEHIND_ALIGN 2048        /* behind the tail, queries start at multiples */

/* A page's events, shared: readers copy from them without the lock (they
 * never change once kept); the last reference frees them. */
typedef struct {
    lf_event_list ev;
    int refs; /* the page slot's own, and each reader copying */
} page_data;

typedef struct {
    page_data *d; /* exactly the events base < position <= top; NULL: empty */
    int64_t base, top;
    size_t bytes;
    uint64_t used;   /* last use (LRU) */
    int64_t used_ms; /* when */
} behind_page;

typedef struct {
    char id[LF_UUID_LEN];
    int64_t version, position, time_ms;
    char *buf; /* stream \0 type \0 data \0 meta \0 (one allocation) */
    size_t slen, tlen, dlen, mlen;
} tail_ev;

struct lf_tail {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    tail_ev *ring;
    size_t cap, start, n, bytes, max_bytes;
    int valid;         /* base/top describe the ring */
    int64_t base, top; /* the ring holds exactly the events base < position <= top */
    int fetching;      /* a reader at the top is querying */
    behind_page pages[BEHIND_PAGES];
    size_t pages_bytes;
    uint64_t clock;
};

static void page_unref_locked(page_data *d)
{
    if (--d->refs > 0) return;
    lf_event_list_free(&d->ev);
    free(d);
}

lf_tail *lf_tail_new(size_t max_events, size_t max_bytes)
{
    lf_tail *t = lf_xcalloc(1, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    t->cap = max_events ? max_events : 1;
    t->max_bytes = max_bytes;
    t->ring = lf_xcalloc(t->cap, sizeof *t->ring);
    return t;
}

void lf_tail_free(lf_tail *t)
{
    if (!t) return;
    for (int i = 0; i < BEHIND_PAGES; i++)
        if (t->pages[i].d) page_unref_locked(t->pages[i].d); /* the slot's: the last */
    for (size_t i = 0; i < t->n; i++)
        free(t->ring[(t->start + i) % t->cap].buf);
    free(t->ring);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    free(t);
}

static void drop_oldest_locked(lf_tail *t)
{
    tail_ev *e = &t->ring[t->start];
    t->base = e->position;
    t->bytes -= e->slen + e->tlen + e->dlen + e->mlen;
    free(e->buf);
    e->buf = NULL;
    t->start = (t->start + 1) % t->cap;
    t->n--;
}

static void push_locked(lf_tail *t, const lf_event *e)
{
    size_t sl = strlen(e->stream), tl = strlen(e->type), dl = strlen(e->data), ml = strlen(e->meta);
    while (t->n > 0 && (t->n == t->cap || t->bytes + sl + tl + dl + ml > t->max_bytes))
        drop_oldest_locked(t);
    tail_ev *x = &t->ring[(t->start + t->n) % t->cap];
    x->buf = lf_xmalloc(sl + tl + dl + ml + 4);
    char *p = x->buf;
    memcpy(p, e->stream, sl + 1);
    memcpy(p += sl + 1, e->type, tl + 1);
    memcpy(p += tl + 1, e->data, dl + 1);
    memcpy(p + dl + 1, e->meta, ml + 1);
    x->slen = sl;
    x->tlen = tl;
    x->dlen = dl;
    x->mlen = ml;
    memcpy(x->id, e->id, sizeof x->id);
    x->version = e->version;
    x->position = e->position;
    x->time_ms = e->time_ms;
    t->bytes += sl + tl + dl + ml;
    t->n++;
    t->top = e->position;
}

/* Copies the ring's events after `after` (base <= after < top) to out. */
static void serve_locked(lf_tail *t, int64_t after, size_t max, lf_event_list *out)
{
    size_t lo = 0, hi = t->n; /* first index with position > after */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->ring[(t->start + mid) % t->cap].position <= after)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo, k = 0; i < t->n && k < max; i++, k++) {
        const tail_ev *x = &t->ring[(t->start + i) % t->cap];
        const char *p = x->buf;
        lf_event *e = lf_event_list_push_copy(out, p, x->slen, p + x->slen + 1, x->tlen,
                                              p + x->slen + x->tlen + 2, x->dlen,
                                              p + x->slen + x->tlen + x->dlen + 3, x->mlen);
        memcpy(e->id, x->id, sizeof e->id);
        e->version = x->version;
        e->position = x->position;
        e->time_ms = x->time_ms;
    }
}

static void copy_event(lf_event_list *out, const lf_event *g)
{
    lf_event *e =
        lf_event_list_push_copy(out, g->stream, strlen(g->stream), g->type, strlen(g->type),
                                g->data, strlen(g->data), g->meta, strlen(g->meta));
    memcpy(e->id, g->id, sizeof e->id);
    e->version = g->version;
    e->position = g->position;
    e->time_ms = g->time_ms;
}

static void page_drop_locked(lf_tail *t, behind_page *p)
{
    t->pages_bytes -= p->bytes;
    page_unref_locked(p->d);
    memset(p, 0, sizeof *p);
}

/* The events of d after `after`, at most max, to out (without the lock:
 * the caller holds a reference); returns how many. */
static size_t serve_page(const page_data *d, int64_t after, size_t max, lf_event_list *out)
{
    size_t lo = lf_event_list_after(&d->ev, after), k = 0;
    for (; lo + k < d->ev.n && k < max; k++)
        copy_event(out, &d->ev.ev[lo + k]);
    return k;
}

/* A kept page holding `after` (base <= after < top), referenced for the
 * caller, or NULL. */
static page_data *find_page_locked(lf_tail *t, int64_t after)
{
    for (int i = 0; i < BEHIND_PAGES; i++) {
        behind_page *p = &t->pages[i];
        if (!p->d || after < p->base || after >= p->top) continue;
        p->used = ++t->clock;
        p->used_ms = lf_mono_ms();
        p->d->refs++;
        return p->d;
    }
    return NULL;
}

static size_t list_bytes(const lf_event_list *l)
{
    size_t bytes = 0;
    for (size_t i = 0; i < l->n; i++) {
        const lf_event *e = &l->ev[i];
        bytes +=
            sizeof *e + strlen(e->stream) + strlen(e->type) + strlen(e->data) + strlen(e->meta) + 4;
    }
    return bytes;
}

/* Keeps got, the result of read_all(after) of about `bytes`, as a page
 * (taking it: got is left empty), dropping the least recently used pages
 * to stay in bounds. */
static void keep_page_locked(lf_tail *t, int64_t after, lf_event_list *got, size_t bytes)
{
    if (got->n == 0 || got->ev[0].position <= after || bytes > BEHIND_BYTES / 2) return;
    for (;;) {
        behind_page *lru = NULL, *empty = NULL;
        for (int i = 0; i < BEHIND_PAGES; i++) {
            behind_page *p = &t->pages[i];
            if (!p->d)
                empty = p;
            else if (!lru || p->used < lru->used)
                lru = p;
        }
        if (empty && t->pages_bytes + bytes <= BEHIND_BYTES) {
            empty->d = lf_xcalloc(1, sizeof *empty->d);
            empty->d->ev = *got;
            empty->d->refs = 1;
            lf_event_list_init(got);
            empty->base = after;
            empty->top = empty->d->ev.ev[empty->d->ev.n - 1].position;
            empty->bytes = bytes;
            empty->used = ++t->clock;
            empty->used_ms = lf_mono_ms();
            t->pages_bytes += bytes;
            return;
        }
        page_drop_locked(t, lru); /* lru: not all empty, or the bound was hit */
    }
}

/* Lets go of pages nobody read for BEHIND_IDLE_MS: once the followers
 * have caught up, the memory goes back. */
static void drop_idle_pages_locked(lf_tail *t)
{
    if (!t->pages_bytes) return;
    int64_t now = lf_mono_ms();
    for (int i = 0; i < BEHIND_PAGES; i++) {
        behind_page *p = &t->pages[i];
        if (p->d && now - p->used_ms >= BEHIND_IDLE_MS) page_drop_locked(t, p);
    }
}

/* A reader behind the tail: from kept pages, else from the server (and
 * what it brings is kept), page after page until max events or the tail —
 * so a reader gets as many events per read as without pages (a projection
 * commits once per read). Called with t->mu held; returns with it let go. */
static int read_behind(lf_tail *t, int64_t after, size_t max, lf_event_list *out,
                       int (*fetch)(void *impl, int64_t after, size_t max, lf_event_list *out),
                       void *impl)
{
    int64_t cur = after; /* the last position given to out, or after */
    size_t served = 0;
    int rc = 0;
    while (served < max && !(t->valid && cur >= t->base)) {
        page_data *d = find_page_locked(t, cur);
        pthread_mutex_unlock(&t->mu);
        size_t n = 0;
        if (d) {
            n = serve_page(d, cur, max - served, out);
            pthread_mutex_lock(&t->mu);
            page_unref_locked(d);
        } else {
            /* The query starts at the multiple of BEHIND_ALIGN at or
             * before cur (unless the reader wants more than that): the
             * server backends' positions are contiguous, so followers near
             * each other ask for the same page instead of each for its own
             * overlapping one. */
            int64_t from = cur;
            size_t want = max < TAIL_FETCH_MIN ? TAIL_FETCH_MIN : max;
            if (max <= BEHIND_ALIGN && cur >= 0) {
                from = cur - cur % BEHIND_ALIGN;
                want = BEHIND_ALIGN;
            }
            lf_event_list got;
            lf_event_list_init(&got);
            rc = fetch(impl, from, want, &got);
            for (size_t i = 0; rc == 0 && i < got.n && served + n < max; i++)
                if (got.ev[i].position > cur) {
                    copy_event(out, &got.ev[i]);
                    n++;
                }
            size_t bytes = rc == 0 ? list_bytes(&got) : 0;
            pthread_mutex_lock(&t->mu);
            if (rc == 0) keep_page_locked(t, from, &got, bytes);
            lf_event_list_free(&got);
            if (rc == 0 && n == 0 && from != cur && served == 0) {
                /* Nothing past cur in that page (positions with gaps): ask
                 * from cur itself, so a reader behind never hears "nothing
                 * new". */
                pthread_mutex_unlock(&t->mu);
                return fetch(impl, cur, max, out);
            }
        }
        if (rc || n == 0) break;
        served += n;
        cur = out->ev[out->n - 1].position;
    }
    pthread_mutex_unlock(&t->mu);
    /* A query that failed after some pages were served: those are a
     * correct prefix, and the next read meets the error. */
    return served ? 0 : rc;
}

int lf_tail_read_all(lf_tail *t, int64_t after, size_t max, lf_event_list *out,
                     int (*fetch)(void *impl, int64_t after, size_t max, lf_event_list *out),
                     void *impl)
{
    if (max == 0) return fetch(impl, after, max, out);
    pthread_mutex_lock(&t->mu);
    for (;;) {
        if (t->valid && after >= t->base && after < t->top) {
            serve_locked(t, after, max, out);
            pthread_mutex_unlock(&t->mu);
            return 0;
        }
        if (t->valid && after < t->base) return read_behind(t, after, max, out, fetch, impl);
        if (!t->fetching) break;
        /* A query is running: if it brings events past `after` they are
         * served above; if not, this reader queries itself. */
        pthread_cond_wait(&t->cv, &t->mu);
    }
    t->fetching = 1;
    drop_idle_pages_locked(t);
    pthread_mutex_unlock(&t->mu);

    lf_event_list got;
    lf_event_list_init(&got);
    int rc = fetch(impl, after, max < TAIL_FETCH_MIN ? TAIL_FETCH_MIN : max, &got);

    pthread_mutex_lock(&t->mu);
    t->fetching = 0;
    if (rc == 0 && got.n > 0 && got.ev[0].position > after) {
        if (!t->valid || after != t->top) { /* start a new range at `after` */
            while (t->n > 0)
                drop_oldest_locked(t);
            t->valid = 1;
            t->base = t->top = after;
        }
        for (size_t i = 0; i < got.n; i++)
            push_locked(t, &got.ev[i]);
    }
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);

    if (rc == 0)
        for (size_t i = 0; i < got.n && i < max; i++)
            copy_event(out, &got.ev[i]);
    lf_event_list_free(&got);
    return rc;
}
