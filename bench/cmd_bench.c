/*
 * cmd_bench.c — 'lockerfleet bench NAME [options]': runs one benchmark.
 * The benchmarks are a table; a new one is one line here plus its
 * function in bench/bench_NAME.c (declared in bench.h).
 */
#include "bench.h"
#include "bench_projection.h"
#include "bench_ingest.h"
#include "bench_presence.h"
#include "bench_reserve.h"
#include "bench_storm.h"
#include "cli/cli.h"
#include "core/lf.h"
#include "core/module.h"

#include <stdio.h>
#include <string.h>

/* 'store' and 'backend' measure the raw engines (plain SQLite, Redis,
 * PostgreSQL, NATS) beside our store, so they link the engines' client
 * libraries: they live in the module lockerfleet-bench-engines.so
 * (core/module.h), loaded only when one of them runs. */
static int in_module(const char *sym, int argc, char **argv)
{
    int (*fn)(int, char **) =
        (int (*)(int, char **))lf_module_sym("lockerfleet-bench-engines", sym);
    if (!fn) {
        fprintf(stderr, "lockerfleet bench %s: %s\n", argv[0], lf_err_get());
        return 1;
    }
    return fn(argc, argv);
}

static int bench_store(int argc, char **argv)
{
    return in_module("lf_bench_store", argc, argv);
}

static int bench_backend(int argc, char **argv)
{
    return in_module("lf_bench_backend", argc, argv);
}

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} benches[] = {
    {"store", bench_store,
     "event store appends (batch 1..1000, group commit), read-all, catch-up vs plain SQLite"},
    {"backend", bench_backend,
     "a postgres/redis/nats store backend's appends vs its raw engine (--store URL)"},
    {"cluster", lf_bench_cluster,
     "presence and ingestion of 1 hub node, then 3, on one shared store (--store URL)"},
    {"presence", lf_bench_presence, "one hub pinger thread (curl multi) pings N units"},
    {"ingest", lf_bench_ingest, "pushed event batches over HTTP into a real hub"},
    {"projection", lf_bench_projection,
     "projection rebuild events/s per projection on a generated store (lockerfleet rebuild)"},
    {"reserve", lf_bench_reserve,
     "reserve+confirm pairs/s across many units over HTTP into a real hub"},
    {"storm", lf_bench_storm,
     "reconnect storm: N units push B buffered events at once; time to stored + caught up"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: lockerfleet bench <name> [options]\n\nbenchmarks:\n");
    for (size_t i = 0; i < sizeof benches / sizeof benches[0]; i++)
        fprintf(f, "  %-8s %s\n", benches[i].name, benches[i].help);
    fprintf(f, "\n'lockerfleet bench <name> --help' lists its options.\n");
}

int lf_cmd_bench(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof benches / sizeof benches[0]; i++)
        if (strcmp(argv[1], benches[i].name) == 0) return benches[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "lockerfleet bench: unknown benchmark '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
