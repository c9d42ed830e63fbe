/*
 * hub.h — the hub's shared internals (only src/hub/ and src/projection/
 * include this). The hub is one process: an HTTP API (src/http), the event
 * store (src/store), projections (src/projection), pure domain logic
 * (src/domain) and fleet workers (pinger, config/reservation delivery,
 * event puller).
 *
 * Modules of the hub each contribute a table of routes (lf_route) and
 * optionally start/stop functions; hub_main.c wires them together:
 *   api_core.c         /healthz, /metrics, /, /v1/events(/live), /v1/projections
 *   api_admin.c        /v1/users, /v1/units (registration, listing)
 *   api_reservations.c /v1/availability, /v1/reservations...
 *   fleet_*.c          presence, config delivery, ingestion, pull, sharding
 *
 * Threads: HTTP handlers run on one thread per connection; workers have
 * their own threads. Everything reachable from lf_hub is thread-safe
 * through the functions below (or the module's own lock).
 */
#ifndef LF_HUB_H
#define LF_HUB_H

#include "core/lf.h"
#include "http/http.h"
#include "store/store.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

typedef struct lf_hub lf_hub;

/* ---- configuration --------------------------------------------------- */
#define LF_RETRY_MAX 16
typedef struct {
    const char *listen;      /* default 127.0.0.1:8080 */
    const char *data_dir;    /* default ./data */
    const char *store_url;   /* default sqlite:DATA/events.db */
    const char *admin_token; /* NULL: read/generate DATA/admin.token */
    const char *node_id;     /* default "hub-1" */
    const char *tls_cert, *tls_key, *ca_file;
    int shard_digits;               /* 1..4, default 1 */
    int64_t ping_interval_ms;       /* default 30 s */
    int64_t ping_timeout_ms;        /* default 5 s */
    int64_t heartbeat_grace_ms;     /* 0: 3 x the unit's heartbeat interval */
    int64_t pull_interval_ms;       /* default 60 s */
    int64_t retry_ms[LF_RETRY_MAX]; /* default 60 s, 300 s, 900 s (last repeats) */
    int nretry;
    int64_t hold_ms;         /* reservation hold, default 600 s */
    size_t body_max;         /* default 8 MiB (event batches) */
    int ingest_inflight_max; /* admission control, default 64 */
    int quiet_http;          /* no per-request log lines */
} lf_hub_config;

/* ---- roles and auth --------------------------------------------------- */
enum lf_role { LF_ROLE_NONE = 0, LF_ROLE_ADMIN = 1, LF_ROLE_USER = 2, LF_ROLE_UNIT = 4 };
#define LF_ROLE_PUBLIC 0
typedef struct {
    enum lf_role role;
    char id[80]; /* user id for users, unit name for units, "admin" */
} lf_principal;

/* ---- routing ----------------------------------------------------------- */
/* pattern: "/v1/units/:name/config" — ":x" matches one segment (already
 * URL-decoded) and is available as params[i] in order. roles: bitmask of
 * roles allowed; LF_ROLE_PUBLIC (0) needs no token. The router answers
 * 401 (no/unknown token), 403 (wrong role), 404, 405 before calling fn. */
#define LF_ROUTE_MAX_PARAMS 4
typedef struct {
    lf_hub *hub;
    lf_http_req *req;
    lf_http_resp *resp;
    lf_principal who;
    const char *params[LF_ROUTE_MAX_PARAMS];
} lf_ctx;
typedef void (*lf_route_fn)(lf_ctx *c);
typedef struct {
    const char *method;
    const char *pattern;
    int roles;
    lf_route_fn fn;
    const char *name; /* metric label, e.g. "units_list" */
    int flags;        /* LF_ROUTE_* */
} lf_route;
/* The handler never blocks a polling thread (--http-threads): it answers
 * later (lf_http_later) instead of waiting, so the router runs it there
 * rather than on an offload worker. */
#define LF_ROUTE_NONBLOCKING 1

/* ---- the hub ---------------------------------------------------------- */
struct lf_projections; /* src/projection/projection.h */
struct lf_fleet;       /* fleet_*.c */
struct lf_booking_svc; /* api_reservations.c */
struct lf_registry;    /* registry.c: units and users, in memory */
struct lf_cluster;     /* cluster.c: shard leases of this node */

struct lf_hub {
    lf_hub_config cfg;
    lf_store *store;
    lf_http_server *http;
    char *data_dir;
    char admin_hash[65];      /* SHA-256 hex of the admin token */
    unsigned char secret[32]; /* hub secret (DATA/hub.secret): booking keys */
    struct lf_registry *reg;
    struct lf_projections *proj;
    struct lf_fleet *fleet;
    struct lf_booking_svc *booking;
    struct lf_cluster *cluster;
    atomic_int stopping;
    int64_t started_ms;
};

/* Authenticates the bearer token of the request: admin, a user, or a
 * unit. Returns the principal (role NONE if absent or unknown). */
lf_principal lf_hub_authenticate(lf_hub *h, lf_http_req *req);

/* Appends events and records the metric; see lf_store_append. */
int lf_hub_append(lf_hub *h, const char *stream, int64_t expected, const lf_event_in *evs, size_t n,
                  lf_append_result *res);
