/*
 * lf.h — the core of lockerfleet: one result convention, logging, time,
 * ids, hashing and small JSON/string helpers. No I/O policy lives here.
 *
 * Result convention (STYLE §5): functions return int, 0 = OK, a negative
 * LF_E* code on error; outputs go through out-parameters. lf_strerror()
 * gives the text. A per-thread "last error detail" (lf_err_set/lf_err_get)
 * carries context from the layer that failed to the one that reports it.
 */
#ifndef LF_CORE_H
#define LF_CORE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum lf_err {
    LF_OK = 0,
    LF_EINVAL = -1,    /* invalid argument / input */
    LF_ENOMEM = -2,    /* out of memory */
    LF_EIO = -3,       /* I/O or backend failure */
    LF_ECONFLICT = -4, /* expected version mismatch (wrote nothing) */
    LF_ENOTFOUND = -5, /* no such thing */
    LF_EEXIST = -6,    /* already exists */
    LF_ETIMEDOUT = -7, /* a bounded wait ran out */
    LF_ECORRUPT = -8,  /* a file is damaged or not ours */
    LF_EBUSY = -9,     /* overloaded, try later */
    LF_ECLOSED = -10,  /* the object is shutting down */
    LF_EDENIED = -11,  /* not allowed */
    LF_EUNSUPPORTED = -12,
    LF_EUNAVAILABLE = -13, /* e.g. locker not available */
    LF_ESTATE = -14,       /* command not valid in the current state */
};

/* Static text for an LF_E* code. Never NULL. */
const char *lf_strerror(int rc);

/* Per-thread detail of the last error: set by the failing layer (printf
 * style), read by whoever reports it. lf_err_get() returns a thread-local
 * buffer, valid until the next lf_err_set on the same thread. */
void lf_err_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *lf_err_get(void);
void lf_err_clear(void);

/* ---- logging ------------------------------------------------------- */
enum lf_log_level { LF_LOG_DEBUG = 0, LF_LOG_INFO, LF_LOG_WARN, LF_LOG_ERROR };
void lf_log_set_level(enum lf_log_level lvl);
/* Parses "debug|info|warn|error"; returns LF_EINVAL on anything else. */
int lf_log_parse_level(const char *s, enum lf_log_level *out);
/* Sends log lines (and anything else written to stderr) to path, appending,
 * created 0640: fd 2 is redirected to the file.
 * LF_EIO with lf_err_get() set if it cannot be opened. */
int lf_log_open_file(const char *path);
/* Reopens the log file (after logrotate moved it; call on SIGHUP from a
 * normal thread, not from the signal handler). No-op when logging to
 * stderr. */
