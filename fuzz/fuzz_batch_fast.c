/* fuzz_batch_fast.c — differential: the hub's tree-less fast path for a
 * pushed batch (lf_fleet_batch_fast) against the jansson path
 * (json_loadb + lf_fleet_batch_parse) on arbitrary bytes. Whenever the
 * fast path says "certain", the jansson path must accept the same body
 * with the same events: seq, id, type, time, and data text equal to
 * json_dumps(data, JSON_COMPACT) (the bytes the store will hold). Never
 * crashes (UBSan: no overflow on long digit runs). */
#include "hub/fleet.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int inited;
    if (!inited) inited = lf_init() == 0;
    lf_fleet_uevent fast[MAX], slow[MAX];
    const char *texts[MAX];
    size_t nf = 0, ns = 0;
    char *arena = NULL;
    if (!lf_fleet_batch_fast((const char *)data, size, MAX, fast, texts, &nf, &arena)) return 0;
    json_t *j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (!j) abort(); /* fast path sure, jansson says not JSON */
    char field[48], msg[160];
    if (lf_fleet_batch_parse(json_object_get(j, "events"), MAX, slow, &ns, field, sizeof field, msg,
                             sizeof msg) != 0 ||
        ns != nf || json_object_size(j) != 1)
        abort();
    for (size_t i = 0; i < nf; i++) {
        if (fast[i].seq != slow[i].seq || strcmp(fast[i].id, slow[i].id) != 0 ||
            strcmp(fast[i].type, slow[i].type) != 0 || fast[i].time_ms != slow[i].time_ms)
            abort();
        char *d = json_dumps(slow[i].data, JSON_COMPACT);
        if (!d || strcmp(d, texts[i]) != 0) {
            fprintf(stderr, "data differs:\n fast %s\n slow %s\n", texts[i], d ? d : "(null)");
            abort();
        }
        free(d);
    }
    json_decref(j);
    free(arena);
    return 0;
}
