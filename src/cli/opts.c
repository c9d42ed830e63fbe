/* opts.c — the long-option parser shared by every subcommand (cli.h). */
#include "cli.h"

#include "core/lf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_help(const char *usage_line, const lf_opt *opts)
{
    printf("usage: %s\n\noptions:\n", usage_line);
    for (const lf_opt *o = opts; o->name; o++) {
        const char *arg = o->kind == LF_OPT_FLAG ? "" : o->kind == LF_OPT_STR ? " VALUE" : " N";
        char left[64];
        snprintf(left, sizeof left, "--%s%s", o->name, arg);
        printf("  %-28s %s\n", left, o->help);
    }
    printf("  %-28s %s\n", "--help", "show this help");
}

int lf_opts_parse(const char *usage_line, const lf_opt *opts, int argc, char **argv, char **pos,
                  int max_pos, int *npos)
{
    int np = 0;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_help(usage_line, opts);
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
        if (o->kind == LF_OPT_STR) {
            *(const char **)o->target = val;
        } else if (o->kind == LF_OPT_INT) {
            int64_t v;
            if (lf_parse_i64(val, &v) != 0) {
                fprintf(stderr, "lockerfleet: option '--%s' wants an integer, not '%s'\n", o->name,
                        val);
                return 2;
            }
            *(int64_t *)o->target = v;
        } else {
            char *end;
            errno = 0;
            double d = strtod(val, &end);
            if (errno || *end || end == val) {
                fprintf(stderr, "lockerfleet: option '--%s' wants a number, not '%s'\n", o->name,
                        val);
                return 2;
            }
            *(double *)o->target = d;
        }
    }
    if (npos) *npos = np;
    return 0;
}
