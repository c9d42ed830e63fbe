/*
 * fleet.h — the fleet side of the hub: presence (pinger on libcurl multi,
 * heartbeats), the delivery ledger (config and reservations to units),
 * event ingestion (push and pull) and sharding of that work.
 *
 * Internal to src/hub/fleet*.c, except lf_fleet_hub_token which the
 * registration handler uses to hand a unit its hub token.
 *
 * Layout:
 *   fleet_pure.c    pure helpers (retry schedule, shard math, batch
 *                   validation, hub token); unit-tested in isolation
 *   fleet_ping.c    one round of pings over a curl multi handle
 *   fleet.c         the unit table, lifecycle, presence transitions,
 *                   rebuild from the log at start, shard-group workers
 *   fleet_config.c  PUT/GET config, heartbeats, config delivery attempts
 *   fleet_ingest.c  POST events (push) and the pull worker
 *   fleet_resv.c    reservations to units (log follower + delivery)
 *
 * Threads: per shard group, one pinger thread, one worker thread (finds
 * due work, heartbeat grace) and a bounded delivery pool (config and
 * reservation deliveries, pulls: one job per unit at a time, several units
 * at once); HTTP handlers on the server's threads.
 * f->mu guards the unit table and every unit's presence and ledger; no
 * network call or store append is made while holding it. Each unit's
 * ingest_mu serialises its push and pull appends.
 */
#ifndef LF_HUB_FLEET_H
#define LF_HUB_FLEET_H

#include "http/client.h"
#include "hub/hub.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

/* ---- pure helpers (fleet_pure.c) -------------------------------------- */

/* Delay before the next attempt after `attempt` (1-based) attempts have
 * failed: sched[attempt-1], the last entry repeating. n >= 1. */
int64_t lf_fleet_retry_delay(const int64_t *sched, int n, int attempt);

/* Parses "60,300,900" (seconds, each 1..86400, 1..max entries) into ms.
 * LF_EINVAL on anything else. */
int lf_fleet_parse_retry_schedule(const char *s, int64_t *out_ms, int max, int *n);

/* Numeric value of a shard (its hex digits), -1 if not 1..4 hex digits. */
int lf_fleet_shard_index(const char *shard);

/* The worker group (0..ngroups-1) of a shard: contiguous ranges of the
 * shard space, so for ngroups dividing 16 a child shard ("3a") lands in the
 * same group as its parent ("3") whatever the digit count. */
int lf_fleet_shard_group(const char *shard, int ngroups);

/* True if shard is owned by a node owning the given shard prefixes
 * (comma separated, e.g. "0,1,2a"; NULL or "" = all shards). */
bool lf_fleet_shard_owned(const char *shard, const char *owned);

/* hex(HMAC-SHA256(secret, "hubtoken:" + name)): the credential the hub
 * presents to the unit (Authorization: Bearer). out holds 65 bytes. */
void lf_fleet_hub_token_raw(const unsigned char secret[32], const char *name, char out[65]);
/* The same with the hub's secret. */
void lf_fleet_hub_token(lf_hub *h, const char *name, char out[65]);

/* One unit event of an ingestion batch, validated. Strings and data are
 * borrowed from the JSON the batch was parsed from. */
#define LF_FLEET_BATCH_MAX 1000
#define LF_FLEET_TYPE_MAX 64
typedef struct {
    int64_t seq;
    const char *id;
    const char *type;
    int64_t time_ms;
    json_t *data;
} lf_fleet_uevent;

/* Validates a batch array: 1..max entries of {"seq","id","type","time",
 * "data"} — seq a positive integer, consecutive; id a UUID; type
 * [A-Za-z]+ up to 64 chars; time RFC 3339; data an object. On error
 * returns LF_EINVAL, writes the field ("events[3].seq") to field and a
 * message to msg. out must hold max entries. */
int lf_fleet_batch_parse(json_t *events, size_t max, lf_fleet_uevent *out, size_t *n, char *field,
                         size_t fieldlen, char *msg, size_t msglen);

/* The fast path for a pushed body {"events":[...]}: 1 if it is certainly a
 * batch lf_fleet_batch_parse accepts (and every data object is already the
 * text json_dumps(JSON_COMPACT) would give), 0 if not sure — then parse
 * with jansson and lf_fleet_batch_parse, which decide and word errors.
 * On 1: out[i] as lf_fleet_batch_parse fills it, except data = NULL and
 * the data text in data[i]; strings point into *arena (the caller frees it
 * with free()). out and data must hold max entries. */
int lf_fleet_batch_fast(const char *body, size_t len, size_t max, lf_fleet_uevent *out,
                        const char **data, size_t *n, char **arena);

/* ---- pinger (fleet_ping.c) -------------------------------------------- */
typedef struct lf_fleet_pinger lf_fleet_pinger;
typedef struct {
    int ok;              /* 1: 2xx answer */
    long status;         /* HTTP status, 0 if none */
    int64_t response_ms; /* round trip */
    const char *reason;  /* on failure: "timeout", "refused", "error" */
    char detail[96];     /* on failure: curl's text or the status */
} lf_fleet_ping_result;
typedef void (*lf_fleet_ping_cb)(size_t idx, const lf_fleet_ping_result *r, void *ctx);

