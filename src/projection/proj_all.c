/*
 * proj_all.c — the list of the hub's projections, and helpers the
 * projection files share (proj_util.h).
 */
#include "projection/proj_util.h"

int lf_proj_step(sqlite3 *db, sqlite3_stmt *st)
{
    if (!st) return LF_EIO;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW) return 0;
    lf_err_set("%s", sqlite3_errmsg(db));
    return LF_EIO;
}

const lf_projection_def *const *lf_projection_all(size_t *n)
{
    static const lf_projection_def *const all[] = {
        &lf_proj_units,   &lf_proj_availability, &lf_proj_reservations,
        &lf_proj_revenue, &lf_proj_alerts,
    };
    *n = sizeof all / sizeof all[0];
    return all;
}
