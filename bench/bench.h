/*
 * bench.h — the benchmarks behind 'lockerfleet bench NAME'. Each takes
 * argv[0] = NAME and returns an exit status (0 ok, 1 failure, 2 usage).
 * cmd_bench.c dispatches from a table; add a line there for a new one.
 */
#ifndef LF_BENCH_H
#define LF_BENCH_H

/* Event store: appends at batch sizes, group commit, read-all, catch-up,
 * side by side with a plain SQLite INSERT loop (and Redis if present). */
int lf_bench_store(int argc, char **argv);

/* One store backend (postgres/redis/nats) vs its raw engine, same run. */
int lf_bench_backend(int argc, char **argv);

/* Presence and ingestion served by 1 hub node, then 3, on one store. */
int lf_bench_cluster(int argc, char **argv);

#endif
