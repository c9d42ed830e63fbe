/* fuzz_batch.c — the hub's validation of a unit's event batch
 * (lf_fleet_batch_parse, the body of POST /v1/units/{name}/events and of
 * a pulled page) on arbitrary bytes parsed as JSON the way the HTTP layer
 * does. Never crashes (UBSan: no overflow on seqs near INT64_MAX); an
 * accepted batch has 1..max events with consecutive positive seqs, UUID
 * ids, [A-Za-z]{1,64} types and object data; a rejected one names a field. */
#include "hub/fleet.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX 16 /* small, so "too many events" is reachable */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int inited;
    if (!inited) inited = lf_init() == 0;
    json_t *j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (!j) return 0;
    /* A bare array is the batch itself; an object carries it in "events". */
    json_t *events = json_is_object(j) ? json_object_get(j, "events") : j;
    lf_fleet_uevent out[MAX];
    size_t n = 99;
    char field[48] = "", msg[160] = "";
    int rc = lf_fleet_batch_parse(events, MAX, out, &n, field, sizeof field, msg, sizeof msg);
    if (rc == 0) {
        if (n < 1 || n > MAX) abort();
        for (size_t i = 0; i < n; i++) {
            if (out[i].seq < 1 || (i && out[i].seq - 1 != out[i - 1].seq)) abort();
            if (!lf_uuid_valid(out[i].id) || !out[i].type[0] || !json_is_object(out[i].data))
                abort();
            if (strlen(out[i].type) > LF_FLEET_TYPE_MAX) abort();
        }
    } else if (rc != LF_EINVAL || strncmp(field, "events", 6) != 0 || !msg[0]) {
        abort();
    }
    json_decref(j);
    return 0;
}
