/*
 * cmd_demo.c — 'lockerfleet demo': the README's first command. One process
 * that runs two children of the same binary (fork + exec /proc/self/exe):
 *
 *   lockerfleet hub --data DIR/hub ...   the hub on the embedded SQLite store
 *   lockerfleet sim --data DIR/sim ...   a simulated fleet registered with it
 *
 * It keeps an admin token in DIR/admin.token (0600, generated on the first
 * run and reused afterwards, so a second run resumes on the same data),
 * waits for the hub's /healthz, starts the sim, prints the dashboard URL
 * and the token, and then only watches: Ctrl-C / SIGTERM stops the sim,
 * then the hub (SIGTERM, bounded wait, SIGKILL) and exits 0; a child that
 * dies on its own is named, the other one is stopped, and the demo exits 1.
 *
 * The children write their logs to DIR/hub.log and DIR/sim.log (appended);
 * the demo prints the tail of the log of a child that failed. Each child
 * runs in its own process group, so a terminal's Ctrl-C reaches only the
 * demo, which then stops them in order (sim first, so the hub does not log
 * a fleet vanishing); PR_SET_PDEATHSIG makes them go if the demo is killed.
 */
#define _GNU_SOURCE
#include "cli/cli.h"
#include "core/lf.h"
#include "http/client.h"
#include "http/http.h"

#include <errno.h>
#include <jansson.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define DEMO_HUB_READY_MS 60000  /* hub start: open store, replay registry */
#define DEMO_SIM_READY_MS 300000 /* sim start: register N units */
#define DEMO_STOP_MS 20000       /* SIGTERM -> SIGKILL */
#define DEMO_SIM_HEAD_START_MS 2000

static volatile sig_atomic_t demo_stop_sig;

static void on_stop_signal(int sig)
{
    demo_stop_sig = sig;
}

typedef struct {
    const char *what; /* "hub" or "sim" */
    char *log_path;
    pid_t pid;      /* 0 when not running */
    int status;     /* waitpid status once reaped */
    off_t log_seen; /* bytes of the log already scanned */
} demo_child;

/* Creates dir (and its parent) with mode 0700 if missing. */
static int make_dir(const char *dir)
{
    if (mkdir(dir, 0700) == 0 || errno == EEXIST) return 0;
    if (errno == ENOENT) {
        char *parent = lf_strdup(dir);
        char *slash = strrchr(parent, '/');
        int rc = LF_EIO;
        if (slash && slash != parent) {
            *slash = '\0';
            rc = make_dir(parent);
        }
        free(parent);
        if (rc == 0 && (mkdir(dir, 0700) == 0 || errno == EEXIST)) return 0;
    }
    lf_err_set("cannot create directory %s: %s", dir, strerror(errno));
    return LF_EIO;
}

static bool token_valid(const char *t)
{
    if (strlen(t) < 32 || strlen(t) > 128) return false;
    for (const char *p = t; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              *p == '-' || *p == '_'))
            return false;
    return true;
}

/* Reads DIR/admin.token, or creates it (mode 0600) with a new random
 * token. out must hold 129 bytes. *created tells which happened. */
static int admin_token_load(const char *path, char out[129], bool *created)
{
    int rc = LF_EIO;
    FILE *f = NULL;
    int fd = -1;
    *created = false;
    f = fopen(path, "r");
    if (f) {
        if (!fgets(out, 129, f)) out[0] = '\0';
        out[strcspn(out, "\r\n \t")] = '\0';
        if (!token_valid(out)) {
            lf_err_set("%s does not hold a valid token; remove it to get a new one", path);
            goto out;
        }
        rc = 0;
        goto out;
    }
    if (errno != ENOENT) {
        lf_err_set("cannot read %s: %s", path, strerror(errno));
        goto out;
    }
    char tok[65];
    lf_token_new(tok);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        lf_err_set("cannot create %s: %s", path, strerror(errno));
        goto out;
    }
    char line[80];
    int n = snprintf(line, sizeof line, "%s\n", tok);
    if (write(fd, line, (size_t)n) != n || fsync(fd) != 0) {
        lf_err_set("cannot write %s: %s", path, strerror(errno));
        goto out;
    }
    snprintf(out, 129, "%s", tok);
    *created = true;
    rc = 0;
