/*
 * test_booking.c — the pure reservation domain: windows, overlaps, holds
 * and expiry, confirm/cancel state errors, allotment, conflicts, fold.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "domain/booking.h"

#include <stdio.h>
#include <string.h>

#define NOW 1800000000000LL
#define MIN 60000LL
#define HOUR 3600000LL
#define HOLD (10 * MIN)

/* Unit: A01..A03 size S (A03 in the allotment), B01 size M. */
static const char ids[4][LF_BOOKING_LOCKER_MAX] = {"A01", "A02", "A03", "B01"};
static const char sizes[4] = {'S', 'S', 'S', 'M'};
static const char allot[1][LF_BOOKING_LOCKER_MAX] = {"A03"};
static const lf_booking_lockers LK = {ids, sizes, 4, allot, 1};

static int nuuid;
static char uuids[64][LF_UUID_LEN];
static const char *new_id(void)
{
    snprintf(uuids[nuuid], LF_UUID_LEN, "00000000-0000-4000-8000-%012d", nuuid);
    return uuids[nuuid++];
}

/* Runs the command's events into st (as a successful append would). */
static void commit(lf_booking_state *st, lf_booking_events *e)
{
    assert_int_equal(lf_booking_apply_events(st, e), 0);
    lf_booking_events_free(e);
}

static int reserve(lf_booking_state *st, char size, int64_t from, int64_t to, int online,
                   int64_t now, const char **id_out, char *locker_out)
{
    lf_booking_events e = {0};
    const char *id = new_id();
    lf_booking_reserve_cmd cmd = {id, "user-1", "u1", size, from, to, HOLD, NULL, online};
    int rc = lf_booking_reserve(st, &LK, &cmd, now, &e);
    if (rc == 0) {
        assert_int_equal(e.n, 1);
        assert_string_equal(e.ev[0].type, "ReservationHeld");
        assert_string_equal(e.ev[0].id, id);
        commit(st, &e);
        const lf_reservation *r = lf_booking_find(st, id);
        assert_non_null(r);
        if (locker_out) strcpy(locker_out, r->locker);
        if (id_out) *id_out = id;
    } else {
        assert_int_equal(e.n, 0);
    }
    return rc;
}

static void windows(void **state)
{
    lf_booking_state st;
    (void)state;
    lf_booking_state_init(&st);
    assert_int_equal(lf_booking_check_window(NOW, NOW + HOUR, NOW), 0);
    assert_int_equal(lf_booking_check_window(NOW + HOUR, NOW + HOUR, NOW), LF_EINVAL);
    assert_int_equal(lf_booking_check_window(NOW + 2 * HOUR, NOW + HOUR, NOW), LF_EINVAL);
    assert_int_equal(lf_booking_check_window(NOW - HOUR, NOW + HOUR, NOW), LF_EINVAL);
    assert_non_null(strstr(lf_err_get(), "from"));
    assert_int_equal(lf_booking_check_window(NOW, NOW + LF_BOOKING_MAX_AHEAD_MS, NOW), 0);
    assert_int_equal(lf_booking_check_window(NOW, NOW + LF_BOOKING_MAX_AHEAD_MS + 1, NOW),
                     LF_EINVAL);
    assert_non_null(strstr(lf_err_get(), "to"));
    assert_int_equal(reserve(&st, 'S', NOW + HOUR, NOW, 1, NOW, NULL, NULL), LF_EINVAL);
    assert_int_equal(reserve(&st, 'X', NOW, NOW + HOUR, 1, NOW, NULL, NULL), LF_EINVAL);
    assert_int_equal(st.n, 0);
    lf_booking_state_free(&st);
}

