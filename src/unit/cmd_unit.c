/*
 * cmd_unit.c — 'lockerfleet unit': one unit's agent. Opens the unit's
 * local store (DATA/unit.db), serves its HTTP API on --listen and runs the
 * uplink loop (heartbeats, pushes, pruning) until SIGTERM/SIGINT.
 */
#include "cli/cli.h"
#include "core/notify.h"
#include "core/lf.h"
#include "http/client.h"
#include "http/http.h"
#include "unit/unit.h"

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static volatile sig_atomic_t unit_stop, unit_reopen_log;
static void on_signal(int sig)
{
    if (sig == SIGHUP)
        unit_reopen_log = 1;
    else
        unit_stop = 1;
}

static void serve(lf_http_req *req, lf_http_resp *resp, void *app)
{
    lf_unit_handle(app, req, resp, 0);
}

static int split_list(char *s, const char **out, int max)
{
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(s, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (n >= max) return -1;
        out[n++] = t;
    }
    return n;
}

/* Checks a value of any source (flag, LOCKERFLEET_* env, config file) as
 * it is read, so the message names where it came from (cli.h). */
static const char *unit_check(const lf_opt *o, const void *value)
{
    if (o->kind == LF_OPT_DOUBLE) {
        double d = *(const double *)value;
        if (strcmp(o->name, "heartbeat-interval") == 0)
            return !(d >= 0) || d > 1e7 ? "must be seconds >= 0 (0 = none)" : NULL;
        return !(d > 0) || d > 1e7 ? "must be a positive number of seconds" : NULL;
    }
    if (o->kind != LF_OPT_STR && o->kind != LF_OPT_SECRET) return NULL;
    const char *s = *(const char *const *)value;
    enum lf_log_level lvl;
    if (strcmp(o->name, "name") == 0) return lf_name_valid(s) ? NULL : "must match [a-z0-9-]{1,64}";
    if (strcmp(o->name, "listen") == 0) {
        char host[256];
        int port;
        return lf_http_parse_listen(s, host, &port) ? "must be HOST:PORT" : NULL;
    }
    if (strcmp(o->name, "uplink") == 0)
        return strcmp(s, "push") && strcmp(s, "pull") ? "must be push or pull" : NULL;
    if (strcmp(o->name, "log-level") == 0)
        return lf_log_parse_level(s, &lvl) ? "must be debug, info, warn or error" : NULL;
    if (strcmp(o->name, "log-format") == 0)
        return strcmp(s, "text") && strcmp(s, "json") ? "must be text or json" : NULL;
    if (strcmp(o->name, "booking-key") == 0) {
        unsigned char key[32];
        size_t bin_len = 0;
        int bad = strlen(s) != 64 ||
                  sodium_hex2bin(key, sizeof key, s, 64, NULL, &bin_len, NULL) != 0 ||
                  bin_len != 32;
        sodium_memzero(key, sizeof key);
        return bad ? "must be 64 hex characters" : NULL;
    }
    if (strcmp(o->name, "lockers") == 0) {
        lf_unit_locker l[LF_UNIT_LOCKERS_MAX];
        int n;
        return lf_unit_parse_lockers(s, l, LF_UNIT_LOCKERS_MAX, &n)
                   ? "must be ID:SIZE,... (e.g. A01:S,A02:M,A03:L)"
                   : NULL;
    }
    return NULL;
}