out:
    if (f) fclose(f);
    if (fd >= 0) close(fd);
    return rc;
}

/* fork + exec /proc/self/exe with args; stdout and stderr go to the
 * child's log file (appended). Returns 0 with c->pid set. */
static int child_start(demo_child *c, char *const args[])
{
    int rc = LF_EIO;
    int logfd = open(c->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (logfd < 0) {
        lf_err_set("cannot open %s: %s", c->log_path, strerror(errno));
        goto out;
    }
    struct stat st;
    c->log_seen = fstat(logfd, &st) == 0 ? st.st_size : 0;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        lf_err_set("cannot start the %s: fork: %s", c->what, strerror(errno));
        goto out;
    }
    if (pid == 0) {
        /* Child: own process group (the demo forwards Ctrl-C itself), die
         * with the demo, log to the file, become the subcommand. */
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() == 1) _exit(127); /* the demo is already gone */
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, STDIN_FILENO);
        dup2(logfd, STDOUT_FILENO);
        dup2(logfd, STDERR_FILENO);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        execv("/proc/self/exe", args);
        dprintf(STDERR_FILENO, "demo: cannot exec /proc/self/exe: %s\n", strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid); /* also here: no race with the child's own call */
    c->pid = pid;
    rc = 0;
out:
    if (logfd >= 0) close(logfd);
    return rc;
}

/* Reaps c if it has exited. Returns true if it is (now) not running. */
static bool child_gone(demo_child *c)
{
    if (c->pid <= 0) return true;
    pid_t r = waitpid(c->pid, &c->status, WNOHANG);
    if (r == c->pid || (r < 0 && errno == ECHILD)) {
        c->pid = 0;
        return true;
    }
    return false;
}

static void child_describe_exit(const demo_child *c, char *buf, size_t n)
{
    if (WIFEXITED(c->status))
        snprintf(buf, n, "exit status %d", WEXITSTATUS(c->status));
    else if (WIFSIGNALED(c->status))
        snprintf(buf, n, "killed by signal %d (%s)", WTERMSIG(c->status),
                 strsignal(WTERMSIG(c->status)));
    else
        snprintf(buf, n, "status %d", c->status);
}

/* Stops the sim, then the hub: SIGTERM to the sim first (so the hub does
 * not spend its time on a fleet that is going away), SIGTERM to the hub
 * once the sim is gone or after DEMO_SIM_HEAD_START_MS (the two hold
 * keep-alive connections to each other, so each one's graceful stop goes
 * faster when the other stops too), then SIGKILL whatever is still there
 * after DEMO_STOP_MS. */
static void children_stop(demo_child *sim, demo_child *hub)
{
    if (!child_gone(sim)) kill(sim->pid, SIGTERM);
    int64_t t0 = lf_mono_ms();
    bool hub_told = false;
    for (;;) {
        bool sim_gone = child_gone(sim), hub_gone = child_gone(hub);
        if (sim_gone && hub_gone) break;
        int64_t now = lf_mono_ms();
        if (!hub_told && !hub_gone && (sim_gone || now - t0 > DEMO_SIM_HEAD_START_MS)) {
            kill(hub->pid, SIGTERM);
            hub_told = true;
        }
        if (now - t0 > DEMO_STOP_MS) {
            demo_child *cs[2] = {sim, hub};
            for (int i = 0; i < 2; i++) {
                if (child_gone(cs[i])) continue;
                fprintf(stderr, "demo: the %s did not stop within %d s; killing it\n", cs[i]->what,
                        DEMO_STOP_MS / 1000);
                kill(cs[i]->pid, SIGKILL);
                waitpid(cs[i]->pid, &cs[i]->status, 0);
                cs[i]->pid = 0;
            }
            break;
        }
        lf_sleep_ms(50);
    }
}

