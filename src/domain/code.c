/*
 * code.c — booking codes: truncated HMAC-SHA256 over a small binary
 * payload, URL-safe base64 text. See code.h for the format.
 */
#include "domain/code.h"

#include <sodium.h>
#include <string.h>

#define CODE_PREFIX "LF1"
#define CODE_VERSION 1
#define CODE_MAC_LEN 12
/* version + uuid + from + to + locker len + locker (max 15) + mac */
#define CODE_BIN_MAX (1 + 16 + 8 + 8 + 1 + (LF_CODE_LOCKER_MAX - 1) + CODE_MAC_LEN)

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int uuid_to_bin(const char *s, unsigned char out[16])
{
    int n = 0;
    if (!lf_uuid_valid(s)) return LF_EINVAL;
    for (const char *p = s; *p && n < 16; p++) {
        if (*p == '-') continue;
        int hi = hexval(p[0]), lo = hexval(p[1]);
        if (hi < 0 || lo < 0) return LF_EINVAL;
        out[n++] = (unsigned char)(hi << 4 | lo);
        p++;
    }
    return n == 16 ? 0 : LF_EINVAL;
}

static void uuid_from_bin(const unsigned char in[16], char out[LF_UUID_LEN])
{
    static const char hx[] = "0123456789abcdef";
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
        out[o++] = hx[in[i] >> 4];
        out[o++] = hx[in[i] & 15];
    }
    out[o] = '\0';
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static bool locker_valid(const char *l, size_t len)
{
    if (len == 0 || len >= LF_CODE_LOCKER_MAX) return false;
    for (size_t i = 0; i < len; i++) {
        char c = l[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

static void mac_of(const unsigned char key[LF_CODE_KEY_LEN], const unsigned char *bin, size_t n,
                   unsigned char mac[CODE_MAC_LEN])
{
    unsigned char full[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256(full, bin, n, key);
    memcpy(mac, full, CODE_MAC_LEN);
    sodium_memzero(full, sizeof full);
}

int lf_code_make(const unsigned char key[LF_CODE_KEY_LEN], const char *reservation_id,
                 const char *locker, int64_t from_ms, int64_t to_ms, char *out, size_t outlen)
{
    unsigned char bin[CODE_BIN_MAX];
    size_t n = 0, llen, plen = sizeof CODE_PREFIX - 1;
    int rc = LF_EINVAL;

    if (!key || !reservation_id || !locker || !out) goto out;
    llen = strlen(locker);
    if (!locker_valid(locker, llen) || from_ms < 0 || from_ms >= to_ms) goto out;
    bin[n++] = CODE_VERSION;
    if (uuid_to_bin(reservation_id, bin + n) != 0) goto out;
    n += 16;
    put_u64(bin + n, (uint64_t)from_ms);
    n += 8;
    put_u64(bin + n, (uint64_t)to_ms);
    n += 8;
    bin[n++] = (unsigned char)llen;
    memcpy(bin + n, locker, llen);
    n += llen;
    mac_of(key, bin, n, bin + n);
    n += CODE_MAC_LEN;
    if (outlen < plen + sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING))
        goto out;
    memcpy(out, CODE_PREFIX, plen);
    sodium_bin2base64(out + plen, outlen - plen, bin, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    rc = 0;
out:
    return rc;
}

int lf_code_verify(const unsigned char key[LF_CODE_KEY_LEN], const char *code, int64_t now_ms,
                   lf_code_info *out)
{
    unsigned char bin[CODE_BIN_MAX + 4], mac[CODE_MAC_LEN];
    size_t blen = 0, clen, plen = sizeof CODE_PREFIX - 1, llen;
    const char *end = NULL;
    lf_code_info info;
    int64_t from, to;
    int rc = LF_EINVAL;

    if (!key || !code) goto out;
    clen = strnlen(code, LF_CODE_MAX);
    if (clen >= LF_CODE_MAX || clen <= plen || memcmp(code, CODE_PREFIX, plen) != 0) goto out;
    /* Only the URL-safe alphabet: libsodium 1.0.18's decoder maps some
     * bytes >= 0x80 to digits (found by fuzz/fuzz_code.c: "\x98" read as
     * '_'), which would give one code several spellings. */
    for (size_t i = plen; i < clen; i++) {
        char ch = code[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_'))
            goto out;
    }
    if (sodium_base642bin(bin, sizeof bin, code + plen, clen - plen, NULL, &blen, &end,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        end != code + clen)
        goto out;
    /* minimum: version, uuid, from, to, len, 1 locker byte, mac */
    if (blen < 1 + 16 + 8 + 8 + 1 + 1 + CODE_MAC_LEN || bin[0] != CODE_VERSION) goto out;
    llen = bin[33];
    if (blen != 34 + llen + CODE_MAC_LEN || !locker_valid((const char *)bin + 34, llen)) goto out;
    mac_of(key, bin, 34 + llen, mac);
    if (sodium_memcmp(mac, bin + 34 + llen, CODE_MAC_LEN) != 0) {
        rc = LF_EDENIED;
        goto out;
    }
    from = (int64_t)get_u64(bin + 17);
    to = (int64_t)get_u64(bin + 25);
    if (from < 0 || to <= from) goto out; /* authentic but nonsense: never made by us */
    memset(&info, 0, sizeof info);
    uuid_from_bin(bin + 1, info.reservation_id);
    memcpy(info.locker, bin + 34, llen);
    info.locker[llen] = '\0';
    info.from_ms = from;
    info.to_ms = to;
    if (out) *out = info;
    rc = (now_ms >= 0 && (now_ms < from || now_ms >= to)) ? LF_ESTATE : 0;
out:
    return rc;
}
