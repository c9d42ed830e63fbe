/*
 * unit.h — the unit agent as a library: one smart-locker unit's local
 * event store, its state (a fold over its own events), its HTTP API
 * (DESIGN §7, relative to the unit's root) and its uplink to the hub.
 *
 * Two users: `lockerfleet unit` (one lf_unit, its own lf_http server and
 * a loop calling lf_unit_uplink_step) and `lockerfleet sim` (thousands of
 * lf_unit in one process sharing one lf_unit_db, one HTTP server routing
 * /u/{name}/... to lf_unit_handle, a few worker threads calling
 * lf_unit_uplink_step when each unit is due — no thread per unit).
 *
 * Source of truth: the unit's local log (seq 1, 2, 3 ...). Every
 * behaviour (rent, pickup, door, payment, error, config, reservation) is
 * decided on the current state and appended as events in one transaction;
 * the in-memory state is the fold of those events. Events the hub has
 * acknowledged (acked seq) are pruned after a snapshot of the state, so
 * disk use stays bounded while nothing unacknowledged is ever lost.
 *
 * Threads: every lf_unit_* function is thread-safe (a mutex per unit; the
 * lf_unit_db has its own mutex). lf_unit_handle may block (a unit set
 * offline does not answer hub-facing requests until it is back online or
 * about 30 s have passed).
 */
#ifndef LF_UNIT_H
#define LF_UNIT_H

#include "core/lf.h"
#include "http/http.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct lf_unit lf_unit;
typedef struct lf_unit_db lf_unit_db;

#define LF_UNIT_LOCKERS_MAX 128
#define LF_UNIT_BATCH_MAX 500 /* events per push */

/* ---- the local store --------------------------------------------------- */
/* Opens (creating if needed) a unit store: one SQLite file in WAL mode,
 * usable by one unit or shared by many (rows are keyed by unit name).
 * durable: true -> synchronous=FULL (an event acknowledged to the person at
 * the screen survives power loss: the standalone agent); false ->
 * synchronous=NORMAL (consistent after a crash, the last transactions may
 * be lost on power loss: the simulator). cache_kib: SQLite page cache
 * (small for a unit; 0 = 256 KiB). Returns 0 or LF_EIO/LF_ECORRUPT with
 * lf_err_get() set. Free with lf_unit_db_close after every unit using it. */
int lf_unit_db_open(const char *path, bool durable, int cache_kib, lf_unit_db **out);
void lf_unit_db_close(lf_unit_db *db);

/* ---- configuration ----------------------------------------------------- */
enum lf_unit_uplink { LF_UNIT_PUSH = 0, LF_UNIT_PULL = 1 };

typedef struct {
    char id[16];
    char size; /* 'S', 'M', 'L' */
} lf_unit_locker;

typedef struct {
    const char *name;                 /* [a-z0-9-]{1,64} */
    const char *hub_url;              /* e.g. http://127.0.0.1:8080; NULL: no uplink */
    const char *token;                /* the unit's token (Bearer on its calls to the hub) */
    const char *hub_token;            /* the hub's credential on calls to the unit;
                                         NULL: hub-facing endpoints need no token */
    const unsigned char *booking_key; /* 32 bytes, NULL: codes can't be verified */
    lf_unit_db *db;                   /* shared store (borrowed), or NULL and db_path */
    const char *db_path;              /* own store file when db is NULL */
    bool durable;                     /* for db_path: see lf_unit_db_open */
    enum lf_unit_uplink uplink;
    int64_t push_interval_ms;      /* push mode; default 5000 */
    int64_t heartbeat_interval_ms; /* 0 = no heartbeats */
    int64_t backoff_max_ms;        /* default 60000 */
    int64_t hub_timeout_ms;        /* per uplink call; default 10000 */
    const char *ca_file;           /* to verify an https hub */
    /* Lockers and allotment the unit is provisioned with. When they differ
     * from the state in the store, a UnitProvisioned event records them. */
    const lf_unit_locker *lockers;
    int nlockers;
    const char *const *allotment; /* locker ids */
    int nallotment;
} lf_unit_config;

/* Parses "A01:S,A02:M,..." into out (up to max). 0 or LF_EINVAL with
 * lf_err_get() naming the bad entry. */
int lf_unit_parse_lockers(const char *s, lf_unit_locker *out, int max, int *n);

/* Opens a unit: loads the snapshot and folds the events after it. The
 * config's strings are copied. Returns 0 or an LF_E* code (lf_err_get()).
 * lf_unit_close frees it (its own db too, not a shared one). */