/* Prints the last lines of a child's log to stderr. */
static void child_log_tail(const demo_child *c, int max_lines)
{
    FILE *f = fopen(c->log_path, "r");
    if (!f) return;
    long start = 0;
    if (fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        start = size > 4096 ? size - 4096 : 0;
    }
    fseek(f, start, SEEK_SET);
    char buf[4097];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = buf + n;
    int lines = 0;
    while (p > buf) {
        if (p[-1] == '\n' && p != buf + n && ++lines > max_lines) break;
        p--;
    }
    fprintf(stderr, "---- last lines of %s ----\n%s", c->log_path, p);
    if (n && buf[n - 1] != '\n') fputc('\n', stderr);
    fprintf(stderr, "----\n");
}

/* Scans what the child logged since the last call for a line containing
 * needle; copies that line (trimmed) into line. */
static bool child_log_find(demo_child *c, const char *needle, char *line, size_t linesz)
{
    bool found = false;
    FILE *f = fopen(c->log_path, "r");
    if (!f) return false;
    if (fseeko(f, c->log_seen, SEEK_SET) != 0) goto out;
    char buf[2048];
    off_t pos = c->log_seen;
    while (fgets(buf, sizeof buf, f)) {
        size_t len = strlen(buf);
        if (buf[len - 1] != '\n') break; /* partial line: look again later */
        pos += (off_t)len;
        if (strstr(buf, needle)) {
            buf[strcspn(buf, "\r\n")] = '\0';
            snprintf(line, linesz, "%s", buf);
            found = true;
            break;
        }
    }
    c->log_seen = pos;
out:
    fclose(f);
    return found;
}

static bool hub_healthy(const char *base)
{
    char *url = lf_asprintf("%s/healthz", base);
    lf_http_opts o = {.timeout_ms = 2000};
    lf_http_result r;
    int rc = lf_http_call("GET", url, NULL, &o, &r);
    bool ok = rc == 0 && r.status == 200;
    lf_http_result_free(&r);
    free(url);
    return ok;
}

/* First run only: queue a sample configuration for the first units, so
 * the dashboard shows config deliveries (ledger, "last config pushed")
 * from the start. Returns how many units accepted it. */
static int push_sample_config(const char *base, const char *token, int max)
{
    int pushed = 0;
    lf_http_opts o = {.bearer = token, .timeout_ms = 10000};
    lf_http_result r;
    char *url = lf_asprintf("%s/v1/units?limit=%d", base, max);
    json_t *list = NULL;
    if (lf_http_call("GET", url, NULL, &o, &r) == 0 && r.status == 200 && r.body.data)
        list = json_loadb(r.body.data, r.body.len, 0, NULL);
    lf_http_result_free(&r);
    free(url);
    json_t *units = json_object_get(list, "units"), *u;
    size_t i;
    json_array_foreach(units, i, u)
    {
        const char *name = json_string_value(json_object_get(u, "name"));
        if (!name || !lf_name_valid(name)) continue;
        char *put = lf_asprintf("%s/v1/units/%s/config?mode=queued", base, name);
        const char *body = "{\"config\":{\"price_cents_per_hour\":250,\"currency\":\"EUR\","
                           "\"max_rental_hours\":72,\"opening_hours\":\"06:00-22:00\"}}";
        if (lf_http_call("PUT", put, body, &o, &r) == 0 && (r.status == 200 || r.status == 202))
            pushed++;
        lf_http_result_free(&r);
        free(put);
    }
    json_decref(list);
    return pushed;
}

/* "HOST:PORT" -> "http://HOST:PORT" reachable from here (a wildcard
 * address becomes 127.0.0.1). NULL on a bad address. Caller frees. */
static char *base_url_of(const char *listen)
{
    char host[256];
    int port;
    if (lf_http_parse_listen(listen, host, &port)) return NULL;
    if (!*host || strcmp(host, "*") == 0 || strcmp(host, "0.0.0.0") == 0)
        snprintf(host, sizeof host, "127.0.0.1");
    if (strcmp(host, "::") == 0) snprintf(host, sizeof host, "::1");
    if (strchr(host, ':')) return lf_asprintf("http://[%s]:%d", host, port);
    return lf_asprintf("http://%s:%d", host, port);
}

