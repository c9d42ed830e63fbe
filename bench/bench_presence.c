/*
 * bench_presence.c — 'lockerfleet bench presence [--units N] [--rounds R]
 * [--inflight K] [--timeout-ms T]'.
 *
 * Forks one responder process (the project's HTTP server, answering
 * /u/{name}/ping the way the simulator does), then pings N distinct unit
 * URLs from ONE thread with the hub's own pinger (src/hub/fleet_ping.c,
 * libcurl multi) and prints the time of each round. The first round pays
 * for connection set-up; later rounds reuse keep-alive connections, as the
 * hub's pinger does every --ping-interval.
 */
#include "bench_presence.h"
#include "cli/cli.h"
#include "hub/fleet.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void responder(lf_http_req *req, lf_http_resp *resp, void *app)
{
    (void)app;
    (void)req;
    static const char body[] = "{\"name\":\"u\",\"seq_head\":0,\"config_version\":0}";
    lf_http_text(resp, 200, "application/json", body, sizeof body - 1);
}

typedef struct {
    size_t ok, fail;
    int64_t max_ms;
} tally;

static void on_result(size_t idx, const lf_fleet_ping_result *r, void *ctx)
{
    (void)idx;
    tally *t = ctx;
    if (r->ok)
        t->ok++;
    else
        t->fail++;
    if (r->response_ms > t->max_ms) t->max_ms = r->response_ms;
}

int lf_bench_presence(int argc, char **argv)
{
    int64_t units = 10000, rounds = 3, inflight = 512, timeout_ms = 5000;
    const lf_opt opts[] = {
        {"units", LF_OPT_INT, &units, "units to ping (default 10000)"},
        {"rounds", LF_OPT_INT, &rounds, "rounds (default 3)"},
        {"inflight", LF_OPT_INT, &inflight, "transfers in flight at once (default 512)"},
        {"timeout-ms", LF_OPT_INT, &timeout_ms, "per-ping timeout (default 5000)"},
        {0},
    };
    int rc = lf_opts_parse("lockerfleet bench presence [options]", opts, argc, argv, NULL, 0, NULL);
    if (rc) return rc == 1 ? 0 : 2;
    if (units < 1 || rounds < 1 || inflight < 1 || inflight > 10000) return 2;
    lf_init();
    int fds[2];
    if (pipe(fds)) return 1;
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        close(fds[0]);
        lf_http_config hc = {.listen = "127.0.0.1:0",
                             .conn_limit = (unsigned)inflight + 64,
                             .quiet = 1,
                             .log_component = "responder"};
        lf_http_server *s = lf_http_start(&hc, responder, NULL);
        int port = s ? lf_http_port(s) : -1;
        if (write(fds[1], &port, sizeof port) != sizeof port) _exit(1);
        close(fds[1]);
        for (;;)
            pause();
    }
    close(fds[1]);
    int port = -1;
    if (read(fds[0], &port, sizeof port) != sizeof port || port <= 0) {
        fprintf(stderr, "bench presence: the responder did not start\n");
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return 1;
    }
    close(fds[0]);
    char **urls = lf_xcalloc((size_t)units, sizeof *urls);
    for (int64_t i = 0; i < units; i++)
        urls[i] = lf_asprintf("http://127.0.0.1:%d/u/unit-%05lld/ping", port, (long long)i);
    lf_fleet_pinger *p = lf_fleet_pinger_new((int)inflight);
    printf("presence: %lld units on one responder (pid %d, port %d), one pinger thread, "
           "%lld in flight\n",
           (long long)units, (int)pid, port, (long long)inflight);
    int failed = 0;
    for (int64_t r = 0; r < rounds; r++) {
        tally t = {0};
        int64_t t0 = lf_mono_us();
        lf_fleet_pinger_round(p, (const char *const *)urls, (size_t)units, timeout_ms, on_result,
                              &t, NULL);
        double s = (double)(lf_mono_us() - t0) / 1e6;
        printf("round %lld: %zu ok, %zu failed in %.3f s (%.0f pings/s, slowest %lld ms)%s\n",
               (long long)r + 1, t.ok, t.fail, s, (double)units / s, (long long)t.max_ms,
               r == 0 ? " [cold: opens connections]" : "");
        if (t.fail) failed = 1;
    }
    lf_fleet_pinger_free(p);
    for (int64_t i = 0; i < units; i++)
        free(urls[i]);
    free(urls);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return failed;
}
