/*
 * metrics.c — a tiny Prometheus registry (hub.h, lf_metric_*).
 *
 * Series are keyed by (name, labels) where labels is the text between the
 * braces, e.g. `route="units_list",status="200"` ("" or NULL for none);
 * callers pass label values that need no escaping (route names, numbers).
 * One mutex guards everything: updates are a hash lookup and an add, so
 * contention stays small next to the work of a request.
 * Rendering groups series by family (sorted by name) so the output is
 * valid for promtool: one HELP/TYPE per family, then its samples.
 */
#include "hub/hub.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum kind { K_COUNTER, K_GAUGE, K_HIST };

static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                 0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NB (sizeof buckets / sizeof buckets[0])

struct series {
    struct series *next; /* hash chain */
    char *name, *labels;
    enum kind kind;
    double value;        /* counter/gauge; histogram: sum */
    uint64_t count;      /* histogram */
    uint64_t bucket[NB]; /* histogram, not cumulative */
};

struct family {
    char *name, *type, *help;
};

#define NHASH 1024
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct series *table[NHASH];
static size_t nseries;
static struct family *fams;
static size_t nfams;

static unsigned hash2(const char *a, const char *b)
{
    unsigned h = 2166136261u;
    for (; *a; a++)
        h = (h ^ (unsigned char)*a) * 16777619u;
    h = (h ^ '{') * 16777619u;
    for (; *b; b++)
        h = (h ^ (unsigned char)*b) * 16777619u;
    return h % NHASH;
}

/* Finds or creates a series; mu held. */
static struct series *get(const char *name, const char *labels, enum kind k)
{
    if (!labels) labels = "";
    unsigned hv = hash2(name, labels);
    for (struct series *s = table[hv]; s; s = s->next)
        if (strcmp(s->name, name) == 0 && strcmp(s->labels, labels) == 0) return s;
    struct series *s = lf_xcalloc(1, sizeof *s);
    s->name = lf_strdup(name);
    s->labels = lf_strdup(labels);
    s->kind = k;
    s->next = table[hv];
    table[hv] = s;
    nseries++;
    return s;
}

void lf_metric_inc(const char *name, const char *labels, double v)
{
    pthread_mutex_lock(&mu);
    get(name, labels, K_COUNTER)->value += v;
    pthread_mutex_unlock(&mu);
}

void lf_metric_set(const char *name, const char *labels, double v)
{
    pthread_mutex_lock(&mu);
    get(name, labels, K_GAUGE)->value = v;
    pthread_mutex_unlock(&mu);
}

void lf_metric_observe(const char *name, const char *labels, double seconds)
{
    pthread_mutex_lock(&mu);
    struct series *s = get(name, labels, K_HIST);
    s->value += seconds;
    s->count++;
    for (size_t i = 0; i < NB; i++)
        if (seconds <= buckets[i]) {
            s->bucket[i]++;
            break;
        }
    pthread_mutex_unlock(&mu);
}

void lf_metric_describe(const char *name, const char *type, const char *help)
{
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < nfams; i++)
        if (strcmp(fams[i].name, name) == 0) goto out;
    fams = lf_xrealloc(fams, (nfams + 1) * sizeof *fams);
    fams[nfams].name = lf_strdup(name);
    fams[nfams].type = lf_strdup(type);
    fams[nfams].help = lf_strdup(help);
    nfams++;
out:
    pthread_mutex_unlock(&mu);
}

static int cmp_series(const void *a, const void *b)
{
    const struct series *x = *(struct series *const *)a, *y = *(struct series *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->labels, y->labels);
}

static void fmt_value(lf_buf *b, double v)
{
    if (isnan(v))
        lf_buf_printf(b, "NaN\n");
    else if (isinf(v))
        lf_buf_printf(b, v > 0 ? "+Inf\n" : "-Inf\n");
    else if (v == floor(v) && fabs(v) < 1e15)
        lf_buf_printf(b, "%.0f\n", v);
    else
        lf_buf_printf(b, "%.9g\n", v);
}

static void render_hist(lf_buf *b, const struct series *s)
{
    const char *sep = s->labels[0] ? "," : "";
    uint64_t cum = 0;
    for (size_t i = 0; i < NB; i++) {
        cum += s->bucket[i];
        lf_buf_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", s->name, s->labels, sep, buckets[i],
                      (unsigned long long)cum);
    }
    lf_buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", s->name, s->labels, sep,
                  (unsigned long long)s->count);
    if (s->labels[0])
        lf_buf_printf(b, "%s_sum{%s} ", s->name, s->labels);
    else
        lf_buf_printf(b, "%s_sum ", s->name);
    fmt_value(b, s->value);
    if (s->labels[0])
        lf_buf_printf(b, "%s_count{%s} %llu\n", s->name, s->labels, (unsigned long long)s->count);
    else
        lf_buf_printf(b, "%s_count %llu\n", s->name, (unsigned long long)s->count);
}

void lf_metrics_render(lf_buf *b)
{
    pthread_mutex_lock(&mu);
    struct series **all = lf_xmalloc((nseries + 1) * sizeof *all);
    size_t n = 0;
    for (size_t i = 0; i < NHASH; i++)
        for (struct series *s = table[i]; s; s = s->next)
            all[n++] = s;
    qsort(all, n, sizeof *all, cmp_series);
    static const char *kname[] = {"counter", "gauge", "histogram"};
    for (size_t i = 0; i < n; i++) {
        struct series *s = all[i];
        if (i == 0 || strcmp(all[i - 1]->name, s->name) != 0) {
            const struct family *f = NULL;
            for (size_t j = 0; j < nfams; j++)
                if (strcmp(fams[j].name, s->name) == 0) f = &fams[j];
            if (f && f->help[0]) lf_buf_printf(b, "# HELP %s %s\n", s->name, f->help);
            lf_buf_printf(b, "# TYPE %s %s\n", s->name, kname[s->kind]);
        }
        if (s->kind == K_HIST) {
            render_hist(b, s);
            continue;
        }
        if (s->labels[0])
            lf_buf_printf(b, "%s{%s} ", s->name, s->labels);
        else
            lf_buf_printf(b, "%s ", s->name);
        fmt_value(b, s->value);
    }
    free(all);
    pthread_mutex_unlock(&mu);
}
