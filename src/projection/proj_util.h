/*
 * proj_util.h — small helpers shared by the hub's projection files.
 */
#ifndef LF_PROJ_UTIL_H
#define LF_PROJ_UTIL_H

#include "projection/projection.h"

#include <string.h>

/* Steps a prepared statement to completion: 0 or LF_EIO (detail set). */
int lf_proj_step(sqlite3 *db, sqlite3_stmt *st);

/* The part of stream after prefix ("unit-" ...), or NULL. */
static inline const char *lf_proj_stream_tail(const char *stream, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(stream, prefix, n) == 0 ? stream + n : NULL;
}

#endif
