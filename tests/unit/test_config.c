/*
 * test_config.c — lf_config_load (src/cli/config.c): precedence flag > env
 * > file > default, sources, --print-config masking, unknown keys and
 * sections and bad values reported with file and line (return 2), the
 * command's check callback, '_' for '-' in keys, LOCKERFLEET_CONFIG, and
 * lf_opts_parse unchanged for commands that do not opt in.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "cli/cli.h"
#include "core/lf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The options of a small daemon, reset before each test. */
static const char *listen_, *token, *name;
static int64_t digits;
static double ping;
static bool quiet;
static const lf_opt opts[] = {
    {"listen", LF_OPT_STR, &listen_, "HOST:PORT"},
    {"admin-token", LF_OPT_SECRET, &token, "token"},
    {"node-name", LF_OPT_STR, &name, "name"},
    {"shard-digits", LF_OPT_INT, &digits, "1..4"},
    {"ping-interval", LF_OPT_DOUBLE, &ping, "seconds"},
    {"quiet-http", LF_OPT_FLAG, &quiet, "flag"},
    {0},
};

static const char *check(const lf_opt *o, const void *value)
{
    if (strcmp(o->name, "shard-digits") == 0) {
        int64_t v = *(const int64_t *)value;
        return v < 1 || v > 4 ? "must be 1..4" : NULL;
    }
    if (strcmp(o->name, "admin-token") == 0)
        return strlen(*(const char *const *)value) < 16 ? "too short" : NULL;
    return NULL;
}

static const lf_config_spec spec = {"hub", "test [options]", opts, check};
static char dir[64], ini[128], errpath[128];

static void reset(void)
{
    listen_ = "127.0.0.1:8080";
    token = NULL;
    name = "hub-1";
    digits = 1;
    ping = 30;
    quiet = false;
    unsetenv("LOCKERFLEET_LISTEN");
    unsetenv("LOCKERFLEET_ADMIN_TOKEN");
    unsetenv("LOCKERFLEET_PING_INTERVAL");
    unsetenv("LOCKERFLEET_SHARD_DIGITS");
    unsetenv("LOCKERFLEET_CONFIG");
}

