/*
 * bench_util.h — what the benchmarks share: starting a hub process of this
 * same binary, registering units, reading CPU time, the events' data.
 */
#ifndef LF_BENCH_UTIL_H
#define LF_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Starts `lockerfleet hub --listen 127.0.0.1:0 --data dir --admin-token
 * admin [--store store] extra...` (extra: NULL-terminated, may be NULL) as
 * a child and waits for its "listening on URL" line; url receives the URL
 * ("" if the hub never said it). The hub is this binary, or the one the
 * environment variable LF_BENCH_HUB names (to compare two builds under the
 * same load generator). Returns the child's pid, or -1. The pipe
 * on its stdout stays open (the hub prints little). */
pid_t lf_bench_start_hub(const char *dir, const char *store, const char *admin,
                         const char *const *extra, char *url, size_t urllen);

/* CPU seconds (user + system) a process has used, from /proc/PID/stat:
 * on a shared, loaded machine the CPU cost per event is the figure that
 * holds, wall-clock throughput does not. -1 when unreadable. */
double lf_bench_proc_cpu_s(pid_t pid);
/* The same for a server process and its children, live (their own
 * times) and exited (reaped: the parent's cutime + cstime) — postgres runs
 * one backend process per connection. -1 when unreadable. */
double lf_bench_tree_cpu_s(pid_t pid);
/* The same for this process. */
double lf_bench_self_cpu_s(void);
/* The store server's pid for those figures: `given` (a --server-pid) when
 * > 0, else the first line of $LF_TEST_SERVER_PIDFILE (set by
 * scripts/with-server.sh), else 0. */
pid_t lf_bench_server_pid(int64_t given);

/* Waits until every projection of the hub at url has reached the log head
 * as it is when called (GET /healthz, then GET /v1/projections every
 * 20 ms, with the admin token), at most timeout_ms. *head (may be NULL)
 * receives that head. 0 when caught up, 1 on timeout, -1 on an error. */
int lf_bench_wait_projections(const char *url, const char *admin, int64_t timeout_ms,
                              int64_t *head);

/* Registers unit `name` with one small locker at the hub at url (POST
 * /v1/units with the admin token): presence "heartbeat" or "poll",
 * unit_url its address or NULL. On 201 copies its token out, and its
 * shard (0..15) into *shard when shard is not NULL; timeout_ms as in
 * lf_http_opts (0: the client's default). 0, or -1 after a line
 * on stderr that starts with `who` ("bench storm") and says why. */
int lf_bench_register_unit(const char *url, const char *admin, const char *who, const char *name,
                           const char *presence, const char *unit_url, char *token, size_t tokenlen,
                           int *shard, int timeout_ms);

/* Fills out[0..n) with distinct JSON objects of LF_BENCH_DATA_LEN bytes,
 * shaped like a unit's door event (the store benchmarks' ~200-byte
 * events). The caller frees each. */
#define LF_BENCH_DATA_LEN 200
void lf_bench_event_data(char **out, int n);

#endif