/* A pinger with at most max_inflight transfers at once (and as many
 * cached keep-alive connections). NULL on failure. */
lf_fleet_pinger *lf_fleet_pinger_new(int max_inflight);
void lf_fleet_pinger_free(lf_fleet_pinger *p);
/* CA bundle (copied) to verify https units, like the hub's other calls to
 * units (--ca-file); NULL: the system's. Call before the first round. */
void lf_fleet_pinger_set_ca_file(lf_fleet_pinger *p, const char *ca_file);
/* GETs every url (borrowed for the call) concurrently, each with
 * timeout_ms, and calls cb once per url (on this thread) as answers come
 * in. Returns early (LF_ECLOSED) if *stop becomes non-zero. */
int lf_fleet_pinger_round(lf_fleet_pinger *p, const char *const *urls, size_t n, int64_t timeout_ms,
                          lf_fleet_ping_cb cb, void *ctx, const atomic_int *stop);
/* Wakes a round blocked in curl_multi_poll (any thread). */
void lf_fleet_pinger_wake(lf_fleet_pinger *p);

/* ---- the fleet state (fleet.c) ---------------------------------------- */

/* Config ledger of a unit. */
typedef struct {
    int64_t desired_version; /* 0: none */
    json_t *config;          /* desired config (owned), NULL if none */
    char mode[8];
    int64_t applied_version; /* as reported by the unit */
    int attempts;            /* attempts for desired_version */
    int64_t next_attempt_ms; /* wall ms; 0 = not scheduled */
    char state[16];          /* none|pending|sent|applied|rejected */
    json_t *log;             /* recent attempts [{...}] (owned) */
    int busy;                /* an attempt is in flight */
} fleet_cfg;

/* A reservation as far as delivery to its unit is concerned. */
typedef struct fleet_resv {
    char id[LF_UUID_LEN];
    char locker[16];
    int64_t from_ms, to_ms;
    int want_cancel;           /* cancelled or expired on the hub */
    int reserve_result;        /* 0 none, 1 accepted, 2 rejected */
    char delivered_locker[16]; /* locker of the accepted delivery */
    int reserve_attempts;
    int cancel_done;
    int attempts;            /* attempts of the current action */
    int64_t next_attempt_ms; /* wall ms */
    int busy;
    struct fleet_resv *next;
} fleet_resv;

typedef struct fleet_unit {
    char name[65];
    char shard[5];
    char url[512];
    enum lf_presence presence;
    char uplink[8];
    int64_t hb_interval_ms;
    int group;
    lf_presence_state ps;
    int persisted; /* last presence event in the log: -1 none, 0 off, 1 on */
    fleet_cfg cfg;
    fleet_resv *resv;
    int64_t bookings_version;  /* last bookings-{name} version applied */
    pthread_mutex_t ingest_mu; /* serialises push/pull appends */
    int64_t seq_stored;        /* cache of unitlog version; -1 unknown */
    int pulling;
    int job_busy;    /* a delivery/pull job of this unit is queued or running */
    int pull_wanted; /* a pull tick came while a job was busy: pull next */
    struct fleet_unit *hnext;
} fleet_unit;

/* One unit's due work, run by a group's delivery pool. */
enum { FLEET_JOB_CFG = 1, FLEET_JOB_RESV = 2, FLEET_JOB_PULL = 4 };
typedef struct fleet_job {
    char name[65];
    int kinds; /* FLEET_JOB_* bits */
    struct fleet_job *next;
} fleet_job;

typedef struct fleet_group {
    struct lf_fleet *f;
    int idx;
    pthread_t ping_thr, work_thr;
    int ping_started, work_started;
    lf_fleet_pinger *pinger;
    pthread_cond_t cv;
    int wake;
    /* this group's units (f->mu): the scans walk these, not every bucket
     * of the fleet; units are never removed while the fleet runs */
    struct fleet_unit **units;
    size_t nunits, capunits;
    int64_t next_pull_ms;
    int64_t next_prune_ms;
    /* delivery pool: calls to units run here, several at once, so one
     * slow unit holds one thread, not the group (queue guarded by f->mu) */
    pthread_t *pool;
    int npool;
    fleet_job *jobs_head, *jobs_tail;
    pthread_cond_t jobs_cv;
} fleet_group;

struct lf_fleet {
    lf_hub *h;
    pthread_mutex_t mu;
    fleet_unit **buckets;
    size_t nbuckets, nunits;
    int ngroups;
    fleet_group *groups;
    const char *owned;   /* shard prefixes this node owns; NULL = all */
    atomic_int inflight; /* ingestion requests in progress */
    atomic_int stop;
    int64_t started_ms;
    struct lf_projection_follower *sub;
    int online, offline;
    pthread_mutex_t cfg_mu; /* serialises config version allocation */
    /* lf_fleet_emit_async calls not yet called back. Their own lock: a
     * callback may run on any appender's thread, which may hold mu. */
    pthread_mutex_t emits_mu;
    pthread_cond_t emits_cv;
    int emits;
};

