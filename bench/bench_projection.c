/*
 * bench_projection.c — 'lockerfleet bench projection': projection rebuild
 * throughput (target: >= 1,000,000 events/s per projection).
 *   lockerfleet bench projection --data DIR [--events N] [--units U] [--only NAME]
 * Fills sqlite:DIR/events.db (if it holds fewer than N events) with a mix
 * like a fleet's: per unit a registration, then its log in batches of
 * 1000 (rentals, payments, doors, an occasional hardware error), and
 * confirmed reservations; then rebuilds every projection (or --only one)
 * with the same code as 'lockerfleet rebuild' and prints events/s each.
 */
#include "bench_projection.h"
#include "cli/cli.h"
#include "projection/projection.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 1000

static int fill(lf_store *st, int64_t target, int64_t units)
{
    int rc = 0;
    int64_t head = 0, t0 = lf_mono_us();
    lf_store_head(st, &head);
    if (head >= target) return 0;
    lf_event_in *evs = lf_xcalloc(BATCH, sizeof *evs);
    char **datas = lf_xcalloc(BATCH, sizeof *datas);
    int64_t per_unit = (target - head) / units + 1, written = head;
    for (int64_t u = 0; u < units && written < target && rc == 0; u++) {
        char name[32], stream[48];
        snprintf(name, sizeof name, "bench-%05lld", (long long)u);
        snprintf(stream, sizeof stream, "unit-%s", name);
        char *reg = lf_asprintf("{\"name\":\"%s\",\"display_name\":\"Bench %lld\",\"url\":\"\","
                                "\"presence\":\"heartbeat\",\"uplink\":\"push\","
                                "\"heartbeat_interval_ms\":10000,\"lockers\":[{\"id\":\"A01\","
                                "\"size\":\"S\"},{\"id\":\"A02\",\"size\":\"M\"},{\"id\":\"A03\","
                                "\"size\":\"L\"}],\"allotment\":[],\"shard\":\"0\","
                                "\"token_hash\":\"%064lld\"}",
                                name, (long long)u, (long long)u);
        lf_event_in r = {.type = "UnitRegistered", .data = reg};
        rc = lf_store_append(st, stream, LF_EXPECT_ANY, &r, 1, NULL);
        free(reg);
        written++;
        snprintf(stream, sizeof stream, "unitlog-%s", name);
        int64_t seq = 0;
        lf_store_stream_version(st, stream, &seq);
        for (int64_t k = 0; k < per_unit && written < target && rc == 0; k += BATCH) {
            size_t n = 0;
            for (; n < BATCH && k + (int64_t)n < per_unit && written + (int64_t)n < target; n++) {
                int64_t i = seq + (int64_t)n;
                static const char *types[] = {"RentalStarted", "PaymentStarted", "PaymentSucceeded",
                                              "DoorOpened",    "DoorClosed",     "RentalEnded",
                                              "DoorOpened",    "DoorClosed"};
                const char *t = types[i % 8];
                if (i % 97 == 0) t = "HardwareError";
                if (i % 97 == 1) t = "HardwareOnline";
                free(datas[n]);
                if (strcmp(t, "PaymentSucceeded") == 0 || strcmp(t, "PaymentStarted") == 0)
                    datas[n] = lf_asprintf("{\"rental_id\":\"r%lld\",\"amount_cents\":%lld,"
                                           "\"currency\":\"EUR\"}",
                                           (long long)i / 8, (long long)(200 + i % 500));
                else if (strncmp(t, "Hardware", 8) == 0)
                    datas[n] =
                        lf_asprintf("{\"component\":\"door-controller\",\"message\":\"jam\"}");
                else
                    datas[n] = lf_asprintf("{\"rental_id\":\"r%lld\",\"locker\":\"A0%lld\","
                                           "\"reason\":\"rental\"}",
                                           (long long)i / 8, (long long)(1 + i % 3));
                evs[n] = (lf_event_in){
                    .type = t, .data = datas[n], .time_ms = 1790000000000LL + i * 60000};
            }
            rc = lf_store_append(st, stream, seq ? seq : LF_EXPECT_NO_STREAM, evs, n, NULL);
            seq += (int64_t)n;
            written += (int64_t)n;
        }
        if (u % 100 == 0) {
            char bstream[48];
            snprintf(bstream, sizeof bstream, "bookings-%s", name);
            lf_event_in b = {.type = "ReservationConfirmed",
                             .data = "{\"reservation_id\":\"x\",\"amount_cents\":900}"};
            if (rc == 0) rc = lf_store_append(st, bstream, LF_EXPECT_ANY, &b, 1, NULL);
            written++;
        }
    }
    for (size_t i = 0; i < BATCH; i++)
        free(datas[i]);
    free(datas);
    free(evs);
    double s = (double)(lf_mono_us() - t0) / 1e6;
    lf_store_head(st, &head);
    fprintf(stderr, "filled the store to %lld events in %.1f s (%.0f events/s)\n", (long long)head,
            s, (double)(written) / s);
    if (rc) fprintf(stderr, "fill: %s: %s\n", lf_strerror(rc), lf_err_get());
    return rc;
}

int lf_bench_projection(int argc, char **argv)
{
    const char *data = NULL, *only = NULL;
    int64_t events = 2000000, units = 1000;
    lf_opt opts[] = {
        {"data", LF_OPT_STR, &data, "directory for the store and projection files (required)"},
        {"events", LF_OPT_INT, &events, "events in the store (default 2,000,000)"},
        {"units", LF_OPT_INT, &units, "units the events are spread over (default 1000)"},
        {"only", LF_OPT_STR, &only, "rebuild only this projection"},
        {0},
    };
    int rc = lf_opts_parse("lockerfleet bench projection --data DIR [--events N] [--units U]", opts,
                           argc, argv, NULL, 0, NULL);
    if (rc) return rc == 1 ? 0 : 2;
    if (!data || events < 1 || units < 1) {
        fprintf(stderr, "lockerfleet bench projection: --data is required; N, U >= 1\n");
        return 2;
    }
    char *url = lf_asprintf("sqlite:%s/events.db", data);
    lf_store *st = NULL;
    char err[512];
    int status = 1;
    if (lf_store_open(url, &st, err, sizeof err)) {
        fprintf(stderr, "lockerfleet bench projection: %s\n", err);
        goto out;
    }
    if (fill(st, events, units)) goto out;
    size_t n;
    const lf_projection_def *const *all = lf_projection_all(&n);
    for (size_t i = 0; i < n; i++) {
        if (only && strcmp(only, all[i]->name) != 0) continue;
        if (lf_projection_rebuild_offline(st, data, all[i])) {
            fprintf(stderr, "rebuild %s: %s\n", all[i]->name, lf_err_get());
            goto out;
        }
    }
    status = 0;
out:
    lf_store_close(st);
    free(url);
    return status;
}