int lf_cmd_unit(int argc, char **argv)
{
    const char *name = NULL, *hub = NULL, *token = NULL, *hub_token = NULL, *key_hex = NULL;
    const char *listen = "127.0.0.1:8081", *data = "./unit-data", *uplink = "push";
    const char *lockers_s = "A01:S,A02:S,A03:S,A04:M,A05:M,A06:L", *allot_s = NULL;
    const char *ca_file = NULL, *tls_cert = NULL, *tls_key = NULL, *log_level = "info";
    const char *log_format = "text";
    const char *log_file = NULL;
    double push_s = 5, hb_s = 0, backoff_max_s = 60;
    lf_opt opts[] = {
        {"name", LF_OPT_STR, &name, "unit name ([a-z0-9-]{1,64}, required)"},
        {"hub", LF_OPT_STR, &hub, "hub base URL (e.g. http://127.0.0.1:8080); none: no uplink"},
        {"token", LF_OPT_SECRET, &token,
         "the unit's token for calls to the hub (or env LF_UNIT_TOKEN)"},
        {"hub-token", LF_OPT_SECRET, &hub_token,
         "credential the hub presents to this unit (or env LF_HUB_TOKEN); none: not checked"},
        {"booking-key", LF_OPT_SECRET, &key_hex, "per-unit booking key, 64 hex chars"},
        {"listen", LF_OPT_STR, &listen, "HOST:PORT of the unit API (default 127.0.0.1:8081)"},
        {"data", LF_OPT_STR, &data, "data directory (default ./unit-data)"},
        {"uplink", LF_OPT_STR, &uplink, "push|pull (default push)"},
        {"push-interval", LF_OPT_DOUBLE, &push_s, "seconds between pushes (default 5)"},
        {"heartbeat-interval", LF_OPT_DOUBLE, &hb_s, "seconds between heartbeats (0 = none)"},
        {"backoff-max", LF_OPT_DOUBLE, &backoff_max_s, "backoff cap in seconds (default 60)"},
        {"lockers", LF_OPT_STR, &lockers_s, "lockers, e.g. A01:S,A02:M,A03:L"},
        {"allotment", LF_OPT_STR, &allot_s, "lockers it may rent while offline, e.g. A01,A02"},
        {"ca-file", LF_OPT_STR, &ca_file, "CA bundle to verify an https hub"},
        {"tls-cert", LF_OPT_STR, &tls_cert, "PEM certificate: serve HTTPS"},
        {"tls-key", LF_OPT_STR, &tls_key, "PEM key for --tls-cert"},
        {"log-level", LF_OPT_STR, &log_level, "debug|info|warn|error (default info)"},
        {"log-format", LF_OPT_STR, &log_format, "text|json (default text)"},
        {"log-file", LF_OPT_STR, &log_file,
         "append logs to this file instead of stderr; SIGHUP reopens it (logrotate)"},
        {0},
    };
    const lf_config_spec spec = {"unit",
                                 "lockerfleet unit --name N [--hub URL --token T] "
                                 "[--listen HOST:PORT] [--data DIR] [--config FILE] [options]",
                                 opts, unit_check};
    lf_config *conf = NULL; /* owns the strings of the file and env values */
    int rc = lf_config_load(&spec, argc, argv, &conf);
    if (rc) return rc == 1 ? 0 : 2;
    int status = 1;
    lf_unit *u = NULL;
    lf_http_server *srv = NULL;
    char *dbpath = NULL, *allot_copy = NULL;
    enum lf_log_level lvl;
    unsigned char key[32];
    bool has_key = false;
    lf_unit_locker lockers[LF_UNIT_LOCKERS_MAX];
    const char *allot[LF_UNIT_LOCKERS_MAX];
    int nlockers = 0, nallot = 0;

    /* Values were checked by unit_check as they were read. */
    if (lf_log_parse_level(log_level, &lvl) || lf_log_set_format(log_format)) {
        status = 2;
        goto out;
    }
    lf_log_set_level(lvl);
    if (log_file && lf_log_open_file(log_file)) {
        fprintf(stderr, "lockerfleet unit: %s\n", lf_err_get());
        status = 1;
        goto out;
    }
    if (!name) {
        fprintf(stderr, "lockerfleet unit: --name (or name in the config file, or "
                        "LOCKERFLEET_NAME) is required\n");
        status = 2;
        goto out;
    }
    if (!token) token = getenv("LF_UNIT_TOKEN");
    if (!hub_token) hub_token = getenv("LF_HUB_TOKEN");
    if (key_hex) {
        size_t bin_len = 0;
        if (strlen(key_hex) != 64 ||
            sodium_hex2bin(key, sizeof key, key_hex, 64, NULL, &bin_len, NULL) != 0 ||
            bin_len != 32) {
            fprintf(stderr, "lockerfleet unit: --booking-key must be 64 hex characters\n");
            status = 2;
            goto out;
        }
        has_key = true;
    }
    if (lf_unit_parse_lockers(lockers_s, lockers, LF_UNIT_LOCKERS_MAX, &nlockers)) {
        fprintf(stderr, "lockerfleet unit: --lockers: %s\n", lf_err_get());
        status = 2;
        goto out;
    }
    if (allot_s) {
        allot_copy = lf_strdup(allot_s);
        nallot = split_list(allot_copy, allot, LF_UNIT_LOCKERS_MAX);
        for (int i = 0; i < nallot; i++) {
            bool found = false;
            for (int k = 0; k < nlockers; k++)
                found |= strcmp(lockers[k].id, allot[i]) == 0;
            if (!found) {
                fprintf(stderr, "lockerfleet unit: --allotment: '%s' is not in --lockers\n",
                        allot[i]);
                status = 2;
                goto out;
            }
        }
        if (nallot < 0) {
            fprintf(stderr, "lockerfleet unit: --allotment: too many lockers\n");
            status = 2;
            goto out;
        }
    }
    /* A unit agent has few threads (uplink, HTTP server) and little
     * allocation traffic: one malloc arena instead of one per thread that
     * allocates (each with its own partly used pages). Before any thread
     * starts. Measured with bench/unit_rss.sh. */
    mallopt(M_ARENA_MAX, 1);
    if (mkdir(data, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "lockerfleet unit: cannot create %s: %s\n", data, strerror(errno));
        goto out;
    }
    /* libcurl (a module, with GnuTLS & co.) only for an https:// hub: the
     * uplink speaks http:// itself (lf_http_call_lean), ~2.5 MiB less RSS */
    if (hub && strncasecmp(hub, "http://", 7) != 0) lf_http_client_global_init();
    dbpath = lf_asprintf("%s/unit.db", data);
    lf_unit_config cfg = {
        .name = name,
        .hub_url = hub,
        .token = token,
        .hub_token = hub_token,
        .booking_key = has_key ? key : NULL,
        .db_path = dbpath,
        .durable = true,
        .uplink = strcmp(uplink, "pull") == 0 ? LF_UNIT_PULL : LF_UNIT_PUSH,
        .push_interval_ms = (int64_t)(push_s * 1000),
        .heartbeat_interval_ms = (int64_t)(hb_s * 1000),
        .backoff_max_ms = (int64_t)(backoff_max_s * 1000),
        .ca_file = ca_file,
        .lockers = lockers,
        .nlockers = nlockers,
        .allotment = allot,
        .nallotment = nallot,
    };
    if ((rc = lf_unit_open(&cfg, &u))) {
        fprintf(stderr, "lockerfleet unit: %s: %s\n", lf_strerror(rc), lf_err_get());
        goto out;
    }
    sodium_memzero(key, sizeof key);
    lf_http_config hc = {.listen = listen,
                         .body_max = 256 * 1024,
                         .conn_limit = 256,
                         .tls_cert = tls_cert,
                         .tls_key = tls_key,
                         .log_component = "unit",
                         .quiet = lvl > LF_LOG_DEBUG};
    if (!(srv = lf_http_start(&hc, serve, u))) {
        fprintf(stderr, "lockerfleet unit: %s\n", lf_err_get());
        goto out;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGHUP, on_signal);
    signal(SIGPIPE, SIG_IGN);
    char host[256];
    int port;
    lf_http_parse_listen(listen, host, &port);
    printf("listening on %s://%s:%d\n", tls_cert ? "https" : "http", host, lf_http_port(srv));
    fflush(stdout);
    lf_notify_ready("serving"); /* store open, listener bound (systemd Type=notify) */
    LF_INFO("unit", "%s: uplink %s to %s", name, uplink, hub ? hub : "(none)");
    while (!unit_stop) {
        if (unit_reopen_log) { /* SIGHUP: logrotate moved the log file */
            unit_reopen_log = 0;
            lf_log_reopen();
        }
        int64_t now = lf_mono_ms();
        int64_t next = lf_unit_uplink_step(u, now);
        /* Sleep in short slices so a signal is noticed promptly. */
        while (!unit_stop && !unit_reopen_log && lf_mono_ms() < next) {
            int64_t left = next - lf_mono_ms();
            lf_sleep_ms(left < 100 ? (left > 0 ? left : 1) : 100);
        }
    }
    LF_INFO("unit", "%s: stopping", name);
    lf_notify_stopping();
    status = 0;
out:
    lf_http_stop(srv);
    lf_unit_close(u);
    free(dbpath);
    free(allot_copy);
    sodium_memzero(key, sizeof key);
    lf_config_free(conf);
    return status;
}
