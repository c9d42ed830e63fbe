/*
 * config.c — configuration the way daemons take it: an INI file (parsed by
 * libinih), LOCKERFLEET_* environment variables and flags, all from the one
 * lf_opt table a command already has (cli.h). Precedence flag > env > file
 * > default is had by order: the command line is parsed first and marks
 * what it set; the file, then the environment, fill only the rest. Every
 * value from every source is still converted and checked, so a bad value
 * is an error even when a stronger source overrides it.
 *
 * Messages name where a value came from ("FILE:LINE", "LOCKERFLEET_X",
 * "--x"); secrets (LF_OPT_SECRET) never appear in them nor in
 * --print-config.
 */
#include "cli_int.h"

#include "core/lf.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lf_config {
    const lf_config_spec *spec;
    size_t n;                   /* options in spec->opts */
    enum lf_config_source *src; /* [n] */
    char **where;               /* [n] owned, NULL = default */
    char **owned;               /* string values from file and environment */
    size_t nowned, capowned;
    char *path; /* the config file, or NULL */
};

/* A line longer than this is an error (inih's own buffer is 200 bytes). */
#define LINE_MAX_LEN 199

typedef struct {
    lf_config *c;
    const bool *seen; /* options the command line set */
    FILE *f;
    int line;   /* line the reader last returned */
    int errors; /* errors printed so far */
    int bad_section_line;
} file_ctx;

static void config_error(const lf_config *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void config_error(const lf_config *c, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "lockerfleet %s: %s\n", c->spec->command, msg);
}

static char *own(lf_config *c, const char *s)
{
    if (c->nowned == c->capowned) {
        c->capowned = c->capowned ? 2 * c->capowned : 16;
        c->owned = lf_xrealloc(c->owned, c->capowned * sizeof *c->owned);
    }
    return c->owned[c->nowned++] = lf_strdup(s);
}

/* The option named key ('_' and '-' alike), or -1. */
static long find_opt(const lf_config *c, const char *key)
{
    for (size_t i = 0; i < c->n; i++) {
        const char *a = c->spec->opts[i].name, *b = key;
        while (*a && (*a == *b || (*a == '-' && *b == '_')))
            a++, b++;
        if (!*a && !*b) return (long)i;
    }
    return -1;
}

