/* fuzz_unit_api.c — the unit agent's HTTP bodies (lf_unit_handle): config
 * (PUT /config), reservations (POST /reservations, /reservations/{id}/
 * cancel), the touch screen (/screen/rent, /screen/pickup) and simulated
 * hardware (/hardware/...), on a real lf_unit with its own store in a temp
 * dir. Input: first byte picks the endpoint, the rest is the body. Never
 * crashes, never a 5xx (bad input is the client's fault, not the store's);
 * every answer is JSON and every 4xx has {"error":{"code","message"}}. The
 * unit is reopened every 4096 inputs so its log stays small. */
#include "unit/unit.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const paths[][2] = {
    {"PUT", "config"},
    {"POST", "reservations"},
    {"POST", "reservations/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b/cancel"},
    {"POST", "screen/rent"},
    {"POST", "screen/pickup"},
    {"POST", "hardware/door-open"},
    {"POST", "hardware/door-close"},
    {"POST", "hardware/error"},
    {"POST", "hardware/online"},
    {"POST", "hardware/payment-start"},
    {"POST", "hardware/payment-fail"},
};
#define NPATHS (sizeof paths / sizeof *paths)

static lf_unit *unit;
static char dir[64], db[128];
static unsigned runs;

static void reopen(void)
{
    if (unit) lf_unit_close(unit);
    unit = NULL;
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/lf-fuzz-unit-XXXXXX");
        if (!mkdtemp(dir)) abort();
        snprintf(db, sizeof db, "%s/unit.db", dir);
    }
    char p[160];
    unlink(db);
    snprintf(p, sizeof p, "%s-wal", db);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", db);
    unlink(p);
    static const lf_unit_locker lockers[] = {{"A01", 'S'}, {"A02", 'M'}, {"A03", 'L'}};
    static const unsigned char key[32] = "lockerfleet-fuzz-key-0123456789";
    static const char *const allot[] = {"A01"};
    lf_unit_config cfg = {.name = "fz",
                          .booking_key = key,
                          .db_path = db,
                          .durable = false,
                          .lockers = lockers,
                          .nlockers = 3,
                          .allotment = allot,
                          .nallotment = 1};
    if (lf_unit_open(&cfg, &unit) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!unit) {
        if (lf_init() != 0) abort();
        lf_log_set_level(LF_LOG_ERROR);
        reopen();
    }
    if (size < 1) return 0;
    if (++runs % 4096 == 0) reopen();
    const char *method = paths[data[0] % NPATHS][0];
    char *copy = lf_strdup(paths[data[0] % NPATHS][1]);
    char *body = malloc(size);
    memcpy(body, data + 1, size - 1);
    body[size - 1] = '\0';
    lf_http_req req = {0};
    req.method = method;
    req.path = copy;
    req.body = body;
    req.body_len = size - 1;
    lf_http_split_path(&req, copy);
    lf_http_resp resp = {0};
    lf_buf_init(&resp.body, 0);
    resp.status = 200;
    lf_unit_handle(unit, &req, &resp, 0);
    if (resp.status >= 500 || resp.status < 200) {
        fprintf(stderr, "status %d: %.*s\n", resp.status, (int)resp.body.len, resp.body.data);
        abort();
    }
    json_t *j = json_loadb(resp.body.data ? resp.body.data : "", resp.body.len, 0, NULL);
    if (!j) abort();
    if (resp.status >= 400) {
        json_t *e = json_object_get(j, "error");
        if (!json_is_string(json_object_get(e, "code")) ||
            !json_is_string(json_object_get(e, "message")))
            abort();
    }
    json_decref(j);
    for (int i = 0; i < resp.nheaders; i++) {
        free(resp.headers[i][0]);
        free(resp.headers[i][1]);
    }
    lf_buf_free(&resp.body);
    free(body);
    free(copy);
    return 0;
}