static void half_open_overlaps(void **state)
{
    lf_booking_state st;
    char l1[16], l2[16], l3[16];
    (void)state;
    lf_booking_state_init(&st);
    /* offline: only A01, A02 for S */
    assert_int_equal(lf_booking_available(&st, &LK, 'S', NOW, NOW + HOUR, 0, NOW), 2);
    assert_int_equal(lf_booking_available(&st, &LK, 'S', NOW, NOW + HOUR, 1, NOW), 3);
    assert_int_equal(reserve(&st, 'S', NOW, NOW + HOUR, 0, NOW, NULL, l1), 0);
    assert_int_equal(reserve(&st, 'S', NOW, NOW + HOUR, 0, NOW, NULL, l2), 0);
    assert_string_equal(l1, "A01");
    assert_string_equal(l2, "A02");
    assert_int_equal(reserve(&st, 'S', NOW + 30 * MIN, NOW + 2 * HOUR, 0, NOW, NULL, NULL),
                     LF_BOOKING_EUNAVAILABLE);
    /* [to, ...) does not overlap [from, to) */
    assert_int_equal(reserve(&st, 'S', NOW + HOUR, NOW + 2 * HOUR, 0, NOW, NULL, l3), 0);
    assert_string_equal(l3, "A01");
    /* one ms before the end does overlap */
    assert_int_equal(lf_booking_available(&st, &LK, 'S', NOW + HOUR - 1, NOW + HOUR, 0, NOW), 0);
    assert_int_equal(lf_booking_available(&st, &LK, 'S', NOW + HOUR, NOW + 2 * HOUR, 0, NOW), 1);
    assert_int_equal(lf_booking_available(&st, &LK, 'M', NOW, NOW + HOUR, 0, NOW), 1);
    assert_int_equal(lf_booking_available(&st, &LK, 'Q', NOW, NOW + HOUR, 0, NOW), LF_EINVAL);
    lf_booking_state_free(&st);
}

static void allotment_only_online(void **state)
{
    lf_booking_state st;
    char l[16];
    (void)state;
    lf_booking_state_init(&st);
    assert_int_equal(reserve(&st, 'S', NOW, NOW + HOUR, 1, NOW, NULL, l), 0);
    assert_string_equal(l, "A01"); /* outside the allotment first, even online */
    assert_int_equal(reserve(&st, 'S', NOW, NOW + HOUR, 1, NOW, NULL, l), 0);
    assert_string_equal(l, "A02");
    assert_int_equal(reserve(&st, 'S', NOW, NOW + HOUR, 0, NOW, NULL, NULL),
                     LF_BOOKING_EUNAVAILABLE);
    assert_int_equal(reserve(&st, 'S', NOW, NOW + HOUR, 1, NOW, NULL, l), 0);
    assert_string_equal(l, "A03");
    assert_int_equal(reserve(&st, 'S', NOW, NOW + HOUR, 1, NOW, NULL, NULL),
                     LF_BOOKING_EUNAVAILABLE);
    lf_booking_state_free(&st);
}

static void hold_expiry(void **state)
{
    lf_booking_state st;
    lf_booking_events e = {0};
    const char *id;
    int64_t next;
    (void)state;
    lf_booking_state_init(&st);
    assert_int_equal(reserve(&st, 'M', NOW, NOW + HOUR, 0, NOW, &id, NULL), 0);
    assert_int_equal(reserve(&st, 'M', NOW, NOW + HOUR, 0, NOW + 1, NULL, NULL),
                     LF_BOOKING_EUNAVAILABLE);
    /* nothing due yet */
    assert_int_equal(lf_booking_expire_due(&st, NOW + HOLD - 1, &e, &next), 0);
    assert_int_equal(e.n, 0);
    assert_int_equal(next, NOW + HOLD);
    /* past expiry the locker is free even before the event */
    assert_int_equal(lf_booking_available(&st, &LK, 'M', NOW, NOW + HOUR, 0, NOW + HOLD), 1);
    assert_int_equal(lf_booking_status_at(lf_booking_find(&st, id), NOW + HOLD), LF_RES_EXPIRED);
    assert_int_equal(lf_booking_confirm(&st, id, 100, NOW + HOLD, &e), LF_BOOKING_EEXPIRED);
    assert_int_equal(lf_booking_expire_due(&st, NOW + HOLD, &e, &next), 0);
    assert_int_equal(e.n, 1);
    assert_string_equal(e.ev[0].type, "ReservationExpired");
    /* deterministic id: a second expiry run (other node) produces the same */
    char first[LF_UUID_LEN];
    strcpy(first, e.ev[0].id);
    lf_booking_events e2 = {0};
    assert_int_equal(lf_booking_expire_due(&st, NOW + HOLD, &e2, NULL), 0);
    assert_string_equal(e2.ev[0].id, first);
    lf_booking_events_free(&e2);
    commit(&st, &e);
    assert_int_equal(lf_booking_find(&st, id)->status, LF_RES_EXPIRED);
    assert_int_equal(lf_booking_expire_due(&st, NOW + HOLD, &e, &next), 0);
    assert_int_equal(e.n, 0);
    assert_int_equal(next, INT64_MAX);
    assert_int_equal(lf_booking_confirm(&st, id, 100, NOW + HOLD, &e), LF_BOOKING_EEXPIRED);
    assert_int_equal(lf_booking_cancel(&st, id, "user-1", NOW + HOLD, &e), LF_BOOKING_ENOTACTIVE);
    assert_int_equal(e.n, 0);
    lf_booking_state_free(&st);
}

