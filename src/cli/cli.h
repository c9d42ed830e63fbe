/*
 * cli.h — the subcommands of the lockerfleet binary and the small option
 * parser they share. Each lf_cmd_X gets argv[0] = "X" and returns the exit
 * status (0 ok, 1 runtime failure, 2 usage error).
 */
#ifndef LF_CLI_H
#define LF_CLI_H

#include <stdbool.h>
#include <stdint.h>

int lf_cmd_hub(int argc, char **argv);
int lf_cmd_unit(int argc, char **argv);
int lf_cmd_sim(int argc, char **argv);
int lf_cmd_demo(int argc, char **argv);
int lf_cmd_rebuild(int argc, char **argv);
int lf_cmd_events(int argc, char **argv);
int lf_cmd_bench(int argc, char **argv);

/* A declarative long-option parser: --name VALUE or --name=VALUE, flags
 * without a value for LF_OPT_FLAG. Unknown options and bad values print a
 * message naming the option to stderr and make lf_opts_parse return 2.
 * --help prints the usage line and every option's help, returns 1. */
enum lf_opt_kind { LF_OPT_STR, LF_OPT_INT, LF_OPT_DOUBLE, LF_OPT_FLAG };
typedef struct {
    const char *name; /* without the leading "--" */
    enum lf_opt_kind kind;
    void *target;     /* char const **, int64_t *, double *, bool * */
    const char *help;
} lf_opt;

/* Parses argv[1..argc). Positional arguments are collected into pos (up to
 * max_pos; more is a usage error); *npos receives their count. Returns 0 ok,
 * 1 when --help was printed, 2 on a usage error (already printed). */
int lf_opts_parse(const char *usage_line, const lf_opt *opts, int argc, char **argv,
                  char **pos, int max_pos, int *npos);

#endif