/* Finds a unit (f->mu held). NULL if unknown. */
fleet_unit *lf_fleet_find(struct lf_fleet *f, const char *name);
/* Finds a unit, adding it from the registry if it was registered since
 * (f->mu NOT held). NULL if the registry does not know it. */
fleet_unit *lf_fleet_get(struct lf_fleet *f, const char *name);
/* A sign of life from a unit (ping answer, heartbeat, push, pull):
 * updates presence and emits UnitCameOnline on a transition. response_ms
 * < 0 when not measured. f->mu NOT held. */
void lf_fleet_seen(struct lf_fleet *f, const char *name, const char *via, int64_t response_ms);
/* The heartbeat grace of u: --heartbeat-grace, else 3 x its interval. */
int64_t lf_fleet_hb_grace(const struct lf_fleet *f, const fleet_unit *u);
/* Several hub nodes: a heartbeat that reaches a node not owning the
 * unit's shard is relayed to the owner through a store lease
 * "seen.<unit>." (owner "seen", ttl = the grace; any node renews it), which
 * the owner reads before it marks the unit heartbeat_missed. f->mu NOT
 * held; a no-op when this node owns the shard or there is no cluster. */
void lf_fleet_hb_relay(struct lf_fleet *f, fleet_unit *u);
/* A failed ping or a missed heartbeat: emits UnitWentOffline on a
 * transition. f->mu NOT held. */
void lf_fleet_lost(struct lf_fleet *f, const char *name, const char *reason, const char *detail);
/* Appends one hub event of type to unit-{name}; steals data. Returns 0
 * and the position (pos may be NULL) or an LF_E* code. */
int lf_fleet_emit(struct lf_fleet *f, const char *name, const char *type, json_t *data,
                  int64_t *pos);
/* lf_fleet_emit without waiting for the append to be durable (presence
 * transitions: a pinger that finds 10,000 units gone must not wait for
 * 10,000 commits one after the other; queued, they share a few). Steals
 * data; a failure is logged. lf_fleet_stop waits for those in flight.
 * The events of one caller are stored in the order of its calls. */
void lf_fleet_emit_async(struct lf_fleet *f, const char *name, const char *type, json_t *data);
/* Wakes the worker of the unit's group. f->mu NOT held. */
void lf_fleet_wake(struct lf_fleet *f, int group);
/* RFC 3339 text of ms as a JSON string, or JSON null when ms <= 0. */
json_t *lf_fleet_time_json(int64_t ms);
/* True if the unit's token principal may act for name; else fills 403. */
bool lf_fleet_check_unit(lf_ctx *c, const char *name);
/* Timeout for hub→unit calls. */
int lf_fleet_call_timeout_ms(struct lf_fleet *f);
/* Calls the unit (method, url + path, JSON body or NULL) with its hub
 * token; see lf_http_call. out is always initialised: free it. */
int lf_fleet_unit_call(struct lf_fleet *f, const char *name, const char *method, const char *url,
                       const char *body, lf_http_result *out);
/* The ledger reason of a failed call: "timeout", "refused", "error",
 * "http_5xx", "http_4xx"... (static text). */
const char *lf_fleet_call_reason(int rc, long status);

/* fleet_config.c */
void lf_fleet_cfg_fold(fleet_unit *u, const lf_event *ev);
void lf_fleet_cfg_free(fleet_cfg *c);
/* Runs the due config delivery of the unit, if any (worker thread). */
void lf_fleet_cfg_deliver_due(struct lf_fleet *f, const char *name);
void lf_fleet_route_config_put(lf_ctx *c);
void lf_fleet_route_config_get(lf_ctx *c);
void lf_fleet_route_heartbeat(lf_ctx *c);

/* fleet_ingest.c */
void lf_fleet_route_events(lf_ctx *c);
/* Pulls the unit's events after the last stored seq (worker thread). */
void lf_fleet_pull_unit(struct lf_fleet *f, const char *name);

/* fleet_resv.c */
/* Applies a bookings-{unit} or unit-{unit} event to the reservation
 * ledger of u (f->mu held). Returns 1 if a delivery became due. */
int lf_fleet_resv_fold(struct lf_fleet *f, fleet_unit *u, const lf_event *ev);
void lf_fleet_resv_free(fleet_unit *u);
/* Delivers the unit's due reservation actions (worker thread). */
void lf_fleet_resv_deliver_due(struct lf_fleet *f, const char *name);
/* True if u has a reservation action due at now (f->mu held). */
bool lf_fleet_resv_due(const fleet_unit *u, int64_t now);
/* Makes every pending reservation action of u due now (f->mu held). */
void lf_fleet_resv_due_now(fleet_unit *u, int64_t now);
/* Drops reservations that need nothing more and never will (window over,
 * cancel acknowledged or never needed, rejected then cancelled), so the
 * ledger holds only live ones (f->mu held). Returns how many were dropped. */
size_t lf_fleet_resv_prune(fleet_unit *u, int64_t now);

#endif
