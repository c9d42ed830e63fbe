/*
 * leases.c — the lease part of the store contract (lf_store_lease*), run
 * against every backend like conformance.c:
 *   LF_TEST_STORE_URL=<url>  a server store (scripts/with-server.sh sets it)
 *   otherwise                a fresh SQLite file under a temp dir
 * Server stores are shared and never emptied: every lease name carries a
 * random per-run prefix.
 */
#define _GNU_SOURCE
#include "../../src/store/store.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static char g_url[1024];
static char g_prefix[32];
static char g_dir[256];

static lf_store *open_store(void)
{
    lf_store *s = NULL;
    char err[512] = "";
    int rc = lf_store_open(g_url, &s, err, sizeof err);
    if (rc) fprintf(stderr, "open %s: %s\n", g_url, err);
    assert_int_equal(rc, 0);
    return s;
}

/* name = "<prefix>.<what>" */
static void lname(char *out, size_t len, const char *what)
{
    snprintf(out, len, "%s.%s", g_prefix, what);
}

static void test_acquire_renew_conflict(void **state)
{
    (void)state;
    lf_store *s = open_store();
    char n[80];
    lname(n, sizeof n, "a");
    lf_lease l;
    assert_int_equal(lf_store_lease(s, n, "node-A", 5000, &l), 0);
    assert_string_equal(l.owner, "node-A");
    assert_string_equal(l.name, n);
    assert_true(l.left_ms > 4000 && l.left_ms <= 5000);
    /* Another owner is refused and told who holds it. */
    memset(&l, 0, sizeof l);
    assert_int_equal(lf_store_lease(s, n, "node-B", 5000, &l), LF_ECONFLICT);
    assert_string_equal(l.owner, "node-A");
    assert_true(l.left_ms > 0);
    /* Renewing our own lease succeeds and extends it. */
    assert_int_equal(lf_store_lease(s, n, "node-A", 60000, &l), 0);
    assert_true(l.left_ms > 50000);
    assert_int_equal(lf_store_lease(s, n, "node-B", 5000, NULL), LF_ECONFLICT);
    lf_store_close(s);
}

static void test_expiry(void **state)
{
    (void)state;
    lf_store *s = open_store();
    char n[80];
    lname(n, sizeof n, "exp");
    lf_lease l;
    assert_int_equal(lf_store_lease(s, n, "node-A", 300, &l), 0);
    assert_int_equal(lf_store_lease(s, n, "node-B", 300, &l), LF_ECONFLICT);
    usleep(500 * 1000);
    /* Expired: the other owner takes it over. */
    assert_int_equal(lf_store_lease(s, n, "node-B", 5000, &l), 0);
    assert_string_equal(l.owner, "node-B");
    assert_int_equal(lf_store_lease(s, n, "node-A", 300, &l), LF_ECONFLICT);
    assert_string_equal(l.owner, "node-B");
    lf_store_close(s);
}

static void test_release(void **state)
{
    (void)state;
    lf_store *s = open_store();
    char n[80];
    lname(n, sizeof n, "rel");
    assert_int_equal(lf_store_lease(s, n, "node-A", 60000, NULL), 0);
    /* Releasing someone else's lease does nothing. */
    assert_int_equal(lf_store_lease_release(s, n, "node-B"), 0);
    assert_int_equal(lf_store_lease(s, n, "node-B", 60000, NULL), LF_ECONFLICT);
    assert_int_equal(lf_store_lease_release(s, n, "node-A"), 0);
    lf_lease l;
    assert_int_equal(lf_store_lease(s, n, "node-B", 60000, &l), 0);
    assert_string_equal(l.owner, "node-B");
    /* Releasing a lease nobody ever took is fine too. */
    lname(n, sizeof n, "never");
    assert_int_equal(lf_store_lease_release(s, n, "node-A"), 0);
    lf_store_close(s);
}