static void confirm_cancel_errors(void **state)
{
    lf_booking_state st;
    lf_booking_events e = {0};
    const char *a, *b;
    (void)state;
    lf_booking_state_init(&st);
    assert_int_equal(reserve(&st, 'S', NOW, NOW + HOUR, 0, NOW, &a, NULL), 0);
    assert_int_equal(reserve(&st, 'S', NOW, NOW + HOUR, 0, NOW, &b, NULL), 0);
    assert_int_equal(lf_booking_confirm(&st, "00000000-0000-4000-8000-999999999999", 1, NOW, &e),
                     LF_ENOTFOUND);
    /* confirm, then confirm again: idempotent, no events */
    assert_int_equal(lf_booking_confirm(&st, a, 250, NOW + 1, &e), 0);
    assert_int_equal(e.n, 1);
    commit(&st, &e);
    assert_int_equal(lf_booking_find(&st, a)->status, LF_RES_CONFIRMED);
    assert_int_equal(lf_booking_confirm(&st, a, 250, NOW + 2, &e), 0);
    assert_int_equal(e.n, 0);
    /* a confirmed one does not expire */
    assert_int_equal(lf_booking_status_at(lf_booking_find(&st, a), NOW + 2 * HOLD),
                     LF_RES_CONFIRMED);
    /* cancel a confirmed paid one: cancel + refund */
    assert_int_equal(lf_booking_cancel(&st, a, "user-1", NOW + 3, &e), 0);
    assert_int_equal(e.n, 2);
    assert_string_equal(e.ev[0].type, "ReservationCancelled");
    assert_string_equal(e.ev[1].type, "RefundIssued");
    commit(&st, &e);
    assert_int_equal(lf_booking_cancel(&st, a, "user-1", NOW + 4, &e), LF_BOOKING_EALREADYCANC);
    assert_int_equal(lf_booking_confirm(&st, a, 1, NOW + 4, &e), LF_BOOKING_ECANCELLED);
    /* cancel a held one: no refund */
    assert_int_equal(lf_booking_cancel(&st, b, "user-1", NOW + 5, &e), 0);
    assert_int_equal(e.n, 1);
    commit(&st, &e);
    assert_int_equal(lf_booking_confirm(&st, b, 1, NOW + 6, &e), LF_BOOKING_ECANCELLED);
    assert_int_equal(e.n, 0);
    /* distinct codes */
    assert_string_equal(lf_booking_code(LF_BOOKING_EEXPIRED), "hold_expired");
    assert_string_equal(lf_booking_code(LF_BOOKING_ECANCELLED), "reservation_cancelled");
    assert_string_equal(lf_booking_code(LF_BOOKING_EALREADYCANC), "already_cancelled");
    assert_string_equal(lf_booking_code(LF_BOOKING_EUNAVAILABLE), "unavailable");
    /* cancelled lockers are free again */
    assert_int_equal(lf_booking_available(&st, &LK, 'S', NOW, NOW + HOUR, 0, NOW + 7), 2);
    assert_int_equal(st.version, 6);
    lf_booking_state_free(&st);
}

