/* opts.c — the long-option parser shared by every subcommand (cli.h). */
#include "cli_int.h"

#include "core/lf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_help(const char *usage_line, const lf_opt *opts, const char *footer)
{
    printf("usage: %s\n\noptions:\n", usage_line);
    for (const lf_opt *o = opts; o->name; o++) {
        const char *arg = o->kind == LF_OPT_FLAG                              ? ""
                          : o->kind == LF_OPT_STR || o->kind == LF_OPT_SECRET ? " VALUE"
                                                                              : " N";
        char left[64];
        snprintf(left, sizeof left, "--%s%s", o->name, arg);
        printf("  %-28s %s\n", left, o->help);
    }
    printf("  %-28s %s\n", "--help", "show this help");
    if (footer) printf("\n%s", footer);
}

int lf_opt_convert(const lf_opt *o, const char *text, lf_opt_value *out, char *why, size_t cap)
{
    switch (o->kind) {
    case LF_OPT_STR:
    case LF_OPT_SECRET:
        out->s = text;
        return 0;
    case LF_OPT_INT:
        if (lf_parse_i64(text, &out->i) == 0) return 0;
        snprintf(why, cap, "wants an integer");
        return -1;
    case LF_OPT_DOUBLE: {
        char *end;
        errno = 0;
        out->d = strtod(text, &end);
        if (!errno && !*end && end != text) return 0;
        snprintf(why, cap, "wants a number");
        return -1;
    }
    case LF_OPT_FLAG: {
        static const char *yes[] = {"true", "yes", "on", "1"}, *no[] = {"false", "no", "off", "0"};
        for (size_t k = 0; k < sizeof yes / sizeof *yes; k++) {
            if (strcmp(text, yes[k]) == 0) {
                out->b = true;
                return 0;
            }
            if (strcmp(text, no[k]) == 0) {
                out->b = false;
                return 0;
            }
        }
        snprintf(why, cap, "wants true or false");
        return -1;
    }
    }
    snprintf(why, cap, "has an unknown kind");
    return -1;
}

void lf_opt_store(const lf_opt *o, const lf_opt_value *v)
{
    switch (o->kind) {
    case LF_OPT_STR:
    case LF_OPT_SECRET:
        *(const char **)o->target = v->s;
        break;
    case LF_OPT_INT:
        *(int64_t *)o->target = v->i;
        break;
    case LF_OPT_DOUBLE:
        *(double *)o->target = v->d;
        break;
    case LF_OPT_FLAG:
        *(bool *)o->target = v->b;
        break;
    }
}

int lf_opts_parse_ex(const char *usage_line, const lf_opt *opts, int argc, char **argv, char **pos,
                     int max_pos, int *npos, bool *seen, const char *footer)
{
    int np = 0;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_help(usage_line, opts, footer);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            if (np >= max_pos) {
                fprintf(stderr, "lockerfleet: unexpected argument '%s'\nusage: %s\n", a,
                        usage_line);
                return 2;
            }
            pos[np++] = a;
            continue;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const lf_opt *o = NULL;
        for (const lf_opt *p = opts; p->name; p++)
            if (strlen(p->name) == nlen && strncmp(p->name, name, nlen) == 0) o = p;
        if (!o) {
            fprintf(stderr, "lockerfleet: unknown option '--%.*s'\nusage: %s\n", (int)nlen, name,
                    usage_line);
            return 2;
        }
        if (seen) seen[o - opts] = true;
        if (o->kind == LF_OPT_FLAG) {
            if (eq) {
                fprintf(stderr, "lockerfleet: option '--%s' takes no value\n", o->name);
                return 2;
            }
            *(bool *)o->target = true;
            continue;
        }
        const char *val = eq ? eq + 1 : NULL;
        if (!val) {
            if (i + 1 >= argc) {
                fprintf(stderr, "lockerfleet: option '--%s' needs a value\n", o->name);
                return 2;
            }
            val = argv[++i];
        }
        lf_opt_value v;
        char why[64];
        if (lf_opt_convert(o, val, &v, why, sizeof why)) {
            fprintf(stderr, "lockerfleet: option '--%s' %s, not '%s'\n", o->name, why, val);
            return 2;
        }
        lf_opt_store(o, &v);
    }
    if (npos) *npos = np;
    return 0;
}

int lf_opts_parse(const char *usage_line, const lf_opt *opts, int argc, char **argv, char **pos,
                  int max_pos, int *npos)
{
    return lf_opts_parse_ex(usage_line, opts, argc, argv, pos, max_pos, npos, NULL, NULL);
}
