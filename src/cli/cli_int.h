/*
 * cli_int.h — internals shared by the option parser (opts.c) and the
 * configuration loader (config.c): converting one textual value into an
 * option's type, and the parser variant that records which options the
 * command line set.
 */
#ifndef LF_CLI_INT_H
#define LF_CLI_INT_H

#include "cli.h"

#include <stddef.h>

/* One option's value, whatever its kind. */
typedef union {
    const char *s; /* LF_OPT_STR, LF_OPT_SECRET: borrowed from the text */
    int64_t i;
    double d;
    bool b;
} lf_opt_value;

/* Converts text into o's type. Flags take true|false|yes|no|on|off|1|0
 * (lf_opts_parse itself never calls this for a flag: its presence is true).
 * Returns 0, or -1 with a short reason ("wants an integer") in why. */
int lf_opt_convert(const lf_opt *o, const char *text, lf_opt_value *out, char *why, size_t cap);

/* Stores v into o->target. */
void lf_opt_store(const lf_opt *o, const lf_opt_value *v);

/* lf_opts_parse with two additions: seen (may be NULL) has one slot per
 * option and gets true for each option given on the command line; footer
 * (may be NULL) is printed after the options by --help. */
int lf_opts_parse_ex(const char *usage_line, const lf_opt *opts, int argc, char **argv, char **pos,
                     int max_pos, int *npos, bool *seen, const char *footer);

#endif
