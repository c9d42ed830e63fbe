/*
 * test_module.c — src/core/module.c (lf_module_sym) and the store front's
 * use of it: a module found in $LF_MODULE_DIR, a missing module, a file
 * that is not a shared object, a missing symbol; a server store URL whose
 * backend module is missing gives LF_EUNSUPPORTED and names the module.
 * LF_TEST_FIXTURE_DIR (CMake) holds lf-test-fixture.so.
 */
#define _GNU_SOURCE
#include "core/lf.h"
#include "core/module.h"
#include "store/store.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_found_in_env_dir(void **state)
{
    (void)state;
    setenv("LF_MODULE_DIR", LF_TEST_FIXTURE_DIR, 1);
    int (*fn)(void) = (int (*)(void))lf_module_sym("lf-test-fixture", "lf_fixture_answer");
    assert_non_null(fn);
    assert_int_equal(fn(), 42);
    /* a second lookup reuses the loaded module */
    assert_ptr_equal(lf_module_sym("lf-test-fixture", "lf_fixture_answer"), (void *)fn);
    unsetenv("LF_MODULE_DIR");
}

static void test_missing_symbol(void **state)
{
    (void)state;
    setenv("LF_MODULE_DIR", LF_TEST_FIXTURE_DIR, 1);
    assert_null(lf_module_sym("lf-test-fixture", "lf_no_such_symbol"));
    assert_non_null(strstr(lf_err_get(), "lf_no_such_symbol"));
    unsetenv("LF_MODULE_DIR");
}

static void test_missing_module(void **state)
{
    (void)state;
    setenv("LF_MODULE_DIR", "/nonexistent/lf-modules", 1);
    assert_null(lf_module_sym("lockerfleet-store-nothing", "x"));
    const char *e = lf_err_get();
    assert_non_null(strstr(e, "lockerfleet-store-nothing.so"));
    assert_non_null(strstr(e, "/nonexistent/lf-modules"));
    unsetenv("LF_MODULE_DIR");
    /* without the override: the binary's directory is searched */
    assert_null(lf_module_sym("lockerfleet-store-nothing", "x"));
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    assert_true(n > 0);
    exe[n] = '\0';
    *strrchr(exe, '/') = '\0';
    assert_non_null(strstr(lf_err_get(), exe));
}

static void test_not_a_shared_object(void **state)
{
    (void)state;
    char dir[] = "/tmp/lf-test-module.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/lf-bogus.so", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("not an ELF file\n", f);
    fclose(f);
    setenv("LF_MODULE_DIR", dir, 1);
    assert_null(lf_module_sym("lf-bogus", "x"));
    assert_non_null(strstr(lf_err_get(), "cannot load module lf-bogus.so"));
    assert_null(strstr(lf_err_get(), "not found")); /* the loader's reason instead */
    unsetenv("LF_MODULE_DIR");
    unlink(path);
    rmdir(dir);
}

/* This program links no server backend: lf_store_open must go to the
 * module, and say which one is missing. */
static void test_store_backend_module_missing(void **state)
{
    (void)state;
    setenv("LF_MODULE_DIR", "/nonexistent/lf-modules", 1);
    static const struct {
        const char *url, *module;
    } cases[] = {
        {"postgres://127.0.0.1:1/x", "lockerfleet-store-postgres.so"},
        {"postgresql://127.0.0.1:1/x", "lockerfleet-store-postgres.so"},
        {"nats://127.0.0.1:1", "lockerfleet-store-nats.so"},
        {"redis://127.0.0.1:1", "lockerfleet-store-redis.so"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lf_store *s = NULL;
        char err[512] = "";
        int rc = lf_store_open(cases[i].url, &s, err, sizeof err);
        assert_null(s);
        assert_int_equal(rc, LF_EUNSUPPORTED);
        /* built with the client library: the module is named; built
         * without: the build is said to lack the backend */
        assert_true(strstr(err, cases[i].module) || strstr(err, "this build has no"));
    }
    lf_store *s = NULL;
    char err[512] = "";
    assert_int_equal(lf_store_open("mysql://x", &s, err, sizeof err), LF_EINVAL);
    assert_non_null(strstr(err, "unknown store URL"));
    unsetenv("LF_MODULE_DIR");
}

int main(void)
{
    if (lf_init()) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_found_in_env_dir),
        cmocka_unit_test(test_missing_symbol),
        cmocka_unit_test(test_missing_module),
        cmocka_unit_test(test_not_a_shared_object),
        cmocka_unit_test(test_store_backend_module_missing),
    };
    return cmocka_run_group_tests_name("module", tests, NULL, NULL);
}
