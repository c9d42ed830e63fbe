/*
 * main.c — the lockerfleet binary: dispatches to a subcommand, like git.
 * Each subcommand lives in its own module and has the signature
 * int X_main(int argc, char **argv) with argv[0] = the subcommand name.
 */
#include "cli/cli.h"
#include "core/lf.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"hub", lf_cmd_hub, "run the central platform (HTTP API, event store, projections, fleet workers)"},
    {"unit", lf_cmd_unit, "run one unit's agent (local store, local API, uplink)"},
    {"sim", lf_cmd_sim, "simulate many units in one process against a hub"},
    {"demo", lf_cmd_demo, "hub on embedded SQLite + a simulated fleet + the dashboard"},
    {"rebuild", lf_cmd_rebuild, "rebuild one projection from the log, offline"},
    {"events", lf_cmd_events, "read the event log"},
    {"bench", lf_cmd_bench, "run benchmarks (store, ...)"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: lockerfleet <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n'lockerfleet <command> --help' describes a command's options.\n"
               "'lockerfleet --version' prints the version.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("lockerfleet %s\n", LF_VERSION);
        return 0;
    }
    if (lf_init() != 0) {
        fprintf(stderr, "lockerfleet: %s\n", lf_err_get());
        return 1;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "lockerfleet: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
