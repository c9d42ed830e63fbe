/*
 * hub_main.c — 'lockerfleet hub': parses the flags into lf_hub_config,
 * prepares the data dir (admin token, hub secret), opens the store, starts
 * the modules (registry, projections, booking, fleet) and the HTTP server,
 * then waits for SIGTERM/SIGINT and stops everything in reverse order:
 * stop accepting, finish in-flight requests, stop workers, stop
 * projections, close the store.
 *
 * Also the small hub-wide helpers of hub.h that belong to no module:
 * lf_hub_append, lf_hub_wait_projection, lf_hub_booking_key.
 */
#include "cli/cli.h"
#include "core/notify.h"
#include "hub/cluster.h"
#include "hub/router.h"
#include "projection/projection.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* HTTP threads by default (--http-threads): see docs/ARCHITECTURE.md "The
 * hub"; 0 = one thread per connection. Pool mode is the default: writes
 * that append answer when durable without holding a thread, reads cost
 * less CPU, and thousands of connections (units pushing) do not each cost
 * a thread. */
#define HTTP_THREADS 2
#define HTTP_THREADS_S "2"

void lf_hub_appended(lf_hub *h, size_t n, const lf_append_result *res)
{
    if (!res->duplicate) {
        lf_metric_inc("lockerfleet_events_appended_total", NULL, (double)n);
        lf_metric_set("lockerfleet_log_position", NULL, (double)res->last_position);
    }
    lf_projections_published(h->proj, res->last_position);
}

int lf_hub_append(lf_hub *h, const char *stream, int64_t expected, const lf_event_in *evs, size_t n,
                  lf_append_result *res)
{
    lf_append_result tmp;
    if (!res) res = &tmp;
    int rc = lf_store_append(h->store, stream, expected, evs, n, res);
    if (rc == 0) {
        lf_hub_appended(h, n, res);
        char pos[24];
        snprintf(pos, sizeof pos, "%lld", (long long)res->last_position);
        lf_log_ctx_set("position", pos);
    }
    return rc;
}

int lf_hub_wait_projection(lf_ctx *c, const char *projection)
{
    int64_t pos;
    if (lf_http_query_i64(c->req, c->resp, "min_position", 0, INT64_MAX, 0, &pos)) return LF_EINVAL;
    if (pos == 0) return 0;
    int rc;
    if (lf_http_pooled(c->resp)) {
        /* pool mode: never block a polling thread; look, and if the
         * projection is behind, run the handler again in 2 ms (the 5 s
         * bound counts from the request's arrival) */
        rc = lf_projections_wait(c->hub->proj, projection, pos, 0);
        if (rc == LF_ETIMEDOUT && lf_mono_us() - c->req->start_us < 5000000 &&
            lf_http_defer(c->resp, 2))
            return LF_ETIMEDOUT; /* no answer yet: the handler returns */
    } else {
        rc = lf_projections_wait(c->hub->proj, projection, pos, 5000);
    }
    if (rc == LF_ETIMEDOUT) {
        lf_http_header_add(c->resp, "Retry-After", "1");
        lf_http_error(c->resp, 503, "projection_lagging",
                      "projection '%s' has not reached position %lld within 5 s", projection,
                      (long long)pos);
    } else if (rc) {
        lf_http_error(c->resp, 503, "projection_unavailable", "projection '%s': %s", projection,
                      lf_strerror(rc));
    }
    return rc;
}

void lf_hub_booking_key(lf_hub *h, const char *unit, unsigned char key[32])
{
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, h->secret, sizeof h->secret);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)"booking:", 8);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)unit, strlen(unit));
    crypto_auth_hmacsha256_final(&st, key);
}

/* ---- data dir ---------------------------------------------------------- */

static int mkdir_p(const char *dir)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0700) && errno != EEXIST) return LF_EIO;
        *p = '/';
    }
    if (mkdir(tmp, 0700) && errno != EEXIST) return LF_EIO;
    return 0;
}

/* Writes data to path (mode 0600) only if it does not exist yet. */
static int write_new_file(const char *path, const void *data, size_t len)
{
    int rc = LF_EIO;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) return errno == EEXIST ? LF_EEXIST : LF_EIO;
    if (write(fd, data, len) != (ssize_t)len || fsync(fd)) goto out;
    rc = 0;