/* LOCKERFLEET_ + name upper-cased, '-' -> '_'. */
static void env_name(const char *name, char *buf, size_t cap)
{
    int k = snprintf(buf, cap, "LOCKERFLEET_");
    for (const char *p = name; *p && (size_t)k + 1 < cap; p++)
        buf[k++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    buf[k] = '\0';
}

/* Converts and checks text for option i; on success stores it unless the
 * command line set it. Returns 0, or -1 after printing "WHERE: ..." */
static int apply(lf_config *c, size_t i, const char *text, bool overridden,
                 enum lf_config_source src, const char *where)
{
    const lf_opt *o = &c->spec->opts[i];
    lf_opt_value v;
    char why[64];
    const char *shown = o->kind == LF_OPT_SECRET ? "(secret)" : text;
    if (lf_opt_convert(o, text, &v, why, sizeof why)) {
        config_error(c, "%s: %s %s, not '%s'", where, o->name, why, shown);
        return -1;
    }
    const char *bad = c->spec->check ? c->spec->check(o, &v) : NULL;
    if (bad) {
        config_error(c, "%s: %s '%s': %s", where, o->name, shown, bad);
        return -1;
    }
    if (overridden) return 0;
    if (o->kind == LF_OPT_STR || o->kind == LF_OPT_SECRET) v.s = own(c, text);
    lf_opt_store(o, &v);
    c->src[i] = src;
    free(c->where[i]);
    c->where[i] = lf_strdup(where);
    return 0;
}

/* fgets for inih that counts lines and refuses overlong ones (instead of
 * letting inih split them into several lines with wrong numbers). */
static char *read_line(char *str, int num, void *stream)
{
    file_ctx *fc = stream;
    if (!fgets(str, num, fc->f)) return NULL;
    fc->line++;
    size_t len = strlen(str);
    if (len > LINE_MAX_LEN || (len == (size_t)num - 1 && str[len - 1] != '\n')) {
        int ch;
        if (str[len - 1] != '\n')
            while ((ch = fgetc(fc->f)) != EOF && ch != '\n') {
            }
        config_error(fc->c, "%s:%d: line longer than %d characters", fc->c->path, fc->line,
                     LINE_MAX_LEN);
        fc->errors++;
        str[0] = '\0';
    }
    return str;
}

static int on_key(void *user, const char *section, const char *name, const char *value)
{
    file_ctx *fc = user;
    lf_config *c = fc->c;
    char where[1100];
    snprintf(where, sizeof where, "%s:%d", c->path, fc->line);
    if (strcmp(section, c->spec->command) != 0) {
        if (fc->bad_section_line) return 1; /* said once per file */
        fc->bad_section_line = fc->line;
        fc->errors++;
        if (!section[0])
            config_error(c, "%s: key '%s' outside a section: put it under [%s]", where, name,
                         c->spec->command);
        else
            config_error(c, "%s: unknown section [%s]: 'lockerfleet %s' reads [%s]", where, section,
                         c->spec->command, c->spec->command);
        return 1;
    }
    long i = find_opt(c, name);
    if (i < 0) {
        config_error(c, "%s: unknown key '%s' in [%s] (see 'lockerfleet %s --help')", where, name,
                     section, c->spec->command);
        fc->errors++;
        return 1;
    }
    if (apply(c, (size_t)i, value, fc->seen[i], LF_CONFIG_FILE, where)) fc->errors++;
    return 1; /* go on: report every bad line, not just the first */
}

static int load_file(lf_config *c, const bool *seen)
{
    file_ctx fc = {.c = c, .seen = seen};
    fc.f = fopen(c->path, "r");
    if (!fc.f) {
        config_error(c, "cannot read config file %s: %s", c->path, strerror(errno));
        return 1;
    }
    int rc = ini_parse_stream(read_line, &fc, on_key, &fc);
    fclose(fc.f);
    if (rc > 0) {
        config_error(c, "%s:%d: syntax error (want 'key = value', '[section]' or a ; comment)",
                     c->path, rc);
        fc.errors++;
    } else if (rc < 0) {
        config_error(c, "cannot parse %s: out of memory", c->path);
        fc.errors++;
    }
    return fc.errors;
}

void lf_config_free(lf_config *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->n; i++)
        free(c->where[i]);
    for (size_t i = 0; i < c->nowned; i++)
        free(c->owned[i]);
    free(c->owned);
    free(c->where);
    free(c->src);
    free(c->path);
    free(c);
}