static int setup(void **state)
{
    (void)state;
    lf_init();
    snprintf(dir, sizeof dir, "/tmp/lf-test-config-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(ini, sizeof ini, "%s/hub.ini", dir);
    snprintf(errpath, sizeof errpath, "%s/stderr", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(ini);
    unlink(errpath);
    rmdir(dir);
    return 0;
}

static void write_ini(const char *text)
{
    FILE *f = fopen(ini, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Runs lf_config_load on a NULL-terminated argv with stderr captured into
 * errbuf. Returns its status; *out as lf_config_load left it. */
static int load(char *errbuf, size_t cap, lf_config **out, ...)
{
    char *argv[16] = {"hub"};
    int argc = 1;
    va_list ap;
    va_start(ap, out);
    for (char *a; (a = va_arg(ap, char *));)
        argv[argc++] = a;
    va_end(ap);
    fflush(stderr);
    int saved = dup(2);
    FILE *ef = fopen(errpath, "w+");
    assert_non_null(ef);
    dup2(fileno(ef), 2);
    int rc = lf_config_load(&spec, argc, argv, out);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(ef);
    size_t n = fread(errbuf, 1, cap - 1, ef);
    errbuf[n] = '\0';
    fclose(ef);
    return rc;
}

static void defaults_without_anything(void **state)
{
    (void)state;
    reset();
    char err[2048];
    lf_config *c;
    assert_int_equal(load(err, sizeof err, &c, NULL), 0);
    assert_non_null(c);
    assert_string_equal(listen_, "127.0.0.1:8080");
    assert_null(token);
    const char *where;
    assert_int_equal(lf_config_source(c, "listen", &where), LF_CONFIG_DEFAULT);
    assert_string_equal(where, "default");
    lf_config_free(c);
}

static void precedence_flag_env_file_default(void **state)
{
    (void)state;
    reset();
    write_ini("; test\n"
              "[hub]\n"
              "listen = 127.0.0.1:1111\n"
              "ping-interval = 11\n"
              "shard_digits = 3\n" /* '_' works as '-' */
              "quiet-http = yes\n");
    setenv("LOCKERFLEET_LISTEN", "127.0.0.1:2222", 1);
    setenv("LOCKERFLEET_PING_INTERVAL", "22", 1);
    char err[2048];
    lf_config *c;
    assert_int_equal(load(err, sizeof err, &c, "--config", ini, "--listen", "127.0.0.1:3333", NULL),
                     0);
    assert_string_equal(err, "");
    assert_string_equal(listen_, "127.0.0.1:3333"); /* flag beats env and file */
    assert_true(ping == 22);                        /* env beats file */
    assert_int_equal(digits, 3);                    /* file beats default */
    assert_true(quiet);
    assert_string_equal(name, "hub-1"); /* default */
    const char *where;
    char want[256];
    assert_int_equal(lf_config_source(c, "listen", &where), LF_CONFIG_FLAG);
    assert_string_equal(where, "--listen");
    assert_int_equal(lf_config_source(c, "ping-interval", &where), LF_CONFIG_ENV);
    assert_string_equal(where, "LOCKERFLEET_PING_INTERVAL");
    assert_int_equal(lf_config_source(c, "shard-digits", &where), LF_CONFIG_FILE);
    snprintf(want, sizeof want, "%s:5", ini);
    assert_string_equal(where, want);
    assert_int_equal(lf_config_source(c, "node-name", &where), LF_CONFIG_DEFAULT);
    lf_config_free(c);
    reset();
}

static void file_strings_outlive_parsing(void **state)
{
    (void)state;
    reset();
    write_ini("[hub]\nnode-name = from-the-file\n");
    setenv("LOCKERFLEET_CONFIG", ini, 1); /* the file named by the environment */
    char err[2048];
    lf_config *c;
    assert_int_equal(load(err, sizeof err, &c, NULL), 0);
    assert_string_equal(name, "from-the-file");
    lf_config_free(c);
    reset();
}

static void print_config_masks_secrets(void **state)
{
    (void)state;
    reset();
    write_ini("[hub]\nadmin-token = file-secret-0123456789\n");
    setenv("LOCKERFLEET_ADMIN_TOKEN", "env-secret-0123456789", 1);
    char err[2048];
    lf_config *c;
    assert_int_equal(load(err, sizeof err, &c, "--config", ini, NULL), 0);
    assert_string_equal(token, "env-secret-0123456789");
    FILE *f = tmpfile();
    lf_config_print(c, f);
    rewind(f);
    char out[8192];
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    fclose(f);
    assert_null(strstr(out, "secret-0123456789"));
    assert_non_null(strstr(out, "********"));
    assert_non_null(strstr(out, "env LOCKERFLEET_ADMIN_TOKEN, masked"));
    assert_non_null(strstr(out, "[hub]"));
    assert_non_null(strstr(out, "listen                 = 127.0.0.1:8080"));
    lf_config_free(c);

    /* --print-config itself: prints and returns 1, no config handed out. */
    assert_int_equal(load(err, sizeof err, &c, "--config", ini, "--print-config", NULL), 1);
    assert_null(c);
    reset();
}

static void unknown_key_names_file_and_line(void **state)
{
    (void)state;
    reset();
    write_ini("[hub]\nlisten = 127.0.0.1:1\n\n; comment\nlisen = typo\n");
    char err[2048], want[256];
    lf_config *c;
    assert_int_equal(load(err, sizeof err, &c, "--config", ini, NULL), 2);
    assert_null(c);
    snprintf(want, sizeof want, "%s:5: unknown key 'lisen'", ini);
    assert_non_null(strstr(err, want));
    reset();
}

static void unknown_section_and_key_outside(void **state)
{
    (void)state;
    reset();
    char err[2048], want[256];
    lf_config *c;
    write_ini("[unit]\nname = x\n");
    assert_int_equal(load(err, sizeof err, &c, "--config", ini, NULL), 2);
    snprintf(want, sizeof want, "%s:2: unknown section [unit]", ini);
    assert_non_null(strstr(err, want));
    write_ini("listen = 127.0.0.1:1\n[hub]\n");
    assert_int_equal(load(err, sizeof err, &c, "--config", ini, NULL), 2);
    snprintf(want, sizeof want, "%s:1: key 'listen' outside a section", ini);
    assert_non_null(strstr(err, want));
    reset();
}

static void bad_values_name_their_source(void **state)
{
    (void)state;
    reset();
    char err[2048], want[256];
    lf_config *c;
    /* by type, and by the command's check; every bad line is reported */
    write_ini("[hub]\nping-interval = soon\nshard-digits = 9\nquiet-http = maybe\n");
    assert_int_equal(load(err, sizeof err, &c, "--config", ini, NULL), 2);
    snprintf(want, sizeof want, "%s:2: ping-interval wants a number, not 'soon'", ini);
    assert_non_null(strstr(err, want));
    snprintf(want, sizeof want, "%s:3: shard-digits '9': must be 1..4", ini);
    assert_non_null(strstr(err, want));
    snprintf(want, sizeof want, "%s:4: quiet-http wants true or false", ini);
    assert_non_null(strstr(err, want));
    /* still an error when a flag overrides the bad file value */
    assert_int_equal(load(err, sizeof err, &c, "--config", ini, "--shard-digits", "2",
                          "--ping-interval", "1", "--quiet-http", NULL),
                     2);
    /* syntax */
    write_ini("[hub]\nthis line has no equals sign\n");
    assert_int_equal(load(err, sizeof err, &c, "--config", ini, NULL), 2);
    snprintf(want, sizeof want, "%s:2: syntax error", ini);
    assert_non_null(strstr(err, want));
    /* environment */
    setenv("LOCKERFLEET_SHARD_DIGITS", "12", 1);
    assert_int_equal(load(err, sizeof err, &c, NULL), 2);
    assert_non_null(strstr(err, "LOCKERFLEET_SHARD_DIGITS: shard-digits '12': must be 1..4"));
    unsetenv("LOCKERFLEET_SHARD_DIGITS");
    /* flag */
    assert_int_equal(load(err, sizeof err, &c, "--shard-digits", "0", NULL), 2);
    assert_non_null(strstr(err, "--shard-digits: must be 1..4"));
    /* a secret's bad value is not echoed */
    write_ini("[hub]\nadmin-token = shortsecret\n");
    assert_int_equal(load(err, sizeof err, &c, "--config", ini, NULL), 2);
    snprintf(want, sizeof want, "%s:2: admin-token '(secret)': too short", ini);
    assert_non_null(strstr(err, want));
    assert_null(strstr(err, "shortsecret"));
    /* missing file */
    assert_int_equal(load(err, sizeof err, &c, "--config", "/nonexistent/x.ini", NULL), 2);
    assert_non_null(strstr(err, "cannot read config file /nonexistent/x.ini"));
    reset();
}

static void overlong_line_is_an_error(void **state)
{
    (void)state;
    reset();
    char text[1024], err[2048], want[256];
    snprintf(text, sizeof text, "[hub]\nnode-name = %0400d\nlisten = 127.0.0.1:5\n", 7);
    write_ini(text);
    lf_config *c;
    assert_int_equal(load(err, sizeof err, &c, "--config", ini, NULL), 2);
    snprintf(want, sizeof want, "%s:2: line longer than", ini);
    assert_non_null(strstr(err, want));
    assert_null(strstr(err, ":3:")); /* later lines keep their numbers and parse */
    reset();
}

static void opts_parse_unchanged_for_others(void **state)
{
    (void)state;
    reset();
    char *argv[] = {"x", "--listen=a:1", "--shard-digits", "4", "--quiet-http", "pos"};
    char *pos[2];
    int npos = 0;
    assert_int_equal(lf_opts_parse("x", opts, 6, argv, pos, 2, &npos), 0);
    assert_string_equal(listen_, "a:1");
    assert_int_equal(digits, 4);
    assert_true(quiet);
    assert_int_equal(npos, 1);
    assert_string_equal(pos[0], "pos");
    /* no --config for commands that did not opt in */
    char *argv2[] = {"x", "--config", "f.ini"};
    assert_int_equal(lf_opts_parse("x", opts, 3, argv2, NULL, 0, NULL), 2);
    reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_without_anything),
        cmocka_unit_test(precedence_flag_env_file_default),
        cmocka_unit_test(file_strings_outlive_parsing),
        cmocka_unit_test(print_config_masks_secrets),
        cmocka_unit_test(unknown_key_names_file_and_line),
        cmocka_unit_test(unknown_section_and_key_outside),
        cmocka_unit_test(bad_values_name_their_source),
        cmocka_unit_test(overlong_line_is_an_error),
        cmocka_unit_test(opts_parse_unchanged_for_others),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