out:
    close(fd);
    return rc;
}

static int read_small_file(const char *path, unsigned char *buf, size_t cap, size_t *len)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) return errno == ENOENT ? LF_ENOTFOUND : LF_EIO;
    ssize_t n = read(fd, buf, cap);
    close(fd);
    if (n < 0) return LF_EIO;
    *len = (size_t)n;
    return 0;
}

static int load_secret(lf_hub *h)
{
    char *path = lf_asprintf("%s/hub.secret", h->data_dir);
    size_t len = 0;
    int rc = read_small_file(path, h->secret, sizeof h->secret, &len);
    if (rc == LF_ENOTFOUND) {
        randombytes_buf(h->secret, sizeof h->secret);
        rc = write_new_file(path, h->secret, sizeof h->secret);
        len = sizeof h->secret;
    }
    if (rc == 0 && len != sizeof h->secret) {
        lf_err_set("%s is damaged (want %zu bytes)", path, sizeof h->secret);
        rc = LF_ECORRUPT;
    } else if (rc) {
        lf_err_set("cannot read or create %s: %s", path, strerror(errno));
    }
    free(path);
    return rc;
}

static int load_admin_token(lf_hub *h)
{
    int rc = 0;
    char *path = lf_asprintf("%s/admin.token", h->data_dir);
    if (h->cfg.admin_token) {
        lf_token_hash(h->cfg.admin_token, h->admin_hash);
        goto out;
    }
    unsigned char buf[300];
    size_t len = 0;
    rc = read_small_file(path, buf, sizeof buf - 1, &len);
    if (rc == 0) {
        buf[len] = '\0';
        while (len && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
            buf[--len] = '\0';
        if (len == 0) {
            lf_err_set("%s is empty", path);
            rc = LF_ECORRUPT;
            goto out;
        }
        lf_token_hash((char *)buf, h->admin_hash);
        sodium_memzero(buf, sizeof buf);
        goto out;
    }
    if (rc != LF_ENOTFOUND) {
        lf_err_set("cannot read %s", path);
        goto out;
    }
    char tok[65];
    lf_token_new(tok);
    char line[70];
    snprintf(line, sizeof line, "%s\n", tok);
    rc = write_new_file(path, line, strlen(line));
    if (rc) {
        lf_err_set("cannot create %s", path);
        goto out;
    }
    lf_token_hash(tok, h->admin_hash);
    /* Printed once, on the first start; later starts read the file. */
    printf("admin token: %s\n", tok);
    fflush(stdout);
    sodium_memzero(tok, sizeof tok);
out:
    free(path);
    return rc;
}

/* ---- flags --------------------------------------------------------------- */

static int secs_to_ms(double s, const char *flag, int64_t *out)
{
    if (!(s >= 0) || s > 1e9) {
        fprintf(stderr, "lockerfleet hub: --%s must be a number of seconds >= 0\n", flag);
        return 2;
    }
    *out = (int64_t)(s * 1000.0 + 0.5);
    return 0;
}

/* Parses "60,300,900" into cfg->retry_ms; 2 if malformed (no message). */
static int parse_retry(const char *s, lf_hub_config *cfg)
{
    cfg->nretry = 0;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", s);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *end;
        double v = strtod(t, &end);
        if (end == t || *end || !(v > 0) || v > 1e7 || cfg->nretry >= LF_RETRY_MAX) return 2;
        cfg->retry_ms[cfg->nretry++] = (int64_t)(v * 1000.0 + 0.5);
    }
    return cfg->nretry ? 0 : 2;
}

/* Checks a value of any source (flag, LOCKERFLEET_* env, config file) as
 * it is read, so the message names where it came from (cli.h). */