static void test_list(void **state)
{
    (void)state;
    lf_store *s = open_store();
    char p[80], n[96];
    lname(p, sizeof p, "list.");
    const char *names[] = {"c", "a", "b", "dead"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(n, sizeof n, "%s%s", p, names[i]);
        assert_int_equal(
            lf_store_lease(s, n, i == 1 ? "node-B" : "node-A", i == 3 ? 200 : 60000, NULL), 0);
    }
    /* Outside the prefix. */
    lname(n, sizeof n, "listx");
    assert_int_equal(lf_store_lease(s, n, "node-A", 60000, NULL), 0);
    usleep(400 * 1000);
    lf_lease out[16];
    size_t k = 99;
    assert_int_equal(lf_store_lease_list(s, p, out, 16, &k), 0);
    assert_int_equal(k, 3); /* "dead" expired */
    snprintf(n, sizeof n, "%sa", p);
    assert_string_equal(out[0].name, n);
    assert_string_equal(out[0].owner, "node-B");
    snprintf(n, sizeof n, "%sc", p);
    assert_string_equal(out[2].name, n);
    assert_true(out[2].left_ms > 50000);
    /* max bounds the answer. */
    assert_int_equal(lf_store_lease_list(s, p, out, 2, &k), 0);
    assert_int_equal(k, 2);
    /* A released lease leaves the list. */
    snprintf(n, sizeof n, "%sb", p);
    assert_int_equal(lf_store_lease_release(s, n, "node-A"), 0);
    assert_int_equal(lf_store_lease_list(s, p, out, 16, &k), 0);
    assert_int_equal(k, 2);
    lf_store_close(s);
}

static void test_invalid(void **state)
{
    (void)state;
    lf_store *s = open_store();
    lf_lease l;
    assert_int_equal(lf_store_lease(s, "", "a", 1000, &l), LF_EINVAL);
    assert_int_equal(lf_store_lease(s, "x y", "a", 1000, &l), LF_EINVAL);
    assert_int_equal(lf_store_lease(s, "x", "a/b", 1000, &l), LF_EINVAL);
    assert_int_equal(lf_store_lease(s, "x", "a", 0, &l), LF_EINVAL);
    char big[LF_LEASE_NAME_MAX + 2];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(lf_store_lease(s, big, "a", 1000, &l), LF_EINVAL);
    size_t k;
    assert_int_equal(lf_store_lease_list(s, "a b", &l, 1, &k), LF_EINVAL);
    lf_store_close(s);
}

/* ---- race: many contenders on separate handles, exactly one wins ------ */
#define RACERS 6
#define ROUNDS 5

typedef struct {
    lf_store *s;
    char name[80];
    char owner[16];
    pthread_barrier_t *bar;
    int rc;
} racer;

static void *race_main(void *arg)
{
    racer *r = arg;
    pthread_barrier_wait(r->bar);
    r->rc = lf_store_lease(r->s, r->name, r->owner, 60000, NULL);
    return NULL;
}

static void test_race(void **state)
{
    (void)state;
    lf_store *h[3] = {open_store(), open_store(), open_store()};
    for (int round = 0; round < ROUNDS; round++) {
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, RACERS);
        racer r[RACERS];
        pthread_t t[RACERS];
        char what[32];
        snprintf(what, sizeof what, "race%d", round);
        for (int i = 0; i < RACERS; i++) {
            r[i].s = h[i % 3];
            lname(r[i].name, sizeof r[i].name, what);
            snprintf(r[i].owner, sizeof r[i].owner, "node-%d", i);
            r[i].bar = &bar;
            r[i].rc = -100;
            assert_int_equal(pthread_create(&t[i], NULL, race_main, &r[i]), 0);
        }
        int won = -1, wins = 0;
        for (int i = 0; i < RACERS; i++) {
            pthread_join(t[i], NULL);
            if (r[i].rc == 0)
                won = i, wins++;
            else
                assert_int_equal(r[i].rc, LF_ECONFLICT);
        }
        pthread_barrier_destroy(&bar);
        assert_int_equal(wins, 1);
        lf_lease l;
        assert_int_equal(lf_store_lease(h[1], r[0].name, "nobody", 1000, &l), LF_ECONFLICT);
        assert_string_equal(l.owner, r[won].owner);
    }
    for (int i = 0; i < 3; i++)
        lf_store_close(h[i]);
}

int main(void)
{
    if (lf_init()) return 1;
    const char *url = getenv("LF_TEST_STORE_URL");
    if (url && *url) {
        snprintf(g_url, sizeof g_url, "%s", url);
    } else {
        snprintf(g_dir, sizeof g_dir, "%s/lf-leases.XXXXXX",
                 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (!mkdtemp(g_dir)) {
            perror("mkdtemp");
            return 1;
        }
        snprintf(g_url, sizeof g_url, "sqlite:%s/events.db", g_dir);
    }
    char uuid[LF_UUID_LEN];
    lf_uuid_v4(uuid);
    snprintf(g_prefix, sizeof g_prefix, "t%.8s", uuid);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_acquire_renew_conflict),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_release),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_race),
    };
    int failed = cmocka_run_group_tests_name("store leases", tests, NULL, NULL);
    if (g_dir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    }
    return failed ? 1 : 0;
}
