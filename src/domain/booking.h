/*
 * booking.h — locker reservations: PURE decision logic (DESIGN §6).
 *
 * The state of one unit's bookings is a fold over its `bookings-{unit}`
 * stream (docs/EVENTS.md). Commands (reserve, confirm, cancel, expire,
 * resolve a conflict) are functions of that state, the unit's lockers and
 * `now` (a parameter: nothing here reads a clock, touches a file or the
 * network). They return the events to append, or an error code; the
 * caller appends them to the stream with expected version = state.version
 * and, on success, folds them back with lf_booking_apply.
 *
 * Rules:
 *  - windows are half-open [from, to), from < to, from >= now - 1 min
 *    (clock skew), to <= now + 30 days;
 *  - a locker is taken for a window by a confirmed reservation, a hold
 *    whose hold_expires_at is still in the future, or a walk-up rental
 *    recorded by a ConflictDetected event, or a locker the unit rejected
 *    a delivery for (ReservationReassigned/Cancelled reason unit_rejected);
 *  - reserve picks, in locker-id order, a free locker of the size outside
 *    the unit's offline allotment first, and from the allotment only when
 *    the caller says the unit is online;
 *  - confirm after expiry, cancel twice, confirm a cancelled one ... each
 *    give a distinct LF_BOOKING_E* code (mapped to 409 with
 *    lf_booking_code());
 *  - a walk-up rental overlapping a held/confirmed reservation on the same
 *    locker: ReservationReassigned to another free locker of the same size,
 *    else ReservationCancelled{reason:"conflict"} + RefundIssued; in both
 *    cases ConflictDetected. Event ids are derived from the rental and
 *    reservation ids, so re-processing is idempotent.
 *
 * Memory: an lf_booking_state owns its reservations (lf_booking_state_free).
 * An lf_booking_events owns its data strings (lf_booking_events_free).
 */
#ifndef LF_DOMAIN_BOOKING_H
#define LF_DOMAIN_BOOKING_H

#include "core/lf.h"

#include <stddef.h>
#include <stdint.h>

#define LF_BOOKING_MAX_AHEAD_MS (30LL * 24 * 3600 * 1000)
#define LF_BOOKING_SKEW_MS (60LL * 1000)
#define LF_BOOKING_LOCKER_MAX 16
#define LF_BOOKING_IDEM_MAX 128 /* Idempotency-Key bytes, NUL included */
#define LF_BOOKING_USER_MAX 80

/* Errors of the booking domain, outside the LF_E* range; every one is a
 * 409 with the code string of lf_booking_code(). */
enum lf_booking_err {
    LF_BOOKING_EUNAVAILABLE = -100, /* "unavailable": no free locker */
    LF_BOOKING_EEXPIRED = -101,     /* "hold_expired": confirm after expiry */
    LF_BOOKING_ECANCELLED = -102,   /* "reservation_cancelled": confirm a cancelled one */
    LF_BOOKING_EALREADYCANC = -103, /* "already_cancelled": cancel twice */
    LF_BOOKING_ENOTACTIVE = -104,   /* "reservation_expired": cancel an expired one */
    LF_BOOKING_EWINDOW = -105,      /* "window_over": confirm once the window is over */
};

/* snake_case code for an LF_BOOKING_E* (or LF_E*) value; never NULL. */
const char *lf_booking_code(int rc);

enum lf_res_status {
    LF_RES_HELD = 0,
    LF_RES_CONFIRMED,
    LF_RES_CANCELLED,
    LF_RES_EXPIRED,
};
/* "held", "confirmed", "cancelled", "expired". */
const char *lf_res_status_name(enum lf_res_status s);

typedef struct {
    char id[LF_UUID_LEN];
    char user_id[LF_BOOKING_USER_MAX];
    char locker[LF_BOOKING_LOCKER_MAX];
    char size; /* 'S', 'M', 'L' */
    int64_t from_ms, to_ms;
    int64_t hold_expires_ms;
    enum lf_res_status status;
    char idem_key[LF_BOOKING_IDEM_MAX]; /* "" if none */
    int64_t amount_cents;
    char cancel_reason[16]; /* "user", "conflict", "unit_rejected" */
    int reassigned;         /* times moved to another locker */
    int64_t version;        /* stream version of its last event */
} lf_reservation;

/* A walk-up rental the hub learned of through a conflict. */
typedef struct {
    char rental_id[LF_UUID_LEN + 27]; /* unit ids are free text, bounded */
    char locker[LF_BOOKING_LOCKER_MAX];
    int64_t from_ms, to_ms;
} lf_booking_rental;

typedef struct {
    int64_t version; /* stream version folded so far (0 = empty stream) */
    lf_reservation *res;
    size_t n, cap;
    lf_booking_rental *rent;
    size_t nrent, caprent;
} lf_booking_state;

/* A unit's lockers as the domain needs them (borrowed arrays). */
typedef struct {
    const char (*ids)[LF_BOOKING_LOCKER_MAX];
    const char *sizes; /* sizes[i] is the size of ids[i] */
    size_t n;
    const char (*allotment)[LF_BOOKING_LOCKER_MAX];
    size_t nallot;
} lf_booking_lockers;

/* Events produced by a command. type is a static string; data a malloc'd
 * JSON object text; id a deterministic UUID or "" (let the store pick). */