static const char *hub_check(const lf_opt *o, const void *value)
{
    const char *s =
        o->kind == LF_OPT_STR || o->kind == LF_OPT_SECRET ? *(const char *const *)value : "";
    int64_t i = o->kind == LF_OPT_INT ? *(const int64_t *)value : 0;
    enum lf_log_level lvl;
    if (o->kind == LF_OPT_DOUBLE) { /* every fractional number of the hub is seconds */
        double d = *(const double *)value;
        return !(d >= 0) || d > 1e9 ? "must be a number of seconds >= 0" : NULL;
    }
    if (strcmp(o->name, "log-level") == 0)
        return lf_log_parse_level(s, &lvl) ? "must be debug, info, warn or error" : NULL;
    if (strcmp(o->name, "log-format") == 0)
        return strcmp(s, "text") && strcmp(s, "json") ? "must be text or json" : NULL;
    if (strcmp(o->name, "listen") == 0) {
        char host[256];
        int port;
        return lf_http_parse_listen(s, host, &port) ? "must be HOST:PORT" : NULL;
    }
    if (strcmp(o->name, "shard-digits") == 0) return i < 1 || i > 4 ? "must be 1..4" : NULL;
    if (strcmp(o->name, "ingest-inflight") == 0)
        return i < 1 || i > 100000 ? "must be 1..100000" : NULL;
    if (strcmp(o->name, "body-max") == 0)
        return i < 1024 || i > (1 << 30) ? "must be 1024..1073741824 bytes" : NULL;
    if (strcmp(o->name, "http-threads") == 0) return i < 0 || i > 64 ? "must be 0..64" : NULL;
    if (strcmp(o->name, "admin-token") == 0)
        return strlen(s) < 16 ? "must be at least 16 characters" : NULL;
    if (strcmp(o->name, "retry-schedule") == 0) {
        lf_hub_config tmp;
        return parse_retry(s, &tmp) ? "must be up to 16 positive seconds, comma separated" : NULL;
    }
    return NULL;
}

