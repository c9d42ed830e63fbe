/*
 * cmd_events.c — 'lockerfleet events': read the event log, as JSON lines.
 *   lockerfleet events [--data DIR | --store URL] [--after POS] [--limit N]
 *                      [--stream NAME] [--follow]
 */
#include "cli/cli.h"
#include "store/store.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t stop_flag;
static void on_sig(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void print_event(const lf_event *e)
{
    char ts[LF_TIME_LEN];
    json_t *o = json_object();
    json_object_set_new(o, "position", json_integer(e->position));
    json_object_set_new(o, "stream", json_string(e->stream));
    json_object_set_new(o, "version", json_integer(e->version));
    json_object_set_new(o, "id", json_string(e->id));
    json_object_set_new(o, "type", json_string(e->type));
    json_object_set_new(o, "time", json_string(lf_time_format(e->time_ms, ts)));
    json_object_set_new(o, "data", json_loads(e->data, JSON_ALLOW_NUL, NULL));
    json_object_set_new(o, "meta", json_loads(e->meta, JSON_ALLOW_NUL, NULL));
    char *s = json_dumps(o, JSON_COMPACT);
    puts(s);
    free(s);
    json_decref(o);
}

int lf_cmd_events(int argc, char **argv)
{
    const char *data = "./data", *url = NULL, *stream = NULL;
    int64_t after = 0, limit = 100;
    bool follow = false;
    lf_opt opts[] = {
        {"data", LF_OPT_STR, &data, "data directory (store at DIR/events.db)"},
        {"store", LF_OPT_STR, &url, "store URL (default sqlite:DATA/events.db)"},
        {"after", LF_OPT_INT, &after, "print events after this position (default 0)"},
        {"limit", LF_OPT_INT, &limit, "at most this many events (default 100; 0 = all)"},
        {"stream", LF_OPT_STR, &stream, "only this stream (from its version 1)"},
        {"follow", LF_OPT_FLAG, &follow, "keep printing new events until Ctrl-C"},
        {0},
    };
    int rc = lf_opts_parse("lockerfleet events [--data DIR|--store URL] [--after POS] [--limit N] "
                           "[--stream NAME] [--follow]",
                           opts, argc, argv, NULL, 0, NULL);
    if (rc) return rc == 1 ? 0 : 2;
    if (after < 0 || limit < 0) {
        fprintf(stderr, "lockerfleet events: --after and --limit must be >= 0\n");
        return 2;
    }
    char *owned = NULL;
    if (!url) url = owned = lf_asprintf("sqlite:%s/events.db", data);
    lf_store *st;
    char err[512];
    rc = lf_store_open(url, &st, err, sizeof err);
    free(owned);
    if (rc) {
        fprintf(stderr, "lockerfleet events: %s\n", err);
        return 1;
    }
    signal(SIGINT, on_sig);
    signal(SIGTERM, on_sig);
    int64_t printed = 0, pos = after, ver = 1;
    lf_event_list l;
    lf_event_list_init(&l);
    while (!stop_flag) {
        size_t want = 1000;
        if (limit && (int64_t)want > limit - printed) want = (size_t)(limit - printed);
        if (want == 0) break;
        rc = stream ? lf_store_read_stream(st, stream, ver, want, &l)
                    : lf_store_read_all(st, pos, want, &l);
        if (rc) {
            fprintf(stderr, "lockerfleet events: %s: %s\n", lf_strerror(rc), lf_err_get());
            break;
        }
        for (size_t i = 0; i < l.n; i++) {
            print_event(&l.ev[i]);
            pos = l.ev[i].position;
            ver = l.ev[i].version + 1;
        }
        printed += (int64_t)l.n;
        size_t got = l.n;
        lf_event_list_free(&l);
        if (got == 0) {
            if (!follow) break;
            fflush(stdout);
            lf_store_wait(st, pos, 500);
        }
    }
    lf_store_close(st);
    return rc ? 1 : 0;
}