#define LF_BOOKING_EVENTS_MAX 8
typedef struct {
    char id[LF_UUID_LEN];
    const char *type;
    char *data;
} lf_booking_event;
typedef struct {
    lf_booking_event ev[LF_BOOKING_EVENTS_MAX];
    size_t n;
} lf_booking_events;
void lf_booking_events_free(lf_booking_events *e);

void lf_booking_state_init(lf_booking_state *st);
void lf_booking_state_free(lf_booking_state *st);

/* Folds one event (type + data JSON text) at stream version `version`
 * (must be st->version + 1) into st. Unknown types are skipped; malformed
 * data gives LF_EINVAL and leaves st unchanged except for the version,
 * so one bad event cannot wedge a unit. */
int lf_booking_apply(lf_booking_state *st, int64_t version, const char *type, const char *data);

/* Folds the events a command produced, as if stored at versions
 * st->version+1.. (after a successful append). */
int lf_booking_apply_events(lf_booking_state *st, const lf_booking_events *e);

/* The reservation with this id, or NULL (borrowed from st). */
const lf_reservation *lf_booking_find(const lf_booking_state *st, const char *id);
/* The reservation of user with this idempotency key, or NULL. */
const lf_reservation *lf_booking_find_idem(const lf_booking_state *st, const char *user_id,
                                           const char *key);
/* Effective status at now: a held reservation past its expiry reads as
 * expired even before its ReservationExpired event is stored. */
enum lf_res_status lf_booking_status_at(const lf_reservation *r, int64_t now_ms);

/* Checks a window: LF_EINVAL with lf_err_set naming "from"/"to". */
int lf_booking_check_window(int64_t from_ms, int64_t to_ms, int64_t now_ms);

/* Number of free lockers of size for [from,to) at now; allotment lockers
 * count only when online. Negative LF_EINVAL for a bad size/window. */
int lf_booking_available(const lf_booking_state *st, const lf_booking_lockers *lk, char size,
                         int64_t from_ms, int64_t to_ms, int online, int64_t now_ms);

typedef struct {
    const char *reservation_id; /* new UUID chosen by the caller */
    const char *user_id;
    const char *unit;
    char size;
    int64_t from_ms, to_ms;
    int64_t hold_ms;      /* hold duration */
    const char *idem_key; /* NULL or "" for none */
    int online;
} lf_booking_reserve_cmd;

/* Reserve: one ReservationHeld, or LF_EINVAL (bad size/window/key) or
 * LF_BOOKING_EUNAVAILABLE. Idempotency is the caller's job
 * (lf_booking_find_idem) before calling. */
int lf_booking_reserve(const lf_booking_state *st, const lf_booking_lockers *lk,
                       const lf_booking_reserve_cmd *cmd, int64_t now_ms, lf_booking_events *out);

/* Confirm: ReservationConfirmed; confirming a confirmed one returns 0 with
 * no events (an idempotent retry). LF_ENOTFOUND, LF_BOOKING_EEXPIRED,
 * LF_BOOKING_ECANCELLED. */
int lf_booking_confirm(const lf_booking_state *st, const char *id, int64_t amount_cents,
                       int64_t now_ms, lf_booking_events *out);

/* Cancel by the user: ReservationCancelled{reason:"user"} (+ RefundIssued
 * when a confirmed one had been paid). LF_ENOTFOUND,
 * LF_BOOKING_EALREADYCANC, LF_BOOKING_ENOTACTIVE. */
int lf_booking_cancel(const lf_booking_state *st, const char *id, const char *by, int64_t now_ms,
                      lf_booking_events *out);

/* Expire: ReservationExpired for holds with hold_expires_at <= now, at
 * most LF_BOOKING_EVENTS_MAX per call. *next_ms (may be NULL) gets the
 * earliest expiry still pending after these, or INT64_MAX. */
int lf_booking_expire_due(const lf_booking_state *st, int64_t now_ms, lf_booking_events *out,
                          int64_t *next_ms);

/* A walk-up rental reported by the unit (RentalStarted). Resolves every
 * held/confirmed reservation overlapping it on the same locker (at most 2
 * per call: call again while it returns events). No conflict: 0 and no
 * events. Deterministic for a given state and input. */
int lf_booking_resolve_rental(const lf_booking_state *st, const lf_booking_lockers *lk,
                              const char *rental_id, const char *locker, int64_t from_ms,
                              int64_t to_ms, int64_t now_ms, lf_booking_events *out);

/* The unit rejected the delivery of reservation id on locker (e.g. the
 * locker is in use there): ReservationReassigned{reason:"unit_rejected"}
 * to another free locker of the same size (allotment lockers allowed: the
 * unit was online to answer), else ReservationCancelled{reason:
 * "unit_rejected"} (+ RefundIssued when paid). No events when the
 * reservation is unknown, no longer active, or already on another locker
 * (a stale answer). Event ids derive from (id, locker), so re-processing
 * the same rejection is idempotent. The fold keeps a rejected locker
 * blocked for that window (like a rental), so a reservation never goes
 * back and forth between two lockers the unit has in use. */
int lf_booking_resolve_rejection(const lf_booking_state *st, const lf_booking_lockers *lk,
                                 const char *id, const char *locker, int64_t now_ms,
                                 lf_booking_events *out);

/* Deterministic UUID (v8 layout) from a hash of the parts; used for the
 * conflict events so re-processing appends the same ids. */
void lf_booking_event_id(const char *a, const char *b, const char *kind, char out[LF_UUID_LEN]);

#endif
