/*
 * cli.h — the subcommands of the lockerfleet binary and the small option
 * parser they share. Each lf_cmd_X gets argv[0] = "X" and returns the exit
 * status (0 ok, 1 runtime failure, 2 usage error).
 */
#ifndef LF_CLI_H
#define LF_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

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
/* LF_OPT_SECRET is a string that is never shown (tokens, keys):
 * --print-config masks it. */
enum lf_opt_kind { LF_OPT_STR, LF_OPT_INT, LF_OPT_DOUBLE, LF_OPT_FLAG, LF_OPT_SECRET };
typedef struct {
    const char *name; /* without the leading "--" */
    enum lf_opt_kind kind;
    void *target; /* char const ** (STR, SECRET), int64_t *, double *, bool * */
    const char *help;
} lf_opt;

/* Parses argv[1..argc). Positional arguments are collected into pos (up to
 * max_pos; more is a usage error); *npos receives their count. Returns 0 ok,
 * 1 when --help was printed, 2 on a usage error (already printed). */
int lf_opts_parse(const char *usage_line, const lf_opt *opts, int argc, char **argv, char **pos,
                  int max_pos, int *npos);

/* ---- configuration: file, environment, flags (config.c) -------------
 *
 * A command that opts in (hub, unit, sim) hands its lf_opt table to
 * lf_config_load instead of lf_opts_parse. Every option NAME is then also
 *   - a key NAME (or NAME with '_' for '-') in the section [COMMAND] of the
 *     INI file given by --config FILE or the env LOCKERFLEET_CONFIG, and
 *   - the environment variable LOCKERFLEET_NAME (upper case, '-' -> '_'),
 * with precedence flag > environment > file > the target's initial value.
 * --print-config prints the effective values and where each came from
 * (LF_OPT_SECRET values masked) and makes lf_config_load return 1.
 * Unknown sections and keys, syntax errors and bad values (by type, or
 * refused by spec->check) are errors naming the file and line, the
 * variable or the flag; lf_config_load prints them and returns 2. Unknown
 * LOCKERFLEET_* variables are ignored: hub and unit share the prefix. */
typedef struct lf_config lf_config;

/* Checks one value beyond its type. value points at a const char *,
 * int64_t, double or bool as o->kind says. Returns NULL if the value is
 * good, else a static reason ("must be 1..4"). */
typedef const char *(*lf_config_check_fn)(const lf_opt *o, const void *value);

typedef struct {
    const char *command; /* "hub": section [hub], messages "lockerfleet hub: ..." */
    const char *usage_line;
    const lf_opt *opts;       /* as for lf_opts_parse; --config, --print-config added */
    lf_config_check_fn check; /* may be NULL */
} lf_config_spec;

enum lf_config_source { LF_CONFIG_DEFAULT, LF_CONFIG_FILE, LF_CONFIG_ENV, LF_CONFIG_FLAG };

/* Fills the targets of spec->opts (no positional arguments). Returns 0 with
 * *out set, 1 when --help or --print-config was printed (exit 0), 2 on an
 * error (already printed to stderr; exit 2); *out is NULL unless 0.
 * Strings stored into STR/SECRET targets from the file or the environment
 * belong to *out: keep it until the targets are no longer used, then
 * lf_config_free it. spec and its table must outlive *out too. */
int lf_config_load(const lf_config_spec *spec, int argc, char **argv, lf_config **out);
void lf_config_free(lf_config *c);

/* Where option name's effective value came from, and a description:
 * "hub.ini:12", "LOCKERFLEET_LISTEN", "--listen" or "default". Unknown
 * name: LF_CONFIG_DEFAULT, "default". The string lives as long as c. */
enum lf_config_source lf_config_source(const lf_config *c, const char *name, const char **where);

/* Writes the effective configuration as INI text, one key per line with
 * its source as a comment, secrets masked (what --print-config shows). */
void lf_config_print(const lf_config *c, FILE *f);

#endif
