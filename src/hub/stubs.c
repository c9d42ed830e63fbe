/*
 * stubs.c — weak placeholder definitions of the symbols other hub modules
 * provide (reservations, fleet, two projections), so the binary links
 * whatever has landed. A strong definition in the owning module replaces
 * each of them at link time. Once every module has landed this file can
 * go.
 */
#include "hub/hub.h"
#include "projection/projection.h"

#include <string.h>

#define LF_WEAK __attribute__((weak))

static const lf_route no_routes[] = {{0}};

LF_WEAK const lf_route *lf_api_reservation_routes(void)
{
    return no_routes;
}

LF_WEAK int lf_booking_start(lf_hub *h)
{
    (void)h;
    return 0;
}

LF_WEAK void lf_booking_stop(lf_hub *h)
{
    (void)h;
}

LF_WEAK const lf_route *lf_fleet_routes(void)
{
    return no_routes;
}

LF_WEAK int lf_fleet_start(lf_hub *h)
{
    (void)h;
    return 0;
}

LF_WEAK void lf_fleet_stop(lf_hub *h)
{
    (void)h;
}

LF_WEAK int lf_fleet_presence(lf_hub *h, const char *unit, lf_presence_state *out)
{
    (void)h;
    (void)unit;
    memset(out, 0, sizeof *out);
    out->last_response_ms = -1;
    return LF_ENOTFOUND;
}

LF_WEAK void lf_fleet_unit_added(lf_hub *h, const char *unit)
{
    (void)h;
    (void)unit;
}

static int stub_apply(sqlite3 *db, const lf_event *ev, void *ctx)
{
    (void)db;
    (void)ev;
    (void)ctx;
    return 0;
}

LF_WEAK const lf_projection_def lf_proj_availability = {
    "availability", 0, "CREATE TABLE IF NOT EXISTS stub(x INTEGER);", stub_apply, NULL, NULL};
LF_WEAK const lf_projection_def lf_proj_reservations = {
    "reservations", 0, "CREATE TABLE IF NOT EXISTS stub(x INTEGER);", stub_apply, NULL, NULL};
