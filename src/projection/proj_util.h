/*
 * proj_util.h — small helpers shared by the hub's projection files.
 */
#ifndef LF_PROJ_UTIL_H
#define LF_PROJ_UTIL_H

#include "projection/projection.h"

#include <string.h>

/* Steps a prepared statement to completion: 0 or LF_EIO (detail set). */
int lf_proj_step(sqlite3 *db, sqlite3_stmt *st);

/* The integer value of the top-level member key of a JSON object text, read
 * without building a jansson tree (the hot path of projections that need
 * one number from an event). Event data in the log is a valid JSON object
 * without duplicate keys (lf_store_append validates it), which this relies
 * on. 1: *out set (key present, an integer jansson would read as one);
 * 0: key absent or not an integer; -1: not decided here (escaped keys,
 * integers of 19+ digits, unexpected bytes): parse with jansson instead. */
int lf_proj_json_i64(const char *json, const char *key, int64_t *out);

/* The string values of the top-level members keys[0..n) of a JSON object
 * text (event data, validated by the store as lf_proj_json_i64 relies on),
 * read without building a jansson tree: vals[i] is a NUL-terminated copy
 * in buf (cap bytes), or NULL when the member is absent or not a string —
 * what json_string_value(json_object_get(d, keys[i])) gives. Returns 0,
 * or -1 when not decided here (an escape in a key or in a wanted string,
 * buf too small, unexpected bytes): parse with jansson instead. */
int lf_proj_json_strs(const char *json, const char *const *keys, size_t n, const char **vals,
                      char *buf, size_t cap);

/* "YYYY-MM-DD" (UTC) of ms into day[11], exactly the first ten characters
 * of lf_time_format(ms); the last day formatted is cached per thread. */
void lf_proj_day(int64_t ms, char day[11]);

/* The part of stream after prefix ("unit-" ...), or NULL. */
static inline const char *lf_proj_stream_tail(const char *stream, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(stream, prefix, n) == 0 ? stream + n : NULL;
}

#endif