void lf_log_reopen(void);
/* "text" (default) or "json": one JSON object per line. */
int lf_log_set_format(const char *fmt);
void lf_log(enum lf_log_level lvl, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Per-thread log context, added as fields to JSON log lines (text lines
 * are unchanged): key is "request_id", "unit" or "position"; value NULL or
 * "" clears it. lf_log_ctx_clear() clears all three. Never put a token or
 * a booking code here. */
void lf_log_ctx_set(const char *key, const char *value);
void lf_log_ctx_clear(void);
/* A copy of a log context, so that a request's log line written on another
 * thread (pool mode) carries the fields its handler set. */
typedef struct {
    char v[3][80];
} lf_log_snap;
void lf_log_ctx_save(lf_log_snap *out);         /* the calling thread's */
void lf_log_ctx_restore(const lf_log_snap *in); /* into the calling thread's */
void lf_log_snap_set(lf_log_snap *s, const char *key, const char *value);
#define LF_DEBUG(c, ...) lf_log(LF_LOG_DEBUG, c, __VA_ARGS__)
#define LF_INFO(c, ...) lf_log(LF_LOG_INFO, c, __VA_ARGS__)
#define LF_WARN(c, ...) lf_log(LF_LOG_WARN, c, __VA_ARGS__)
#define LF_ERROR(c, ...) lf_log(LF_LOG_ERROR, c, __VA_ARGS__)

/* ---- time ---------------------------------------------------------- */
int64_t lf_now_ms(void);  /* wall clock, ms since the Unix epoch */
int64_t lf_mono_ms(void); /* monotonic ms */
int64_t lf_mono_us(void); /* monotonic µs */
/* Formats ms-since-epoch as RFC 3339 UTC with ms: 2026-11-29T10:00:00.000Z.
 * buf must hold at least LF_TIME_LEN bytes. Returns buf. */
#define LF_TIME_LEN 32
char *lf_time_format(int64_t ms, char *buf);
/* Parses RFC 3339 (Z or ±hh:mm offset, optional fraction). LF_EINVAL if
 * malformed or impossible (month 13, Feb 30, hour 25...). */
int lf_time_parse(const char *s, int64_t *ms_out);
void lf_sleep_ms(int64_t ms);
struct timespec;
/* The CLOCK_REALTIME instant us microseconds from now, as
 * pthread_cond_timedwait wants it. */
void lf_abstime_us(int64_t us, struct timespec *out);
/* The same on CLOCK_MONOTONIC, for a condition variable initialised with
 * pthread_condattr_setclock(CLOCK_MONOTONIC) (no clock jump stretches the
 * wait). */
void lf_abstime_mono_us(int64_t us, struct timespec *out);

/* ---- ids, randomness, hashing ---------------------------------------- */
/* lf_init() must be called once before the rest (initialises libsodium). */
int lf_init(void);
#define LF_UUID_LEN 37 /* 36 chars + NUL */
/* Random UUID v4 text, lowercase. */
void lf_uuid_v4(char out[LF_UUID_LEN]);
/* Time-ordered UUID v7 text (good index locality). */
void lf_uuid_v7(char out[LF_UUID_LEN]);
/* True if s is a canonical 8-4-4-4-12 hex UUID. */
bool lf_uuid_valid(const char *s);
/* 16 bytes as a canonical (lowercase) UUID text. */
void lf_uuid_text(const unsigned char b[16], char out[LF_UUID_LEN]);
/* The length (2..4) of the well-formed UTF-8 sequence that starts at p
 * (*p >= 0x80), or 0: no overlongs, no surrogates, nothing past U+10FFFF,
 * none cut short by `avail` (the bytes readable from p). Reads no further
 * than the first byte that is not a continuation byte, so a NUL-terminated
 * string may pass 4. */
size_t lf_utf8_len(const unsigned char *p, size_t avail);
/* Random token: 32 bytes as 64 lowercase hex chars. out must hold 65. */
void lf_token_new(char out[65]);
/* SHA-256 (via libsodium) of a token as 64 hex chars, for storing. */
void lf_token_hash(const char *token, char out[65]);
/* Constant-time equality of two NUL-terminated strings of equal length. */
bool lf_ct_equal(const char *a, const char *b);
uint32_t lf_random_u32(void);
uint32_t lf_random_uniform(uint32_t upper); /* [0, upper) */

/* XXH3-64 of name, as 16 lowercase hex chars. */
void lf_hash_hex(const char *name, char out[17]);
/* Shard of a unit: the first `digits` (1..4) hex digits of lf_hash_hex.
 * out must hold digits+1 bytes. */
void lf_shard_of(const char *name, int digits, char *out);
/* Valid unit/user name: [a-z0-9-]{1,64}. */
bool lf_name_valid(const char *s);

/* ---- strings --------------------------------------------------------- */
/* malloc'd copy; aborts with a message on OOM (hub policy, STYLE). */
char *lf_strdup(const char *s);
void *lf_xmalloc(size_t n);
void *lf_xcalloc(size_t n, size_t sz);
void *lf_xrealloc(void *p, size_t n);
/* malloc'd printf. Aborts on OOM. */
char *lf_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Growable byte buffer with a hard cap (STYLE §9). */
typedef struct {
    char *data;
    size_t len, cap, max; /* max == 0: unbounded */
} lf_buf;
void lf_buf_init(lf_buf *b, size_t max);
/* LF_EINVAL when the cap would be passed (nothing appended). */
int lf_buf_append(lf_buf *b, const void *p, size_t n);
int lf_buf_printf(lf_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lf_buf_free(lf_buf *b);

/* Parse a decimal int64 strictly (whole string, no overflow). */
int lf_parse_i64(const char *s, int64_t *out);

#endif
