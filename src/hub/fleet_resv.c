/*
 * fleet_resv.c — reservations delivered to their unit, by the same ledger
 * as config: pending → sent → accepted | rejected, retried on the retry
 * schedule only while the unit is online, at once when it comes back.
 *
 * The ledger is a fold of bookings-{unit} (what the hub decided: held,
 * confirmed, cancelled, expired, reassigned) and of the Reservation*
 * delivery events in unit-{unit} (what the unit was told and answered).
 * The fold is order-independent between the two streams: what is still to
 * do is derived from sets of facts, not from their interleaving:
 *   reserve  when the reservation is active and the unit has not answered
 *            for its current locker;
 *   cancel   when it was cancelled/expired and a reserve was ever sent
 *            (the unit may hold it) and the cancel is not acknowledged.
 * A reservation whose window has ended needs nothing any more.
 */
#include "domain/code.h"
#include "hub/fleet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RESV_BATCH 64

enum action { ACT_NONE = 0, ACT_RESERVE, ACT_CANCEL };

void lf_fleet_resv_free(fleet_unit *u)
{
    fleet_resv *r = u->resv;
    while (r) {
        fleet_resv *n = r->next;
        free(r);
        r = n;
    }
    u->resv = NULL;
}

static fleet_resv *resv_find(fleet_unit *u, const char *id)
{
    for (fleet_resv *r = u->resv; r; r = r->next)
        if (strcmp(r->id, id) == 0) return r;
    return NULL;
}

static enum action resv_action(const fleet_resv *r, int64_t now)
{
    if (r->to_ms > 0 && r->to_ms <= now) return ACT_NONE;
    if (r->want_cancel)
        return (r->reserve_attempts > 0 || r->reserve_result == 1) && !r->cancel_done &&
                       r->reserve_result != 2
                   ? ACT_CANCEL
                   : ACT_NONE;
    if (r->reserve_result == 0 || strcmp(r->delivered_locker, r->locker) != 0) return ACT_RESERVE;
    return ACT_NONE;
}

bool lf_fleet_resv_due(const fleet_unit *u, int64_t now)
{
    for (const fleet_resv *r = u->resv; r; r = r->next)
        if (!r->busy && r->next_attempt_ms <= now && resv_action(r, now) != ACT_NONE) return true;
    return false;
}

void lf_fleet_resv_due_now(fleet_unit *u, int64_t now)
{
    for (fleet_resv *r = u->resv; r; r = r->next)
        if (r->next_attempt_ms > now) r->next_attempt_ms = now;
}

size_t lf_fleet_resv_prune(fleet_unit *u, int64_t now)
{
    size_t n = 0;
    for (fleet_resv **pp = &u->resv; *pp;) {
        fleet_resv *r = *pp;
        int done = !r->busy &&
                   ((r->to_ms > 0 && r->to_ms <= now) ||
                    (r->want_cancel && (r->cancel_done || r->reserve_result == 2 ||
                                        (r->reserve_attempts == 0 && r->reserve_result == 0))));
        if (done) {
            *pp = r->next;
            free(r);
            n++;
        } else {
            pp = &r->next;
        }
    }
    return n;
}

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

