/*
 * unit_int.h — internals shared by the files of src/unit/ (and the unit
 * tests): the local SQLite store (unit_store.c) and the pure state fold
 * (unit_state.c). Nothing outside src/unit/ and tests/unit/ includes it.
 */
#ifndef LF_UNIT_INT_H
#define LF_UNIT_INT_H

#include "unit/unit.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* ---- store (unit_store.c) ------------------------------------------------ */
#define LF_UNIT_TYPE_MAX 40

/* One event of the local log. data: JSON object text, owned by the list. */
typedef struct {
    int64_t seq;
    char id[LF_UUID_LEN];
    char type[LF_UNIT_TYPE_MAX];
    int64_t time_ms;
    char *data;
} lf_unit_event;

typedef struct {
    lf_unit_event *ev;
    size_t n, cap;
} lf_unit_event_list;
void lf_unit_event_list_free(lf_unit_event_list *l);

/* Per-unit bookkeeping kept beside the log (not events: acknowledging must
 * not create events that would need acknowledging). */
typedef struct {
    int64_t head;     /* last seq appended (survives pruning) */
    int64_t acked;    /* last seq the hub acknowledged */
    int64_t pruned;   /* events <= pruned were deleted */
    int64_t snap_seq; /* the snapshot covers events <= snap_seq */
    char *snapshot;   /* JSON text or NULL (owned by the caller: free) */
} lf_unit_meta;

/* Reads the unit's meta row (zeros and NULL snapshot when new). */
int lf_unit_store_meta(lf_unit_db *db, const char *unit, lf_unit_meta *out);
/* Appends n events atomically (one transaction). Their seq must be
 * head+1 .. head+n; LF_ECONFLICT otherwise (nothing written). */
int lf_unit_store_append(lf_unit_db *db, const char *unit, const lf_unit_event *evs, size_t n);
/* Events with seq > after, in order, at most limit. */
int lf_unit_store_read(lf_unit_db *db, const char *unit, int64_t after, size_t limit,
                       lf_unit_event_list *out);
/* Raises the acked seq (never lowers it). */
int lf_unit_store_set_acked(lf_unit_db *db, const char *unit, int64_t acked);
/* One transaction: saves snapshot (covering events <= snap_seq) and
 * deletes events <= through (through <= acked, through <= snap_seq). */
int lf_unit_store_prune(lf_unit_db *db, const char *unit, int64_t snap_seq, const char *snapshot,
                        int64_t through);
/* Number of events stored for the unit (tests, status). */
int lf_unit_store_count(lf_unit_db *db, const char *unit, int64_t *out);

/* ---- state (unit_state.c): a pure fold over the unit's events ------------ */
enum { LF_RESV_ACCEPTED = 1, LF_RESV_REJECTED = 2, LF_RESV_CANCELLED = 3 };

typedef struct {
    char id[16];
    char size;
    bool allot; /* in the offline allotment */
    bool door_open;
    char open_reason[12];
} lf_unit_st_locker;

typedef struct {
    char id[LF_UUID_LEN];
    char locker[16];
    char size;
    int64_t from_ms, to_ms;
    char code_hash[65]; /* lf_token_hash(rental_id ":" code) */
    bool offline;
} lf_unit_st_rental;

typedef struct {
    char id[LF_UUID_LEN];
    char locker[16];
    int64_t from_ms, to_ms; /* 0,0 when unknown (cancelled before known) */
    int status;             /* LF_RESV_* */
    int64_t at_ms;          /* when the last decision was recorded */
} lf_unit_st_resv;

typedef struct {
    lf_unit_st_locker *lockers;
    int nlockers;
    lf_unit_st_rental *rentals;
    int nrentals, caprentals;
    lf_unit_st_resv *resv;
    int nresv, capresv;
    int64_t config_version;
    json_t *config; /* owned; NULL when none */
    int64_t seq;    /* last event folded */
} lf_unit_state;

void lf_unit_state_init(lf_unit_state *s);
void lf_unit_state_free(lf_unit_state *s);
/* Folds one event. Unknown types are ignored (forward compatible).
 * Returns 0, or LF_EINVAL for an event whose data is not as documented
 * (state unchanged), LF_ENOMEM. */
int lf_unit_state_apply(lf_unit_state *s, int64_t seq, const char *type, json_t *data,
                        int64_t time_ms);
/* Serialises the state (new reference). Finished reservations older than
 * a day before now_ms and cancellations older than 31 days are left out:
 * that is what keeps the snapshot bounded. */
json_t *lf_unit_state_snapshot(const lf_unit_state *s, int64_t now_ms);
/* Replaces s with a snapshot. LF_EINVAL/LF_ECORRUPT if malformed. */
int lf_unit_state_restore(lf_unit_state *s, json_t *snap);

/* Lookups. */
lf_unit_st_locker *lf_unit_state_locker(lf_unit_state *s, const char *id);
lf_unit_st_resv *lf_unit_state_resv(lf_unit_state *s, const char *id);
/* True if locker is busy at any instant of [from, to): an active rental
 * or an accepted reservation (other than except_resv, may be NULL). */
bool lf_unit_state_locker_busy(const lf_unit_state *s, const char *locker, int64_t from_ms,
                               int64_t to_ms, const char *except_resv);

/* ---- unit.c internals used by unit_api.c ------------------------------- */
/* Appends one event of a hardware fact (data stolen; NULL = LF_EINVAL). */
int lf_unit_record(lf_unit *u, const char *type, json_t *data);
/* The hub contacted the unit (counts as being connected). */
void lf_unit_note_hub_contact(lf_unit *u);
/* The hub asked for events after `after`: it holds everything <= after. */
void lf_unit_ack_pulled(lf_unit *u, int64_t after);
/* Appends a JSON array of the events after `after` (at most limit) to out;
 * *head = the last seq. LF_ESTATE when `after` is below the pruned seq. */
int lf_unit_events_json(lf_unit *u, int64_t after, size_t limit, lf_buf *out, int64_t *head);
const char *lf_unit_hub_token(const lf_unit *u);
int64_t lf_unit_slow_ms(lf_unit *u);

#endif
