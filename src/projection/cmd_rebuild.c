/*
 * cmd_rebuild.c — 'lockerfleet rebuild --data DIR [--store URL] NAME':
 * replays the log into a fresh file of projection NAME (resuming an
 * interrupted rebuild of the same version), then swaps it in and prints
 * the events/s and a digest of the result. Run it with the hub stopped;
 * while the hub runs, use POST /v1/projections/NAME/rebuild instead.
 * NAME "all" rebuilds every projection in turn.
 */
#include "cli/cli.h"
#include "projection/projection.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int lf_cmd_rebuild(int argc, char **argv)
{
    const char *data = "./data", *url = NULL;
    lf_opt opts[] = {
        {"data", LF_OPT_STR, &data, "data directory (projections at DIR/proj-NAME.*)"},
        {"store", LF_OPT_STR, &url, "store URL (default sqlite:DATA/events.db)"},
        {0},
    };
    char *pos[1];
    int npos = 0, status = 2;
    int rc = lf_opts_parse("lockerfleet rebuild [--data DIR] [--store URL] NAME|all", opts, argc,
                           argv, pos, 1, &npos);
    if (rc) return rc == 1 ? 0 : 2;
    size_t n;
    const lf_projection_def *const *all = lf_projection_all(&n);
    if (npos != 1) {
        fprintf(stderr, "lockerfleet rebuild: name a projection (or 'all'):");
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, " %s", all[i]->name);
        fprintf(stderr, "\n");
        return 2;
    }
    int found = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(pos[0], "all") == 0 || strcmp(pos[0], all[i]->name) == 0) found = 1;
    if (!found) {
        fprintf(stderr, "lockerfleet rebuild: no projection named '%s'\n", pos[0]);
        return 2;
    }
    char *owned = NULL;
    if (!url) url = owned = lf_asprintf("sqlite:%s/events.db", data);
    lf_store *st = NULL;
    char err[512];
    status = 1;
    if (lf_store_open(url, &st, err, sizeof err)) {
        fprintf(stderr, "lockerfleet rebuild: %s\n", err);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(pos[0], "all") != 0 && strcmp(pos[0], all[i]->name) != 0) continue;
        rc = lf_projection_rebuild_offline(st, data, all[i]);
        if (rc) {
            fprintf(stderr, "lockerfleet rebuild: %s: %s: %s\n", all[i]->name, lf_strerror(rc),
                    lf_err_get());
            goto out;
        }
    }
    status = 0;
out:
    lf_store_close(st);
    free(owned);
    return status;
}
