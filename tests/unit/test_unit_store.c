/*
 * test_unit_store.c — the unit agent's local store (unit_store.c), the
 * state fold and its snapshots (unit_state.c), and the agent library on
 * top (unit.c) without a network: decisions, idempotency, restart,
 * pruning only what the hub acknowledged.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "unit/unit_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dbpath[256];

static int setup(void **state)
{
    (void)state;
    snprintf(dbpath, sizeof dbpath, "/tmp/lf-test-unit-%d-%u.db", (int)getpid(), lf_random_u32());
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char p[300];
    unlink(dbpath);
    snprintf(p, sizeof p, "%s-wal", dbpath);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", dbpath);
    unlink(p);
    return 0;
}

static lf_unit_event ev(int64_t seq, const char *type, const char *data)
{
    lf_unit_event e;
    memset(&e, 0, sizeof e);
    e.seq = seq;
    lf_uuid_v7(e.id);
    snprintf(e.type, sizeof e.type, "%s", type);
    e.time_ms = 1800000000000LL + seq;
    e.data = (char *)data;
    return e;
}

static void test_store_append_read_prune(void **state)
{
    (void)state;
    lf_unit_db *db;
    assert_int_equal(lf_unit_db_open(dbpath, false, 0, &db), 0);
    lf_unit_event a[3] = {ev(1, "A", "{\"n\":1}"), ev(2, "B", "{\"n\":2}"), ev(3, "C", "{}")};
    assert_int_equal(lf_unit_store_append(db, "u1", a, 3), 0);
    /* a gap or a repeat writes nothing */
    lf_unit_event bad = ev(5, "X", "{}");
    assert_int_equal(lf_unit_store_append(db, "u1", &bad, 1), LF_ECONFLICT);
    bad.seq = 3;
    assert_int_equal(lf_unit_store_append(db, "u1", &bad, 1), LF_ECONFLICT);
    /* another unit in the same file starts at 1 and is isolated */
    lf_unit_event o = ev(1, "Other", "{}");
    assert_int_equal(lf_unit_store_append(db, "u2", &o, 1), 0);

    lf_unit_event_list l;
    assert_int_equal(lf_unit_store_read(db, "u1", 1, 10, &l), 0);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.ev[0].seq, 2);
    assert_string_equal(l.ev[0].type, "B");
    assert_string_equal(l.ev[0].data, "{\"n\":2}");
    assert_string_equal(l.ev[1].type, "C");
    lf_unit_event_list_free(&l);

    lf_unit_meta m;
    assert_int_equal(lf_unit_store_meta(db, "u1", &m), 0);
    assert_int_equal(m.head, 3);
    assert_int_equal(m.acked, 0);
    assert_null(m.snapshot);

    /* pruning beyond what the hub acknowledged is refused */
    assert_int_equal(lf_unit_store_prune(db, "u1", 3, "{}", 2), LF_EINVAL);
    assert_int_equal(lf_unit_store_set_acked(db, "u1", 2), 0);
    assert_int_equal(lf_unit_store_set_acked(db, "u1", 1), 0);              /* never lowers */
    assert_int_equal(lf_unit_store_prune(db, "u1", 1, "{}", 2), LF_EINVAL); /* snapshot too old */
    assert_int_equal(lf_unit_store_prune(db, "u1", 3, "{\"v\":1}", 2), 0);
    int64_t n;
    assert_int_equal(lf_unit_store_count(db, "u1", &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(lf_unit_store_meta(db, "u1", &m), 0);
    assert_int_equal(m.acked, 2);
    assert_int_equal(m.pruned, 2);
    assert_int_equal(m.snap_seq, 3);
    assert_string_equal(m.snapshot, "{\"v\":1}");
    free(m.snapshot);
    /* head survives pruning: the next seq is still 4 */
    lf_unit_event d = ev(4, "D", "{}");
    assert_int_equal(lf_unit_store_append(db, "u1", &d, 1), 0);
    assert_int_equal(lf_unit_store_count(db, "u2", &n), 0);
    assert_int_equal(n, 1);
    lf_unit_db_close(db);
}

static void apply(lf_unit_state *s, int64_t seq, const char *type, const char *data)
{
    json_t *d = json_loads(data, 0, NULL);
    assert_non_null(d);
    assert_int_equal(lf_unit_state_apply(s, seq, type, d, 1800000000000LL), 0);
    json_decref(d);
}

#define R1 "00000000-0000-4000-8000-000000000001"
#define V1 "00000000-0000-4000-8000-0000000000a1"

static void test_fold_and_snapshot(void **state)
{
    (void)state;
    lf_unit_state s, r;
    lf_unit_state_init(&s);
    lf_unit_state_init(&r);
    apply(&s, 1, "UnitProvisioned",
          "{\"lockers\":[{\"id\":\"A01\",\"size\":\"S\"},{\"id\":\"A02\",\"size\":\"M\"}],"
          "\"allotment\":[\"A02\"]}");
    assert_int_equal(s.nlockers, 2);
    assert_false(lf_unit_state_locker(&s, "A01")->allot);
    assert_true(lf_unit_state_locker(&s, "A02")->allot);
    apply(&s, 2, "RentalStarted",
          "{\"rental_id\":\"" R1 "\",\"locker\":\"A01\",\"size\":\"S\","
          "\"from\":\"2027-01-01T10:00:00.000Z\",\"to\":\"2027-01-01T11:00:00.000Z\","
          "\"offline\":true,\"code_hash\":\"abc\"}");
    apply(&s, 3, "DoorOpened", "{\"locker\":\"A01\",\"reason\":\"rental\"}");
    int64_t t10, t11, t12;
    lf_time_parse("2027-01-01T10:00:00.000Z", &t10);
    lf_time_parse("2027-01-01T11:00:00.000Z", &t11);
    lf_time_parse("2027-01-01T12:00:00.000Z", &t12);
    assert_true(lf_unit_state_locker_busy(&s, "A01", t11, t12, NULL)); /* until picked up */
    apply(&s, 4, "ReservationAccepted",
          "{\"reservation_id\":\"" V1 "\",\"locker\":\"A02\","
          "\"from\":\"2027-01-01T10:00:00.000Z\",\"to\":\"2027-01-01T11:00:00.000Z\"}");
    /* half-open windows: [10,11) and [11,12) do not overlap */
    assert_false(lf_unit_state_locker_busy(&s, "A02", t11, t12, NULL));
    assert_true(lf_unit_state_locker_busy(&s, "A02", t10, t12, NULL));
    assert_false(lf_unit_state_locker_busy(&s, "A02", t10, t12, V1));
    apply(&s, 5, "ConfigApplied", "{\"version\":3,\"config\":{\"allotment\":[\"A01\"]}}");
    assert_int_equal(s.config_version, 3);
    assert_true(lf_unit_state_locker(&s, "A01")->allot);
    assert_false(lf_unit_state_locker(&s, "A02")->allot);
    /* malformed data is refused and changes nothing */
    json_t *bad = json_loads("{\"rental_id\":\"x\"}", 0, NULL);
    assert_int_equal(lf_unit_state_apply(&s, 6, "RentalStarted", bad, 0), LF_EINVAL);
    json_decref(bad);
    assert_int_equal(s.nrentals, 1);
    assert_int_equal(s.seq, 5);

    /* snapshot round trip */
    json_t *snap = lf_unit_state_snapshot(&s, t10);
    assert_non_null(snap);
    assert_int_equal(lf_unit_state_restore(&r, snap), 0);
    json_decref(snap);
    assert_int_equal(r.seq, 5);
    assert_int_equal(r.nlockers, 2);
    assert_int_equal(r.nrentals, 1);
    assert_string_equal(r.rentals[0].code_hash, "abc");
    assert_true(r.rentals[0].offline);
    assert_true(lf_unit_state_locker(&r, "A01")->door_open);
    assert_true(lf_unit_state_locker(&r, "A01")->allot);
    assert_int_equal(r.config_version, 3);
    assert_true(lf_unit_state_locker_busy(&r, "A02", t10, t12, NULL));
    /* a finished reservation falls out of a later snapshot */
    snap = lf_unit_state_snapshot(&s, t12 + 2 * 86400000LL);
    assert_int_equal(json_array_size(json_object_get(snap, "reservations")), 0);
    json_decref(snap);
    apply(&s, 6, "RentalEnded", "{\"rental_id\":\"" R1 "\",\"locker\":\"A01\"}");
    assert_int_equal(s.nrentals, 0);
    /* a damaged snapshot is refused */
    json_t *junk = json_loads("{\"v\":1,\"lockers\":[{\"id\":\"A01\",\"size\":\"Q\"}]}", 0, NULL);
    assert_int_equal(lf_unit_state_restore(&r, junk), LF_ECORRUPT);
    json_decref(junk);
    lf_unit_state_free(&s);
    lf_unit_state_free(&r);
}

static lf_unit *open_unit(lf_unit_db *db)
{
    static const lf_unit_locker lk[] = {{"A01", 'S'}, {"A02", 'S'}, {"B01", 'M'}};
    static const char *const allot[] = {"A02"};
    lf_unit_config c = {.name = "unit-t",
                        .db = db,
                        .uplink = LF_UNIT_PULL,
                        .lockers = lk,
                        .nlockers = 3,
                        .allotment = allot,
                        .nallotment = 1};
    lf_unit *u = NULL;
    assert_int_equal(lf_unit_open(&c, &u), 0);
    return u;
}

static void test_agent_restart_and_prune(void **state)
{
    (void)state;
    lf_unit_db *db;
    assert_int_equal(lf_unit_db_open(dbpath, false, 0, &db), 0);
    lf_unit *u = open_unit(db);
    lf_unit_status st;
    lf_unit_get_status(u, &st);
    assert_int_equal(st.seq_head, 1); /* UnitProvisioned */
    assert_false(st.connected);

    /* offline with an allotment: only A02 may be rented */
    lf_unit_rental r1, r2;
    assert_int_equal(lf_unit_rent(u, 'S', 60, true, &r1), 0);
    assert_string_equal(r1.locker, "A02");
    assert_true(r1.offline);
    assert_int_equal(lf_unit_rent(u, 'S', 60, true, &r2), LF_EUNAVAILABLE);
    assert_int_equal(lf_unit_rent(u, 'S', 60, false, &r2), LF_EUNAVAILABLE);
    assert_int_equal(lf_unit_rent(u, 'X', 60, true, &r2), LF_EINVAL);

    int64_t applied;
    json_t *cfg = json_pack("{s:[s,s]}", "allotment", "A01", "A02");
    assert_int_equal(lf_unit_apply_config(u, 5, cfg, &applied), 0);
    assert_int_equal(applied, 5);
    assert_int_equal(lf_unit_apply_config(u, 4, cfg, &applied), 0);
    assert_int_equal(applied, 5);
    json_decref(cfg);
    lf_unit_get_status(u, &st);
    int64_t head = st.seq_head;
    assert_int_equal(lf_unit_rent(u, 'S', 60, false, &r2), LF_EDENIED); /* payment failed */
    lf_unit_get_status(u, &st);
    assert_int_equal(st.seq_head, head + 2); /* PaymentStarted + PaymentFailed */

    lf_unit_close(u);
    u = open_unit(db); /* same provisioning: no new event */
    lf_unit_get_status(u, &st);
    assert_int_equal(st.seq_head, head + 2);
    assert_int_equal(st.config_version, 5);
    assert_int_equal(st.nrentals, 1);

    /* many rent/pickup cycles, then the hub acknowledges part of them */
    for (int i = 0; i < 60; i++) {
        lf_unit_rental r;
        lf_unit_pickup_result p;
        assert_int_equal(lf_unit_rent(u, 'S', 30, true, &r), 0);
        assert_int_equal(lf_unit_pickup(u, r.code, &p), 0);
        assert_string_equal(p.locker, r.locker);
        assert_int_equal(lf_unit_door(u, r.locker, false), 0);
    }
    lf_unit_get_status(u, &st);
    head = st.seq_head;
    assert_true(head > 300);
    lf_unit_ack_pulled(u, head - 10);
    lf_unit_uplink_step(u, lf_mono_ms()); /* no hub: prunes only */
    lf_unit_get_status(u, &st);
    assert_int_equal(st.acked_seq, head - 10);
    assert_int_equal(st.pruned_seq, head - 10);
    int64_t n;
    assert_int_equal(lf_unit_store_count(db, "unit-t", &n), 0);
    assert_int_equal(n, 10); /* the unacknowledged ones stay */
    lf_unit_close(u);

    /* restart after pruning: snapshot + the 10 events */
    u = open_unit(db);
    lf_unit_get_status(u, &st);
    assert_int_equal(st.seq_head, head);
    assert_int_equal(st.nrentals, 1);
    assert_int_equal(st.config_version, 5);
    lf_unit_pickup_result p;
    assert_int_equal(lf_unit_pickup(u, r1.code, &p), 0); /* the first rental's code */
    assert_string_equal(p.locker, "A02");
    assert_int_equal(lf_unit_pickup(u, "12345678", &p), LF_EDENIED);
    lf_unit_close(u);
    lf_unit_db_close(db);
}

int main(void)
{
    if (lf_init() != 0) return 1;
    lf_log_set_level(LF_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_store_append_read_prune, setup, teardown),
        cmocka_unit_test(test_fold_and_snapshot),
        cmocka_unit_test_setup_teardown(test_agent_restart_and_prune, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