int lf_cmd_demo(int argc, char **argv)
{
    const char *data = "./demo-data", *listen = "127.0.0.1:8080", *sim_listen = "127.0.0.1:8081";
    int64_t units = 300, ping_interval = 5, ping_timeout = 2, seed = 1;
    double offline_fraction = 0.1;
    lf_opt opts[] = {
        {"data", LF_OPT_STR, &data,
         "data directory (default ./demo-data): hub/, sim/, admin.token"},
        {"listen", LF_OPT_STR, &listen, "hub and dashboard address (default 127.0.0.1:8080)"},
        {"units", LF_OPT_INT, &units, "simulated units (default 300)"},
        {"sim-listen", LF_OPT_STR, &sim_listen, "the sim's address (default 127.0.0.1:8081)"},
        {"ping-interval", LF_OPT_INT, &ping_interval, "hub ping interval, seconds (default 5)"},
        {"ping-timeout", LF_OPT_INT, &ping_timeout, "hub ping timeout, seconds (default 2)"},
        {"offline-fraction", LF_OPT_DOUBLE, &offline_fraction,
         "share of units the sim takes offline at times (default 0.1)"},
        {"seed", LF_OPT_INT, &seed, "the sim's random seed (default 1)"},
        {0},
    };
    int rc = lf_opts_parse("lockerfleet demo [--data DIR] [--listen HOST:PORT] [--units N] "
                           "[--sim-listen HOST:PORT]",
                           opts, argc, argv, NULL, 0, NULL);
    if (rc) return rc == 1 ? 0 : 2;

    int status = 1;
    char *hub_dir = NULL, *sim_dir = NULL, *token_path = NULL, *base = NULL, *hub_url = NULL;
    char *s_units = NULL, *s_pi = NULL, *s_pt = NULL, *s_seed = NULL, *s_off = NULL;
    demo_child hub = {.what = "hub"}, sim = {.what = "sim"};
    char token[129];
    bool created = false, stopping = false;

    if (units < 1 || units > 100000 || ping_interval < 1 || ping_timeout < 1 ||
        offline_fraction < 0 || offline_fraction > 1) {
        fprintf(stderr, "lockerfleet demo: --units must be 1..100000, --ping-interval and "
                        "--ping-timeout >= 1, --offline-fraction within [0,1]\n");
        status = 2;
        goto out;
    }
    base = base_url_of(listen);
    char sim_host[256];
    int sim_port;
    if (!base || lf_http_parse_listen(sim_listen, sim_host, &sim_port)) {
        fprintf(stderr, "lockerfleet demo: bad address '%s' (want HOST:PORT)\n",
                base ? sim_listen : listen);
        status = 2;
        goto out;
    }
    hub_dir = lf_asprintf("%s/hub", data);
    sim_dir = lf_asprintf("%s/sim", data);
    token_path = lf_asprintf("%s/admin.token", data);
    hub.log_path = lf_asprintf("%s/hub.log", data);
    sim.log_path = lf_asprintf("%s/sim.log", data);
    if (make_dir(data) || make_dir(hub_dir) || make_dir(sim_dir) ||
        admin_token_load(token_path, token, &created)) {
        fprintf(stderr, "lockerfleet demo: %s\n", lf_err_get());
        goto out;
    }
    lf_http_client_global_init();

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    s_units = lf_asprintf("%lld", (long long)units);
    s_pi = lf_asprintf("%lld", (long long)ping_interval);
    s_pt = lf_asprintf("%lld", (long long)ping_timeout);
    s_seed = lf_asprintf("%lld", (long long)seed);
    s_off = lf_asprintf("%g", offline_fraction);

    printf("demo: data in %s (%s admin token)\n", data, created ? "new" : "existing");
    printf("demo: starting the hub on %s (log: %s)\n", listen, hub.log_path);
    fflush(stdout);
    /* clang-format off */
    char *hub_args[] = {"lockerfleet", "hub", "--listen", (char *)listen, "--data", hub_dir,
                        "--admin-token", token, "--ping-interval", s_pi, "--ping-timeout", s_pt,
                        "--quiet-http", NULL};
    /* clang-format on */
    if (child_start(&hub, hub_args)) {
        fprintf(stderr, "lockerfleet demo: %s\n", lf_err_get());
        goto out;
    }

    /* Ready: the hub's "listening on URL" line (which also covers port 0)
     * or its /healthz at the configured address. */
    int64_t deadline = lf_mono_ms() + DEMO_HUB_READY_MS;
    char line[2048];
    for (;;) {
        if (demo_stop_sig) goto stop;
        if (child_gone(&hub)) goto child_died;
        if (child_log_find(&hub, "listening on http", line, sizeof line)) {
            char *p = strstr(line, "http://"); /* keep "http://HOST:PORT" */
            if (p) {
                p[7 + strcspn(p + 7, " \t/")] = '\0';
                free(base);
                base = lf_strdup(p);
            }
        }
        if (hub_healthy(base)) break;
        if (lf_mono_ms() > deadline) {
            fprintf(stderr, "demo: the hub did not answer %s/healthz within %d s\n", base,
                    DEMO_HUB_READY_MS / 1000);
            child_log_tail(&hub, 20);
            goto stop;
        }
        lf_sleep_ms(100);
    }
    printf("demo: hub ready at %s\n", base);
    printf("demo: starting the sim with %lld units on %s (log: %s)\n", (long long)units, sim_listen,
           sim.log_path);
    fflush(stdout);
    hub_url = lf_strdup(base);
    /* clang-format off */
    char *sim_args[] = {"lockerfleet", "sim", "--hub", hub_url, "--admin-token", token,
                        "--units", s_units, "--listen", (char *)sim_listen, "--data", sim_dir,
                        "--seed", s_seed, "--offline-fraction", s_off, NULL};
    /* clang-format on */
    if (child_start(&sim, sim_args)) {
        fprintf(stderr, "lockerfleet demo: %s\n", lf_err_get());
        goto stop;
    }

    printf("\n  dashboard:   %s/\n", base);
    printf("  admin token: %s\n", token);
    printf("  (or open %s/#token=%s to skip the prompt)\n\n", base, token);
    printf("demo: running; Ctrl-C stops the hub and the sim (data stays in %s)\n", data);
    fflush(stdout);

    bool sim_ready = false;
    deadline = lf_mono_ms() + DEMO_SIM_READY_MS;
    while (!demo_stop_sig) {
        if (child_gone(&hub) || child_gone(&sim)) goto child_died;
        if (!sim_ready && child_log_find(&sim, "units registered", line, sizeof line)) {
            sim_ready = true;
            printf("demo: %s\n", line);
            if (created) {
                int n = push_sample_config(base, token, 50);
                printf("demo: queued a sample config for %d units\n", n);
            }
            fflush(stdout);
        }
        if (!sim_ready && lf_mono_ms() > deadline) {
            sim_ready = true; /* say it once, keep running */
            fprintf(stderr, "demo: the sim has not reported its units after %d s; see %s\n",
                    DEMO_SIM_READY_MS / 1000, sim.log_path);
        }
        lf_sleep_ms(200);
    }
    goto stop;

child_died:
    /* Exactly one child is gone on its own: name it, stop the other. */
    {
        demo_child *dead = hub.pid == 0 ? &hub : &sim;
        char how[96];
        child_describe_exit(dead, how, sizeof how);
        fprintf(stderr, "demo: the %s exited unexpectedly (%s); stopping the demo\n", dead->what,
                how);
        child_log_tail(dead, 20);
    }
    children_stop(&sim, &hub);
    status = 1;
    goto out;

stop:
    stopping = demo_stop_sig != 0;
    if (stopping) {
        printf("\ndemo: %s received; stopping the sim and the hub\n", strsignal(demo_stop_sig));
        fflush(stdout);
    }
    children_stop(&sim, &hub);
    if (stopping) {
        printf("demo: stopped; run the same command again to resume on %s\n", data);
        status = 0;
    }
out:
    fflush(stdout);
    free(hub_dir);
    free(sim_dir);
    free(token_path);
    free(base);
    free(hub_url);
    free(hub.log_path);
    free(sim.log_path);
    free(s_units);
    free(s_pi);
    free(s_pt);
    free(s_seed);
    free(s_off);
    return status;
}