int lf_cmd_hub(int argc, char **argv)
{
    const char *listen = "127.0.0.1:8080", *data = "./data", *store_url = NULL, *admin = NULL;
    const char *node = "hub-1", *retry = "60,300,900", *log_level = "info", *log_format = "text";
    const char *log_file = NULL;
    const char *tls_cert = NULL, *tls_key = NULL, *ca_file = NULL;
    int64_t shard_digits = 1, inflight = 64, body_max = 8 << 20, http_threads = HTTP_THREADS;
    double ping_i = 30, ping_t = 5, hb_grace = 0, pull_i = 60, hold = 600;
    double lease_renew = 2, lease_ttl = 0; /* cluster.c: ttl 0 = 3 x renew */
    bool quiet = false;
    lf_opt opts[] = {
        {"listen", LF_OPT_STR, &listen,
         "HOST:PORT to serve on (default 127.0.0.1:8080; port 0 = any)"},
        {"data", LF_OPT_STR, &data, "data directory (default ./data)"},
        {"store", LF_OPT_STR, &store_url,
         "event store URL (default sqlite:DATA/events.db; sqlite:PATH?commit_delay_us=N sets "
         "the group commit delay cap, default 200)"},
        {"admin-token", LF_OPT_SECRET, &admin,
         "admin token (default: DATA/admin.token, else generated)"},
        {"shard-digits", LF_OPT_INT, &shard_digits,
         "hex digits of a unit's shard, 1..4 (default 1)"},
        {"node-id", LF_OPT_STR, &node, "this hub node's id (default hub-1)"},
        {"lease-renew", LF_OPT_DOUBLE, &lease_renew,
         "seconds between shard lease renewals (default 2)"},
        {"lease-ttl", LF_OPT_DOUBLE, &lease_ttl,
         "shard lease lifetime in seconds (default 3 x --lease-renew)"},
        {"ping-interval", LF_OPT_DOUBLE, &ping_i,
         "seconds between pings of poll units (default 30)"},
        {"ping-timeout", LF_OPT_DOUBLE, &ping_t, "ping timeout in seconds (default 5)"},
        {"heartbeat-grace", LF_OPT_DOUBLE, &hb_grace,
         "seconds without heartbeat before offline (default 3 x the unit's interval)"},
        {"pull-interval", LF_OPT_DOUBLE, &pull_i, "seconds between event pulls (default 60)"},
        {"retry-schedule", LF_OPT_STR, &retry,
         "delivery retry delays in seconds (default 60,300,900)"},
        {"hold-seconds", LF_OPT_DOUBLE, &hold, "reservation hold in seconds (default 600)"},
        {"ingest-inflight", LF_OPT_INT, &inflight,
         "concurrent event batches admitted (default 64)"},
        {"body-max", LF_OPT_INT, &body_max, "request body limit in bytes (default 8 MiB)"},
        {"http-threads", LF_OPT_INT, &http_threads,
         "HTTP threads polling every connection (epoll), 1..64; 0 = one thread per connection"
         " (default " HTTP_THREADS_S ")"},
        {"log-level", LF_OPT_STR, &log_level, "debug|info|warn|error (default info)"},
        {"log-format", LF_OPT_STR, &log_format, "text|json (default text)"},
        {"log-file", LF_OPT_STR, &log_file,
         "append logs to this file instead of stderr; SIGHUP reopens it (logrotate)"},
        {"quiet-http", LF_OPT_FLAG, &quiet, "no per-request log line"},
        {"tls-cert", LF_OPT_STR, &tls_cert, "PEM certificate: serve HTTPS"},
        {"tls-key", LF_OPT_STR, &tls_key, "PEM private key"},
        {"ca-file", LF_OPT_STR, &ca_file, "CA bundle to verify units' HTTPS"},
        {0},
    };
    const lf_config_spec spec = {"hub", "lockerfleet hub [--config FILE] [options]", opts,
                                 hub_check};
    lf_config *conf = NULL; /* owns the strings of the file and env values */
    int rc = lf_config_load(&spec, argc, argv, &conf);
    if (rc) return rc == 1 ? 0 : 2;

    lf_hub *h = lf_xcalloc(1, sizeof *h);
    lf_hub_config *cfg = &h->cfg;
    enum lf_log_level lvl;
    int status = 2;
    char *owned_url = NULL;
    int reg = 0, booking = 0, fleet = 0;
    if (lf_log_parse_level(log_level, &lvl) || lf_log_set_format(log_format)) {
        fprintf(stderr, "lockerfleet hub: bad --log-level or --log-format\n");
        goto out;
    }
    lf_log_set_level(lvl); /* values were range-checked by hub_check */
    if (log_file && lf_log_open_file(log_file)) {
        fprintf(stderr, "lockerfleet hub: %s\n", lf_err_get());
        goto out;
    }
    cfg->listen = listen;
    cfg->data_dir = data;
    cfg->admin_token = admin;
    cfg->node_id = node;
    cfg->tls_cert = tls_cert;
    cfg->tls_key = tls_key;
    cfg->ca_file = ca_file;
    cfg->shard_digits = (int)shard_digits;
    cfg->ingest_inflight_max = (int)inflight;
    cfg->body_max = (size_t)body_max;
    cfg->quiet_http = quiet;
    if (secs_to_ms(ping_i, "ping-interval", &cfg->ping_interval_ms) ||
        secs_to_ms(ping_t, "ping-timeout", &cfg->ping_timeout_ms) ||
        secs_to_ms(hb_grace, "heartbeat-grace", &cfg->heartbeat_grace_ms) ||
        secs_to_ms(pull_i, "pull-interval", &cfg->pull_interval_ms) ||
        secs_to_ms(hold, "hold-seconds", &cfg->hold_ms))
        goto out;
    if (parse_retry(retry, cfg)) {
        fprintf(stderr, "lockerfleet hub: --retry-schedule is malformed\n");
        goto out;
    }
    status = 1;
    h->data_dir = lf_strdup(data);
    h->started_ms = lf_now_ms();
    if (mkdir_p(data)) {
        fprintf(stderr, "lockerfleet hub: cannot create data dir %s: %s\n", data, strerror(errno));
        goto out;
    }
    if (load_secret(h) || load_admin_token(h)) {
        fprintf(stderr, "lockerfleet hub: %s\n", lf_err_get());
        goto out;
    }
    if (!store_url) store_url = owned_url = lf_asprintf("sqlite:%s/events.db", data);
    cfg->store_url = store_url;

    /* Signals are taken by sigwait below: block them before any thread. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[512];
    if (lf_store_open(store_url, &h->store, err, sizeof err)) {
        fprintf(stderr, "lockerfleet hub: cannot open store %s: %s\n", store_url, err);
        goto out;
    }
    lf_metric_describe("lockerfleet_http_requests_total", "counter",
                       "HTTP requests by route and status");
    lf_metric_describe("lockerfleet_http_request_duration_seconds", "histogram",
                       "HTTP request latency by route");
    lf_metric_describe("lockerfleet_events_appended_total", "counter",
                       "events appended by this hub");
    lf_metric_describe("lockerfleet_log_position", "gauge", "last position of the event log");
    lf_metric_describe("lockerfleet_projection_position", "gauge", "last position applied");
    lf_metric_describe("lockerfleet_projection_lag", "gauge", "events behind the log head");
    lf_metric_inc("lockerfleet_events_appended_total", NULL, 0);
    int64_t head = 0;
    lf_store_head(h->store, &head);
    lf_metric_set("lockerfleet_log_position", NULL, (double)head);

    size_t nproj;
    const lf_projection_def *const *defs = lf_projection_all(&nproj);
    h->proj = lf_projections_start(h->store, data, defs, nproj);
    if (!h->proj) {
        fprintf(stderr, "lockerfleet hub: projections: %s\n", lf_err_get());
        goto out;
    }
    if (lf_registry_start(h)) {
        fprintf(stderr, "lockerfleet hub: registry: %s\n", lf_err_get());
        goto out;
    }
    reg = 1;
    if (lf_booking_start(h)) {
        fprintf(stderr, "lockerfleet hub: reservations: %s\n", lf_err_get());
        goto out;
    }
    booking = 1;
    if (lf_cluster_start(h, (int64_t)(lease_renew * 1000), (int64_t)(lease_ttl * 1000))) {
        fprintf(stderr, "lockerfleet hub: cluster: %s\n", lf_err_get());
        goto out;
    }
    if (lf_fleet_start(h)) {
        fprintf(stderr, "lockerfleet hub: fleet: %s\n", lf_err_get());
        goto out;
    }
    fleet = 1;
    if (lf_cluster_run(h)) {
        fprintf(stderr, "lockerfleet hub: cluster: %s\n", lf_err_get());
        goto out;
    }
    lf_http_config hc = {.listen = listen,
                         .body_max = cfg->body_max,
                         .tls_cert = tls_cert,
                         .tls_key = tls_key,
                         .log_component = "http",
                         .quiet = quiet,
                         .pool_threads = (unsigned)http_threads};
    h->http = lf_http_start(&hc, lf_router_dispatch, h);
    if (!h->http) {
        fprintf(stderr, "lockerfleet hub: cannot listen on %s: %s\n", listen, lf_err_get());
        goto out;
    }
    char host[256];
    int port;
    lf_http_parse_listen(listen, host, &port);
    printf("listening on %s://%s:%d\n", tls_cert ? "https" : "http", host[0] ? host : "0.0.0.0",
           lf_http_port(h->http));
    fflush(stdout);
    lf_notify_ready("serving"); /* store open, listener bound (systemd Type=notify) */
    LF_INFO("hub", "node %s serving on port %d, store %s", node, lf_http_port(h->http),
            lf_store_backend(h->store));

    int sig = 0;
    for (;;) {
        sigwait(&sigs, &sig);
        if (sig != SIGHUP) break;
        lf_log_reopen(); /* SIGHUP: logrotate moved the log file */
    }
    LF_INFO("hub", "signal %d: stopping", sig);
    lf_notify_stopping();
    status = 0;
out:
    atomic_store(&h->stopping, 1);
    lf_http_stop(h->http); /* stop accepting, finish in-flight */
    lf_cluster_stop(h);    /* gives the shards away before the fleet stops */
    if (fleet) lf_fleet_stop(h);
    if (booking) lf_booking_stop(h);
    if (reg) lf_registry_stop(h); /* it follows the log on the projections' feed */
    lf_projections_stop(h->proj);
    lf_store_close(h->store);
    free(owned_url);
    free(h->data_dir);
    sodium_memzero(h->secret, sizeof h->secret);
    free(h);
    lf_config_free(conf);
    if (status == 0) LF_INFO("hub", "stopped");
    return status;
}