int lf_fleet_resv_fold(struct lf_fleet *f, fleet_unit *u, const lf_event *ev)
{
    (void)f;
    int due = 0;
    const char *ty = ev->type;
    /* the ledger changes only with these: no parse for the others (every
     * ReservationConfirmed, half of the booking events) */
    if (strcmp(ty, "ReservationHeld") != 0 && strcmp(ty, "ReservationCancelled") != 0 &&
        strcmp(ty, "ReservationExpired") != 0 && strcmp(ty, "ReservationReassigned") != 0 &&
        strcmp(ty, "ReservationDeliveryAttempted") != 0 && strcmp(ty, "ReservationDelivered") != 0)
        return 0;
    json_t *d = json_loads(ev->data, 0, NULL);
    const char *id = d ? jstr(d, "reservation_id") : NULL;
    if (!id || strlen(id) >= LF_UUID_LEN) goto out;
    fleet_resv *r = resv_find(u, id);
    const char *t = ev->type;
    if (strcmp(t, "ReservationHeld") == 0) {
        if (r) goto out;
        r = lf_xcalloc(1, sizeof *r);
        snprintf(r->id, sizeof r->id, "%s", id);
        snprintf(r->locker, sizeof r->locker, "%s", jstr(d, "locker") ? jstr(d, "locker") : "");
        if (jstr(d, "from")) lf_time_parse(jstr(d, "from"), &r->from_ms);
        if (jstr(d, "to")) lf_time_parse(jstr(d, "to"), &r->to_ms);
        r->next = u->resv;
        u->resv = r;
        due = 1;
        goto out;
    }
    if (!r) goto out;
    if (strcmp(t, "ReservationCancelled") == 0 || strcmp(t, "ReservationExpired") == 0) {
        if (!r->want_cancel) r->attempts = 0;
        r->want_cancel = 1;
        r->next_attempt_ms = 0;
        due = 1;
    } else if (strcmp(t, "ReservationReassigned") == 0) {
        const char *to = jstr(d, "to_locker");
        if (to) snprintf(r->locker, sizeof r->locker, "%s", to);
        r->attempts = 0;
        r->next_attempt_ms = 0;
        due = 1;
    } else if (strcmp(t, "ReservationDeliveryAttempted") == 0) {
        const char *act = jstr(d, "action"), *res = jstr(d, "result");
        json_t *a = json_object_get(d, "attempt");
        if (act && strcmp(act, "reserve") == 0) r->reserve_attempts++;
        r->attempts = json_is_integer(a) ? (int)json_integer_value(a) : r->attempts + 1;
        if (res && strcmp(res, "failed") == 0) {
            int64_t next = 0;
            if (jstr(d, "next_attempt_at")) lf_time_parse(jstr(d, "next_attempt_at"), &next);
            r->next_attempt_ms = next;
        }
    } else if (strcmp(t, "ReservationDelivered") == 0) {
        const char *act = jstr(d, "action"), *res = jstr(d, "result");
        const char *locker = jstr(d, "locker");
        int accepted = res && strcmp(res, "accepted") == 0;
        if (act && strcmp(act, "cancel") == 0) {
            r->cancel_done = 1;
        } else {
            r->reserve_attempts++;
            r->reserve_result = accepted ? 1 : 2;
            snprintf(r->delivered_locker, sizeof r->delivered_locker, "%s",
                     locker ? locker : r->locker);
        }
        r->attempts = 0;
        r->next_attempt_ms = 0;
    }
out:
    json_decref(d);
    return due;
}

typedef struct {
    char id[LF_UUID_LEN];
    char locker[16];
    int64_t from_ms, to_ms;
    enum action act;
} job;

/* One call to the unit. Returns 0 answered (accepted: *ok=1, or a
 * rejection with reason), or -1 failed (reason says why). */
static int deliver(struct lf_fleet *f, const char *name, const char *url, const job *j, int *ok,
                   char *reason, size_t rlen)
{
    int ret = -1;
    char *full = NULL, *body = NULL;
    lf_http_result r;
    memset(&r, 0, sizeof r);
    *ok = 0;
    if (j->act == ACT_RESERVE) {
        unsigned char key[LF_CODE_KEY_LEN];
        char code[LF_CODE_MAX], from[LF_TIME_LEN], to[LF_TIME_LEN];
        lf_hub_booking_key(f->h, name, key);
        if (lf_code_make(key, j->id, j->locker, j->from_ms, j->to_ms, code, sizeof code)) {
            snprintf(reason, rlen, "bad_reservation");
            *ok = 0;
            ret = 0; /* nothing a retry could fix */
            goto out;
        }
        full = lf_asprintf("%s/reservations", url);
        body = lf_asprintf("{\"id\":\"%s\",\"locker\":\"%s\",\"from\":\"%s\",\"to\":\"%s\","
                           "\"code\":\"%s\"}",
                           j->id, j->locker, lf_time_format(j->from_ms, from),
                           lf_time_format(j->to_ms, to), code);
    } else {
        full = lf_asprintf("%s/reservations/%s/cancel", url, j->id);
        body = lf_strdup("{}");
    }
    int rc = lf_fleet_unit_call(f, name, "POST", full, body, &r);
    snprintf(reason, rlen, "%s", lf_fleet_call_reason(rc, r.status));
    if (rc == 0 && r.status >= 200 && r.status < 300) {
        *ok = 1;
        ret = 0;
    } else if (rc == 0 && j->act == ACT_CANCEL && r.status == 404) {
        *ok = 1; /* the unit never had it: nothing to cancel */
        ret = 0;
    } else if (rc == 0 && (r.status == 409 || r.status == 400 || r.status == 422)) {
        json_t *jj = json_loadb(r.body.data ? r.body.data : "", r.body.len, 0, NULL);
        json_t *code = jj ? json_object_get(json_object_get(jj, "error"), "code") : NULL;
        if (json_is_string(code)) snprintf(reason, rlen, "%.48s", json_string_value(code));
        json_decref(jj);
        ret = 0;
    }
out:
    lf_http_result_free(&r);
    free(full);
    free(body);
    return ret;
}