static void idempotency_lookup(void **state)
{
    lf_booking_state st;
    lf_booking_events e = {0};
    const char *id = new_id();
    lf_booking_reserve_cmd cmd = {id, "user-7", "u1", 'S', NOW, NOW + HOUR, HOLD, "key-1", 0};
    (void)state;
    lf_booking_state_init(&st);
    assert_int_equal(lf_booking_reserve(&st, &LK, &cmd, NOW, &e), 0);
    commit(&st, &e);
    assert_ptr_equal(lf_booking_find_idem(&st, "user-7", "key-1"), lf_booking_find(&st, id));
    assert_null(lf_booking_find_idem(&st, "user-8", "key-1"));
    assert_null(lf_booking_find_idem(&st, "user-7", "key-2"));
    char lng[200];
    memset(lng, 'k', sizeof lng - 1);
    lng[sizeof lng - 1] = '\0';
    cmd.idem_key = lng;
    cmd.reservation_id = new_id();
    assert_int_equal(lf_booking_reserve(&st, &LK, &cmd, NOW, &e), LF_EINVAL);
    lf_booking_state_free(&st);
}

static void fold_tolerates_bad_events(void **state)
{
    lf_booking_state st;
    (void)state;
    lf_booking_state_init(&st);
    assert_int_equal(lf_booking_apply(&st, 1, "ReservationHeld", "not json"), LF_EINVAL);
    assert_int_equal(lf_booking_apply(&st, 2, "ReservationHeld", "{\"reservation_id\":1}"),
                     LF_EINVAL);
    assert_int_equal(
        lf_booking_apply(&st, 3, "ReservationConfirmed", "{\"reservation_id\":\"nope\"}"),
        LF_EINVAL);
    assert_int_equal(lf_booking_apply(&st, 4, "SomethingElse", "{}"), 0);
    assert_int_equal(st.version, 4);
    assert_int_equal(st.n, 0);
    lf_booking_state_free(&st);
}

static void conflict_reassign_then_cancel(void **state)
{
    lf_booking_state st;
    lf_booking_events e = {0}, again = {0};
    const char *a, *b;
    char la[16], lb[16];
    (void)state;
    lf_booking_state_init(&st);
    /* M: only B01; S: A01, A02 (outside), A03 (allotment) */
    assert_int_equal(reserve(&st, 'S', NOW + HOUR, NOW + 2 * HOUR, 0, NOW, &a, la), 0);
    assert_string_equal(la, "A01");
    /* a rental on another locker: no conflict */
    assert_int_equal(
        lf_booking_resolve_rental(&st, &LK, "r-0", "A02", NOW, NOW + 3 * HOUR, NOW, &e), 0);
    assert_int_equal(e.n, 0);
    /* a rental before the window: no conflict (half-open) */
    assert_int_equal(lf_booking_resolve_rental(&st, &LK, "r-0", "A01", NOW, NOW + HOUR, NOW, &e),
                     0);
    assert_int_equal(e.n, 0);
    /* overlapping rental on A01 -> reassigned to A02 */
    assert_int_equal(
        lf_booking_resolve_rental(&st, &LK, "r-1", "A01", NOW, NOW + 90 * MIN, NOW, &e), 0);
    assert_int_equal(e.n, 2);
    assert_string_equal(e.ev[0].type, "ReservationReassigned");
    assert_non_null(strstr(e.ev[0].data, "\"to_locker\":\"A02\""));
    assert_string_equal(e.ev[1].type, "ConflictDetected");
    assert_non_null(strstr(e.ev[1].data, "\"resolution\":\"reassigned\""));
    /* deterministic */
    assert_int_equal(
        lf_booking_resolve_rental(&st, &LK, "r-1", "A01", NOW, NOW + 90 * MIN, NOW, &again), 0);
    assert_int_equal(again.n, 2);
    assert_string_equal(again.ev[0].id, e.ev[0].id);
    assert_string_equal(again.ev[1].id, e.ev[1].id);
    assert_string_equal(again.ev[0].data, e.ev[0].data);
    lf_booking_events_free(&again);
    commit(&st, &e);
    assert_string_equal(lf_booking_find(&st, a)->locker, "A02");
    /* re-processing the same rental after the fold: nothing to do */
    assert_int_equal(
        lf_booking_resolve_rental(&st, &LK, "r-1", "A01", NOW, NOW + 90 * MIN, NOW, &e), 0);
    assert_int_equal(e.n, 0);
    /* the rental now blocks A01 for its window */
    assert_int_equal(lf_booking_available(&st, &LK, 'S', NOW, NOW + 30 * MIN, 1, NOW), 2);

    /* M: one locker only, confirmed and paid -> cancelled + refund */
    assert_int_equal(reserve(&st, 'M', NOW + HOUR, NOW + 2 * HOUR, 0, NOW, &b, lb), 0);
    assert_int_equal(lf_booking_confirm(&st, b, 500, NOW, &e), 0);
    commit(&st, &e);
    assert_int_equal(
        lf_booking_resolve_rental(&st, &LK, "r-2", "B01", NOW + HOUR, NOW + 3 * HOUR, NOW, &e), 0);
    assert_int_equal(e.n, 3);
    assert_string_equal(e.ev[0].type, "ReservationCancelled");
    assert_non_null(strstr(e.ev[0].data, "\"reason\":\"conflict\""));
    assert_string_equal(e.ev[1].type, "RefundIssued");
    assert_non_null(strstr(e.ev[1].data, "\"amount_cents\":500"));
    assert_string_equal(e.ev[2].type, "ConflictDetected");
    assert_non_null(strstr(e.ev[2].data, "\"resolution\":\"cancelled\""));
    commit(&st, &e);
    assert_int_equal(lf_booking_find(&st, b)->status, LF_RES_CANCELLED);
    assert_string_equal(lf_booking_find(&st, b)->cancel_reason, "conflict");
    assert_int_equal(
        lf_booking_resolve_rental(&st, &LK, "r-2", "B01", NOW + HOUR, NOW + 3 * HOUR, NOW, &e), 0);
    assert_int_equal(e.n, 0);
    lf_booking_state_free(&st);
}

