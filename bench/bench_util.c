/* bench_util.c — shared pieces of the HTTP benchmarks (bench_util.h). */
#include "bench_util.h"
#include "core/lf.h"
#include "http/client.h"

#include <jansson.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

pid_t lf_bench_start_hub(const char *dir, const char *store, const char *admin,
                         const char *const *extra, char *url, size_t urllen)
{
    int fds[2];
    if (pipe(fds)) return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        const char *args[48];
        int k = 0;
        args[k++] = "lockerfleet";
        args[k++] = "hub";
        args[k++] = "--listen";
        args[k++] = "127.0.0.1:0";
        args[k++] = "--data";
        args[k++] = dir;
        args[k++] = "--admin-token";
        args[k++] = admin;
        if (store) {
            args[k++] = "--store";
            args[k++] = store;
        }
        for (int i = 0; extra && extra[i] && k < 47; i++)
            args[k++] = extra[i];
        args[k] = NULL;
        /* LF_BENCH_HUB: another lockerfleet binary for the hub (A/B runs
         * of two builds under the same load generator). */
        const char *bin = getenv("LF_BENCH_HUB");
        execv(bin && bin[0] ? bin : "/proc/self/exe", (char *const *)args);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    char line[512];
    url[0] = '\0';
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "listening on ", 13) == 0) {
            snprintf(url, urllen, "%.200s", line + 13);
            url[strcspn(url, "\r\n")] = '\0';
            break;
        }
    }
    return pid;
}

/* utime + stime (+ cutime + cstime when children) of PID in clock ticks;
 * *ppid its parent. -1 when unreadable. */
static long long proc_ticks(pid_t pid, int children, pid_t *ppid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    int pp = 0;
    unsigned long ut = 0, st = 0;
    long cut = 0, cst = 0;
    /* after ")": state ppid pgrp session tty tpgid flags minflt cminflt
     * majflt cmajflt utime stime cutime cstime (fields 3..17) */
    if (!p || sscanf(p + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %ld %ld", &pp, &ut,
                     &st, &cut, &cst) != 5)
        return -1;
    if (ppid) *ppid = pp;
    return (long long)(ut + st) + (children ? cut + cst : 0);
}

double lf_bench_proc_cpu_s(pid_t pid)
{
    long long t = proc_ticks(pid, 0, NULL);
    return t < 0 ? -1 : (double)t / (double)sysconf(_SC_CLK_TCK);
}

double lf_bench_tree_cpu_s(pid_t pid)
{
    long long t = proc_ticks(pid, 1, NULL);
    if (t < 0) return -1;
    DIR *d = opendir("/proc");
    if (!d) return -1;
    struct dirent *de;
    while ((de = readdir(d))) {
        char *end;
        long k = strtol(de->d_name, &end, 10);
        if (*end || k <= 0 || k == pid) continue;
        pid_t pp = 0;
        long long c = proc_ticks((pid_t)k, 0, &pp);
        if (c > 0 && pp == pid) t += c;
    }
    closedir(d);
    return (double)t / (double)sysconf(_SC_CLK_TCK);
}

double lf_bench_self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static json_t *get_json(const char *url, const char *admin)
{
    lf_http_opts o = {.bearer = admin, .timeout_ms = 60000};
    lf_http_result r;
    int rc = lf_http_call("GET", url, NULL, &o, &r);
    json_t *j = rc == 0 && r.status == 200 ? json_loadb(r.body.data, r.body.len, 0, NULL) : NULL;
    lf_http_result_free(&r);
    return j;
}

int lf_bench_wait_projections(const char *url, const char *admin, int64_t timeout_ms, int64_t *head)
{
    char *hu = lf_asprintf("%s/healthz", url), *pu = lf_asprintf("%s/v1/projections", url);
    json_t *hz = get_json(hu, admin);
    int64_t want = json_integer_value(json_object_get(hz, "position")), t0 = lf_mono_ms();
    int ret = -1;
    if (head) *head = want;
    if (!hz || want < 0) goto out;
    for (;;) {
        json_t *arr = get_json(pu, admin), *p;
        size_t i;
        if (!json_is_array(arr)) {
            json_decref(arr);
            goto out;
        }
        int at = 1;
        json_array_foreach(arr, i, p)
        {
            if (json_integer_value(json_object_get(p, "position")) < want) at = 0;
        }
        json_decref(arr);
        if (at) {
            ret = 0;
            break;
        }
        if (lf_mono_ms() - t0 > timeout_ms) {
            ret = 1;
            break;
        }
        lf_sleep_ms(20);
    }
out:
    json_decref(hz);
    free(hu);
    free(pu);
    return ret;
}

void lf_bench_event_data(char **out, int n)
{
    for (int i = 0; i < n; i++) {
        char *d = lf_xmalloc(LF_BENCH_DATA_LEN + 1);
        int k = snprintf(d, LF_BENCH_DATA_LEN + 1,
                         "{\"unit\":\"unit-%05d\",\"locker\":%d,\"kind\":\"door_closed\","
                         "\"seq\":%d,\"battery_mv\":%d,\"temp_c\":21.5,\"pad\":\"",
                         i % 10000, i % 48, i * 7, 3000 + i % 900);
        for (; k < LF_BENCH_DATA_LEN - 2; k++)
            d[k] = (char)('a' + k % 26);
        d[k++] = '"';
        d[k++] = '}';
        d[k] = '\0';
        out[i] = d;
    }
}

int lf_bench_register_unit(const char *url, const char *admin, const char *who, const char *name,
                           const char *presence, const char *unit_url, char *token, size_t tokenlen,
                           int *shard, int timeout_ms)
{
    json_t *u = json_pack("{s:s,s:s,s:s,s:[{s:s,s:s}]}", "name", name, "display_name", name,
                          "presence", presence, "lockers", "id", "A01", "size", "S");
    if (unit_url) json_object_set_new(u, "url", json_string(unit_url));
    char *body = json_dumps(u, JSON_COMPACT);
    json_decref(u);
    char *ru = lf_asprintf("%s/v1/units", url);
    lf_http_opts o = {.bearer = admin, .timeout_ms = timeout_ms};
    lf_http_result r;
    int rc = lf_http_call("POST", ru, body, &o, &r);
    json_t *j = rc == 0 && r.status == 201 ? json_loadb(r.body.data, r.body.len, 0, NULL) : NULL;
    const char *tok = json_string_value(json_object_get(j, "token"));
    const char *sh = json_string_value(json_object_get(j, "shard"));
    int ret = 0;
    if (tok && (sh || !shard)) {
        snprintf(token, tokenlen, "%s", tok);
        if (shard) *shard = (int)strtol(sh, NULL, 16);
    } else {
        fprintf(stderr, "%s: registering %s: %s %ld %.*s\n", who, name, lf_strerror(rc), r.status,
                (int)(r.body.len > 200 ? 200 : r.body.len), r.body.data ? r.body.data : "");
        ret = -1;
    }
    json_decref(j);
    lf_http_result_free(&r);
    free(ru);
    free(body);
    return ret;
}

pid_t lf_bench_server_pid(int64_t given)
{
    const char *pf = getenv("LF_TEST_SERVER_PIDFILE");
    if (given <= 0 && pf) {
        FILE *f = fopen(pf, "r");
        long long v = 0;
        if (f && fscanf(f, "%lld", &v) == 1) given = v;
        if (f) fclose(f);
    }
    return given > 0 ? (pid_t)given : 0;
}