/* What lf_hub_append does after a successful append of n events (metrics,
 * telling the projections what was published): for lf_store_append_async
 * callbacks. Any thread. */
void lf_hub_appended(lf_hub *h, size_t n, const lf_append_result *res);

/* Answers an error for an LF_E* code from a lower layer (503 for EIO...). */
void lf_hub_error_rc(lf_ctx *c, int rc, const char *what);

/* ?min_position=N support: waits (bounded, ~5 s) until the named
 * projection has reached N. Returns 0 when reached or no parameter; else
 * fills a 503 (or 400 for a bad value) and returns non-zero. */
int lf_hub_wait_projection(lf_ctx *c, const char *projection);

/* Per-unit booking-code key: HMAC-SHA256(hub secret, "booking:" + unit).
 * Given to the unit at registration so it verifies codes offline. */
void lf_hub_booking_key(lf_hub *h, const char *unit, unsigned char key[32]);

/* ---- registry (registry.c): units and users, in memory, rebuilt from
 * the log (unit-*, user-* streams) at start and kept current by the code
 * that appends their events. Lookups copy out, so callers own what they
 * get. ------------------------------------------------------------------ */
enum lf_presence { LF_PRESENCE_POLL = 0, LF_PRESENCE_HEARTBEAT = 1 };
typedef struct {
    char id[16];
    char size; /* 'S', 'M', 'L' */
} lf_locker;
typedef struct {
    char name[65];
    char display_name[129];
    char url[512]; /* "" for heartbeat units without an API */
    char shard[5];
    enum lf_presence presence;
    char uplink[8]; /* "push" or "pull" */
    int64_t heartbeat_interval_ms;
    char token_hash[65];
    lf_locker lockers[128];
    int nlockers;
    char allotment[128][16]; /* lockers the unit may rent on its own offline */
    int nallotment;
    int64_t registered_at_ms;
} lf_unit_info;

/* 0 and a copy, or LF_ENOTFOUND. */
int lf_registry_unit(lf_hub *h, const char *name, lf_unit_info *out);
/* Calls fn for every unit whose shard starts with shard_prefix ("" = all),
 * in name order. fn must not call back into the registry. */
void lf_registry_each_unit(lf_hub *h, const char *shard_prefix,
                           void (*fn)(const lf_unit_info *u, void *ctx), void *ctx);
size_t lf_registry_unit_count(lf_hub *h);
/* The unit whose token hashes to token_hash, or LF_ENOTFOUND. */
int lf_registry_unit_by_token(lf_hub *h, const char *token_hash, char name_out[65]);
/* The user whose token hashes to token_hash, or LF_ENOTFOUND. */
int lf_registry_user_by_token(lf_hub *h, const char *token_hash, char user_id_out[80]);

/* ---- fleet live state (fleet_presence.c) -------------------------------
 * Presence is kept in memory (the last response time is not an event);
 * only transitions become events (UnitCameOnline / UnitWentOffline). */
typedef struct {
    int known; /* 0 until the first ping/heartbeat */
    int online;
    int64_t last_response_ms;  /* -1 if none / offline */
    int64_t last_seen_at_ms;   /* wall time of the last answer/heartbeat */
    int64_t last_online_at_ms; /* wall time it was last seen online */
    char offline_reason[32];   /* "timeout", "refused", "heartbeat_missed", "error" */
} lf_presence_state;
/* 0 and a copy, or LF_ENOTFOUND for an unknown unit. */
int lf_fleet_presence(lf_hub *h, const char *unit, lf_presence_state *out);
/* Called by registration so the fleet starts watching a new unit. */
void lf_fleet_unit_added(lf_hub *h, const char *unit);

/* Route tables of the hub's modules (each returns a static array ending
 * with a {0} entry). */
const lf_route *lf_api_core_routes(void);
const lf_route *lf_api_admin_routes(void);
const lf_route *lf_api_reservation_routes(void);
const lf_route *lf_fleet_routes(void);

/* Module lifecycles, called by hub_main in this order after the store is
 * open and the projections have started (the registry and the fleet
 * follow the log on the projections' feed), before the HTTP server
 * starts; stopped in reverse, before the projections. */
int lf_registry_start(lf_hub *h);
void lf_registry_stop(lf_hub *h);
int lf_booking_start(lf_hub *h);
void lf_booking_stop(lf_hub *h);
int lf_fleet_start(lf_hub *h);
void lf_fleet_stop(lf_hub *h);

/* ---- metrics (metrics.c): a tiny Prometheus registry ---------------- */
/* Counters and gauges with up to 2 label pairs; histograms of latency
 * with fixed buckets. Names follow Prometheus conventions. Thread-safe. */
void lf_metric_inc(const char *name, const char *labels, double v); /* counter */
void lf_metric_set(const char *name, const char *labels, double v); /* gauge */
void lf_metric_observe(const char *name, const char *labels, double seconds);
/* HELP/TYPE text for a metric family (call once at start). */
void lf_metric_describe(const char *name, const char *type, const char *help);
/* Renders the Prometheus text exposition into b. */
void lf_metrics_render(lf_buf *b);

#endif