static void conflict_two_reservations_distinct_targets(void **state)
{
    lf_booking_state st;
    lf_booking_events e = {0};
    const char *a, *b;
    char la[16], lb[16];
    /* 4 S lockers: A01, A02, A03 (allot) ... fill A02 so that two
     * reservations on A01 (sequential windows) both need moving */
    (void)state;
    lf_booking_state_init(&st);
    assert_int_equal(reserve(&st, 'S', NOW, NOW + HOUR, 0, NOW, &a, la), 0);
    assert_int_equal(reserve(&st, 'S', NOW + HOUR, NOW + 2 * HOUR, 0, NOW, &b, lb), 0);
    assert_string_equal(la, "A01");
    assert_string_equal(lb, "A01");
    assert_int_equal(reserve(&st, 'S', NOW, NOW + 30 * MIN, 0, NOW, NULL, la), 0);
    assert_string_equal(la, "A02");
    /* rental on A01 covering both windows */
    assert_int_equal(
        lf_booking_resolve_rental(&st, &LK, "r-9", "A01", NOW, NOW + 3 * HOUR, NOW, &e), 0);
    assert_int_equal(e.n, 4);
    /* first one: A02 busy for its window -> A03 (allotment, acceptable) */
    assert_non_null(strstr(e.ev[0].data, "\"to_locker\":\"A03\""));
    /* second one: A02 is free in its window */
    assert_non_null(strstr(e.ev[2].data, "\"to_locker\":\"A02\""));
    commit(&st, &e);
    assert_string_equal(lf_booking_find(&st, a)->locker, "A03");
    assert_string_equal(lf_booking_find(&st, b)->locker, "A02");
    lf_booking_state_free(&st);
}

static void event_ids(void **state)
{
    char x[LF_UUID_LEN], y[LF_UUID_LEN], z[LF_UUID_LEN];
    (void)state;
    lf_booking_event_id("r", "res", "conflict", x);
    lf_booking_event_id("r", "res", "conflict", y);
    lf_booking_event_id("r", "res", "refund", z);
    assert_string_equal(x, y);
    assert_string_not_equal(x, z);
    assert_true(lf_uuid_valid(x));
    /* no ambiguity from concatenation */
    lf_booking_event_id("ab", "c", "k", x);
    lf_booking_event_id("a", "bc", "k", y);
    assert_string_not_equal(x, y);
}