int lf_unit_open(const lf_unit_config *cfg, lf_unit **out);
void lf_unit_close(lf_unit *u);
const char *lf_unit_name(const lf_unit *u);

/* ---- HTTP --------------------------------------------------------------- */
/* Serves one request; req->segs[first_seg..] is the path relative to the
 * unit's root ("ping", "config", "events", "reservations", "screen",
 * "hardware"). */
void lf_unit_handle(lf_unit *u, lf_http_req *req, lf_http_resp *resp, int first_seg);

/* ---- uplink ------------------------------------------------------------- */
/* Does whatever uplink work is due at now_ms (monotonic, lf_mono_ms):
 * heartbeat, push of unsent events (one batch per call), backoff, pruning
 * of acknowledged events. Blocks for at most one HTTP call. Returns the
 * monotonic time at which it should be called again. */
int64_t lf_unit_uplink_step(lf_unit *u, int64_t now_ms);

/* Simulated connectivity loss: while offline the unit answers no
 * hub-facing request (ping, config, events, reservations) and makes no
 * uplink call; the screen and hardware keep working. */
void lf_unit_set_offline(lf_unit *u, bool offline);
bool lf_unit_is_offline(lf_unit *u);
/* Extra delay before answering hub-facing requests (slow units); 0 = none. */
void lf_unit_set_slow_ms(lf_unit *u, int64_t ms);

typedef struct {
    int64_t seq_head;       /* last local seq */
    int64_t acked_seq;      /* last seq the hub acknowledged */
    int64_t pruned_seq;     /* events <= this are gone from the local log */
    int64_t config_version; /* 0 = none applied */
    int nlockers, nrentals, nreservations;
    bool connected; /* the last uplink contact succeeded recently */
    int64_t pushes_ok, pushes_failed, heartbeats_ok;
} lf_unit_status;
void lf_unit_get_status(lf_unit *u, lf_unit_status *out);

/* ---- behaviour (the same functions the HTTP API calls) ------------------ */
typedef struct {
    char rental_id[LF_UUID_LEN];
    char locker[16];
    char code[16]; /* pickup code for the person at the screen */
    int64_t from_ms, to_ms;
    int64_t amount_cents;
    bool offline; /* decided without a hub connection */
} lf_unit_rental;
/* Walk-up rental: picks a free locker of size ('S','M','L') for
 * [now, now+minutes) avoiding rentals and every known reservation (only
 * the allotment while disconnected, when one is set), takes the payment
 * (pay_ok simulates the terminal) and opens the door. Returns 0,
 * LF_EINVAL (bad size/minutes), LF_EUNAVAILABLE (no locker free: no
 * event), LF_EDENIED (payment failed: PaymentStarted+PaymentFailed
 * recorded), LF_EIO. */
int lf_unit_rent(lf_unit *u, char size, int64_t minutes, bool pay_ok, lf_unit_rental *out);

typedef struct {
    char locker[16];
    char kind[12]; /* "rental" or "reservation" */
    char id[LF_UUID_LEN];
} lf_unit_pickup_result;
/* Opens the locker for a rental code or a reservation booking code
 * (verified offline with the booking key). Returns 0, LF_EDENIED (bad
 * code / cancelled: PickupRejected recorded), LF_ESTATE (outside the
 * window: PickupRejected), LF_EIO. */
int lf_unit_pickup(lf_unit *u, const char *code, lf_unit_pickup_result *out);

/* Door hardware: DoorOpened/DoorClosed for a locker. LF_ENOTFOUND for an
 * unknown locker. */
int lf_unit_door(lf_unit *u, const char *locker, bool open);
/* HardwareError (locker may be NULL). */
int lf_unit_hw_error(lf_unit *u, const char *component, const char *message, const char *locker);

/* Applies a config version (idempotent: versions <= the applied one are
 * ignored). config is borrowed. *applied receives the applied version. */
int lf_unit_apply_config(lf_unit *u, int64_t version, json_t *config, int64_t *applied);

/* Accepts a reservation from the hub (ReservationAccepted), or LF_ECONFLICT
 * when the locker is in use for an overlapping window (ReservationRejected,
 * reason locker_in_use); LF_ENOTFOUND for an unknown locker. Idempotent per
 * id: the same answer again, no new event. */
int lf_unit_reserve(lf_unit *u, const char *id, const char *locker, int64_t from_ms, int64_t to_ms);
/* Cancels a reservation (known or not: its code will no longer open). */
int lf_unit_cancel_reservation(lf_unit *u, const char *id);

/* Copies up to max locker ids of the unit (for the simulator). */
int lf_unit_lockers(lf_unit *u, lf_unit_locker *out, int max);

#endif
