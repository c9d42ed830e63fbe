/* fuzz_store_validate.c — the store's input checks (stream name, event
 * type, data/meta JSON, ids) on arbitrary bytes: never crash; anything
 * accepted has data that is a JSON object. Input layout: stream \n type \n
 * id \n data. */
#include "store/store.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    char *parts[4] = {s, "", "", ""};
    int k = 1;
    for (char *p = s; *p && k < 4; p++)
        if (*p == '\n') {
            *p = '\0';
            parts[k++] = p + 1;
        }
    lf_event_in ev = {.type = parts[1], .id = parts[2], .data = parts[3]};
    if (lf_store_validate(parts[0], LF_EXPECT_ANY, &ev, 1) == 0) {
        json_t *j = json_loads(ev.data, JSON_ALLOW_NUL, NULL);
        if (!j || !json_is_object(j)) abort();
        json_decref(j);
    }
    free(s);
    return 0;
}