void lf_fleet_resv_deliver_due(struct lf_fleet *f, const char *name)
{
    job jobs[RESV_BATCH];
    size_t n = 0;
    char url[512];
    int64_t now = lf_now_ms();
    pthread_mutex_lock(&f->mu);
    fleet_unit *u = lf_fleet_find(f, name);
    if (u && u->ps.online && u->url[0]) {
        snprintf(url, sizeof url, "%s", u->url);
        for (fleet_resv *r = u->resv; r && n < RESV_BATCH; r = r->next) {
            enum action a = resv_action(r, now);
            if (r->busy || r->next_attempt_ms > now || a == ACT_NONE) continue;
            r->busy = 1;
            job *j = &jobs[n++];
            snprintf(j->id, sizeof j->id, "%s", r->id);
            snprintf(j->locker, sizeof j->locker, "%s", r->locker);
            j->from_ms = r->from_ms;
            j->to_ms = r->to_ms;
            j->act = a;
        }
    }
    pthread_mutex_unlock(&f->mu);
    for (size_t i = 0; i < n; i++) {
        const job *j = &jobs[i];
        int ok = 0;
        char reason[64];
        int answered = deliver(f, name, url, j, &ok, reason, sizeof reason) == 0;
        int attempt = 1;
        int64_t next = 0;
        pthread_mutex_lock(&f->mu);
        fleet_resv *r = resv_find(u, j->id);
        if (r) {
            r->busy = 0;
            attempt = ++r->attempts;
            if (j->act == ACT_RESERVE) r->reserve_attempts++;
            if (!answered) {
                next = lf_now_ms() +
                       lf_fleet_retry_delay(f->h->cfg.retry_ms, f->h->cfg.nretry, attempt);
                r->next_attempt_ms = next;
            } else {
                r->attempts = 0;
                r->next_attempt_ms = 0;
                if (j->act == ACT_CANCEL)
                    r->cancel_done = 1;
                else {
                    r->reserve_result = ok ? 1 : 2;
                    snprintf(r->delivered_locker, sizeof r->delivered_locker, "%s", j->locker);
                }
            }
        }
        pthread_mutex_unlock(&f->mu);
        const char *act = j->act == ACT_RESERVE ? "reserve" : "cancel";
        lf_metric_inc("lockerfleet_deliveries_total",
                      !answered ? "kind=\"reservation\",result=\"failed\""
                      : ok      ? "kind=\"reservation\",result=\"accepted\""
                                : "kind=\"reservation\",result=\"rejected\"",
                      1);
        json_t *d =
            json_pack("{s:s,s:s,s:i,s:s,s:s?,s:o}", "reservation_id", j->id, "action", act,
                      "attempt", attempt, "result", answered ? "sent" : "failed", "reason",
                      answered ? NULL : reason, "next_attempt_at", lf_fleet_time_json(next));
        lf_fleet_emit(f, name, "ReservationDeliveryAttempted", d, NULL);
        if (answered) {
            d = json_pack("{s:s,s:s,s:s,s:s?,s:s}", "reservation_id", j->id, "action", act,
                          "result", ok ? "accepted" : "rejected", "reason", ok ? NULL : reason,
                          "locker", j->locker);
            lf_fleet_emit(f, name, "ReservationDelivered", d, NULL);
        }
    }
}