int lf_config_load(const lf_config_spec *spec, int argc, char **argv, lf_config **out)
{
    *out = NULL;
    lf_config *c = lf_xcalloc(1, sizeof *c);
    c->spec = spec;
    while (spec->opts[c->n].name)
        c->n++;
    c->src = lf_xcalloc(c->n, sizeof *c->src);
    c->where = lf_xcalloc(c->n, sizeof *c->where);
    /* The command's table plus --config and --print-config. */
    lf_opt *ext = lf_xcalloc(c->n + 3, sizeof *ext);
    bool *seen = lf_xcalloc(c->n + 3, sizeof *seen);
    const char *path = NULL;
    bool print = false;
    memcpy(ext, spec->opts, c->n * sizeof *ext);
    ext[c->n] = (lf_opt){"config", LF_OPT_STR, &path,
                         "read settings from this INI file (or env LOCKERFLEET_CONFIG)"};
    ext[c->n + 1] = (lf_opt){"print-config", LF_OPT_FLAG, &print,
                             "print the effective settings and their sources, then exit"};
    char footer[512];
    snprintf(footer, sizeof footer,
             "Every option NAME can also be set as 'NAME = VALUE' in the [%s] section of the\n"
             "--config file, or by the environment variable LOCKERFLEET_NAME (upper case,\n"
             "'-' as '_'). Precedence: flag > environment > file > default.\n",
             spec->command);
    int errors = 0;
    int rc = lf_opts_parse_ex(spec->usage_line, ext, argc, argv, NULL, 0, NULL, seen, footer);
    if (rc) goto out;
    if (!path) path = getenv("LOCKERFLEET_CONFIG");
    if (path && *path) {
        c->path = lf_strdup(path);
        errors += load_file(c, seen);
    }
    for (size_t i = 0; i < c->n; i++) {
        char env[128];
        env_name(spec->opts[i].name, env, sizeof env);
        const char *v = getenv(env);
        if (v && apply(c, i, v, seen[i], LF_CONFIG_ENV, env)) errors++;
    }
    for (size_t i = 0; i < c->n; i++) {
        if (!seen[i]) continue;
        const lf_opt *o = &spec->opts[i];
        char flag[128];
        snprintf(flag, sizeof flag, "--%s", o->name);
        c->src[i] = LF_CONFIG_FLAG;
        free(c->where[i]);
        c->where[i] = lf_strdup(flag);
        const char *bad = spec->check ? spec->check(o, o->target) : NULL;
        if (bad) {
            if (o->kind == LF_OPT_STR)
                config_error(c, "%s '%s': %s", flag, *(const char *const *)o->target, bad);
            else
                config_error(c, "%s: %s", flag, bad);
            errors++;
        }
    }
    if (errors) {
        rc = 2;
        goto out;
    }
    if (print) {
        lf_config_print(c, stdout);
        fflush(stdout);
        rc = 1;
        goto out;
    }
    *out = c;
    c = NULL;
out:
    free(ext);
    free(seen);
    lf_config_free(c);
    return rc;
}

enum lf_config_source lf_config_source(const lf_config *c, const char *name, const char **where)
{
    long i = find_opt(c, name);
    if (i < 0 || !c->where[i]) {
        if (where) *where = "default";
        return LF_CONFIG_DEFAULT;
    }
    if (where) *where = c->where[i];
    return c->src[i];
}

void lf_config_print(const lf_config *c, FILE *f)
{
    static const char *kinds[] = {"default", "file", "env", "flag"};
    fprintf(f, "; lockerfleet %s: effective settings (flag > env > file > default)\n",
            c->spec->command);
    fprintf(f, "; config file: %s\n[%s]\n", c->path ? c->path : "(none)", c->spec->command);
    for (size_t i = 0; i < c->n; i++) {
        const lf_opt *o = &c->spec->opts[i];
        char val[512], src[1200];
        bool unset = false;
        switch (o->kind) {
        case LF_OPT_STR:
        case LF_OPT_SECRET: {
            const char *s = *(const char *const *)o->target;
            unset = !s;
            snprintf(val, sizeof val, "%s", unset ? "" : o->kind == LF_OPT_SECRET ? "********" : s);
            break;
        }
        case LF_OPT_INT:
            snprintf(val, sizeof val, "%lld", (long long)*(const int64_t *)o->target);
            break;
        case LF_OPT_DOUBLE:
            snprintf(val, sizeof val, "%g", *(const double *)o->target);
            break;
        case LF_OPT_FLAG:
            snprintf(val, sizeof val, "%s", *(const bool *)o->target ? "true" : "false");
            break;
        }
        if (c->where[i])
            snprintf(src, sizeof src, "%s %s", kinds[c->src[i]], c->where[i]);
        else
            snprintf(src, sizeof src, "default%s", unset ? " (unset)" : "");
        if (o->kind == LF_OPT_SECRET && !unset) strcat(src, ", masked");
        if (unset)
            fprintf(f, "; %-20s = %-28s ; %s\n", o->name, "", src);
        else
            fprintf(f, "%-22s = %-28s ; %s\n", o->name, val, src);
    }
}