static int setup(void **state)
{
    (void)state;
    return lf_init();
}

/* The unit rejected a delivery (locker in use there): moved to another
 * free locker of the size, else cancelled unit_rejected (+ refund). */
static void unit_rejection_reassign_then_cancel(void **state)
{
    lf_booking_state st;
    lf_booking_events e = {0}, again = {0};
    const char *a, *b;
    char la[16], lb[16];
    (void)state;
    lf_booking_state_init(&st);
    assert_int_equal(reserve(&st, 'S', NOW, NOW + HOUR, 0, NOW, &a, la), 0);
    assert_string_equal(la, "A01");
    /* a stale answer (another locker) or an unknown id: nothing */
    assert_int_equal(lf_booking_resolve_rejection(&st, &LK, a, "A02", NOW, &e), 0);
    assert_int_equal(e.n, 0);
    assert_int_equal(lf_booking_resolve_rejection(&st, &LK, new_id(), "A01", NOW, &e), 0);
    assert_int_equal(e.n, 0);
    assert_int_equal(lf_booking_resolve_rejection(&st, &LK, a, "A01", NOW, &e), 0);
    assert_int_equal(e.n, 1);
    assert_string_equal(e.ev[0].type, "ReservationReassigned");
    assert_non_null(strstr(e.ev[0].data, "\"to_locker\":\"A02\""));
    assert_non_null(strstr(e.ev[0].data, "\"reason\":\"unit_rejected\""));
    assert_int_equal(lf_booking_resolve_rejection(&st, &LK, a, "A01", NOW, &again), 0);
    assert_string_equal(again.ev[0].id, e.ev[0].id); /* deterministic */
    lf_booking_events_free(&again);
    commit(&st, &e);
    assert_string_equal(lf_booking_find(&st, a)->locker, "A02");
    /* A02 rejected too: A03 (allotment: the unit is online to answer) */
    assert_int_equal(lf_booking_resolve_rejection(&st, &LK, a, "A02", NOW, &e), 0);
    assert_non_null(strstr(e.ev[0].data, "\"to_locker\":\"A03\""));
    commit(&st, &e);
    /* M: only B01, confirmed and paid -> cancelled + refund */
    assert_int_equal(reserve(&st, 'M', NOW, NOW + HOUR, 0, NOW, &b, lb), 0);
    assert_int_equal(lf_booking_confirm(&st, b, 300, NOW, &e), 0);
    commit(&st, &e);
    assert_int_equal(lf_booking_resolve_rejection(&st, &LK, b, "B01", NOW, &e), 0);
    assert_int_equal(e.n, 2);
    assert_string_equal(e.ev[0].type, "ReservationCancelled");
    assert_non_null(strstr(e.ev[0].data, "\"reason\":\"unit_rejected\""));
    assert_string_equal(e.ev[1].type, "RefundIssued");
    assert_non_null(strstr(e.ev[1].data, "\"amount_cents\":300"));
    commit(&st, &e);
    assert_int_equal(lf_booking_find(&st, b)->status, LF_RES_CANCELLED);
    /* cancelled: a late rejection decides nothing */
    assert_int_equal(lf_booking_resolve_rejection(&st, &LK, b, "B01", NOW, &e), 0);
    assert_int_equal(e.n, 0);
    lf_booking_state_free(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(windows),
        cmocka_unit_test(half_open_overlaps),
        cmocka_unit_test(allotment_only_online),
        cmocka_unit_test(hold_expiry),
        cmocka_unit_test(confirm_cancel_errors),
        cmocka_unit_test(idempotency_lookup),
        cmocka_unit_test(fold_tolerates_bad_events),
        cmocka_unit_test(conflict_reassign_then_cancel),
        cmocka_unit_test(conflict_two_reservations_distinct_targets),
        cmocka_unit_test(event_ids),
        cmocka_unit_test(unit_rejection_reassign_then_cancel),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
