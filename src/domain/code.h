/*
 * code.h — booking codes that a unit can verify OFFLINE.
 *
 * A booking code is a self-contained ASCII string that binds a reservation
 * id, a locker and a half-open window [from, to) with a truncated
 * HMAC-SHA256 (libsodium crypto_auth_hmacsha256) under the unit's 32-byte
 * booking key (the hub derives it with lf_hub_booking_key and gives it to
 * the unit at registration). Nothing about a code is stored: the hub can
 * recompute it at any time from the reservation, and the unit can check it
 * with no connection at all.
 *
 * Format (v1): "LF1" followed by URL-safe base64 (no padding) of
 *   version(1)=1 | reservation uuid (16 bytes) | from_ms (8, big endian)
 *   | to_ms (8, big endian) | locker length (1) | locker bytes (1..15)
 *   | mac (12 bytes = HMAC-SHA256(key, everything before it) truncated)
 * The string is at most LF_CODE_MAX-1 characters and contains only
 * [A-Za-z0-9_-], so it is safe in JSON, URLs and QR codes.
 *
 * Pure functions: no I/O, no clock reads (now is a parameter). lf_init()
 * (sodium_init) must have been called once.
 */
#ifndef LF_DOMAIN_CODE_H
#define LF_DOMAIN_CODE_H

#include "core/lf.h"

#include <stddef.h>
#include <stdint.h>

#define LF_CODE_KEY_LEN 32
#define LF_CODE_MAX 96        /* bytes for a code including the NUL */
#define LF_CODE_LOCKER_MAX 16 /* bytes for a locker id including the NUL */

typedef struct {
    char reservation_id[LF_UUID_LEN]; /* lowercase canonical UUID */
    char locker[LF_CODE_LOCKER_MAX];
    int64_t from_ms; /* window [from_ms, to_ms) */
    int64_t to_ms;
} lf_code_info;

/* Makes the code for a reservation. reservation_id: a canonical UUID;
 * locker: 1..15 bytes of [A-Za-z0-9_-]; from_ms < to_ms, both >= 0.
 * out receives a NUL-terminated code (outlen >= LF_CODE_MAX is always
 * enough). Returns 0, or LF_EINVAL (bad argument, out too small). */
int lf_code_make(const unsigned char key[LF_CODE_KEY_LEN], const char *reservation_id,
                 const char *locker, int64_t from_ms, int64_t to_ms, char *out, size_t outlen);

/* Verifies a code (untrusted input; any length, may be NULL) under key.
 * now_ms: the current wall time; pass a negative value to skip the window
 * check.
 * Returns:
 *   0             valid, and from_ms <= now_ms < to_ms (or check skipped);
 *   LF_EINVAL     malformed (wrong prefix, length, encoding, version);
 *   LF_EDENIED    the MAC does not match: tampered or another unit's key;
 *   LF_ESTATE     authentic, but now_ms is outside the window (out is
 *                 filled, so the caller can tell "too early" from "over").
 * out (may be NULL) is filled on 0 and LF_ESTATE only. */
int lf_code_verify(const unsigned char key[LF_CODE_KEY_LEN], const char *code, int64_t now_ms,
                   lf_code_info *out);

#endif
