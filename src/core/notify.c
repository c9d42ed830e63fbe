/*
 * notify.c — sd_notify readiness (notify.h). The one place that knows
 * whether the build has libsystemd (LF_HAVE_SYSTEMD, set by CMake).
 *
 * libsystemd is not linked: it is dlopen()ed on the first notification,
 * and only when $NOTIFY_SOCKET is set (started by a service manager).
 * Loading it with its dependencies (liblz4, liblzma, libzstd, libgcrypt,
 * libcap) costs a process ~0.8 MiB of resident library pages before main()
 * runs, for two datagrams — too much for a unit agent whose budget is
 * 8 MiB (bench/unit_rss.sh).
 */
#define _GNU_SOURCE
#include "core/notify.h"

#include "core/lf.h"

#include <stdio.h>
#include <stdlib.h>

#ifdef LF_HAVE_SYSTEMD
#include <dlfcn.h>
#include <pthread.h>
#include <systemd/sd-daemon.h>

/* libsystemd's ABI is stable under this soname (libsystemd0). */
#define LF_LIBSYSTEMD "libsystemd.so.0"

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static __typeof__(sd_notify) *p_sd_notify;

static void load(void)
{
    void *h = dlopen(LF_LIBSYSTEMD, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        LF_WARN("notify",
                "$NOTIFY_SOCKET is set but %s cannot be loaded (%s): no readiness "
                "notification",
                LF_LIBSYSTEMD, dlerror());
        return;
    }
    p_sd_notify = (__typeof__(sd_notify) *)dlsym(h, "sd_notify");
    if (!p_sd_notify) LF_WARN("notify", "%s has no sd_notify", LF_LIBSYSTEMD);
    /* h stays open for the life of the process (STOPPING=1 comes later). */
}

static int send_state(const char *state)
{
    const char *sock = getenv("NOTIFY_SOCKET");
    if (!sock || !*sock) return 0; /* not under a service manager */
    pthread_once(&load_once, load);
    if (!p_sd_notify) return -1;
    return p_sd_notify(0, state);
}

int lf_notify_ready(const char *status)
{
    if (!status || !*status) return send_state("READY=1");
    char msg[256];
    snprintf(msg, sizeof msg, "READY=1\nSTATUS=%.200s", status);
    return send_state(msg);
}

int lf_notify_stopping(void)
{
    return send_state("STOPPING=1");
}
#else
int lf_notify_ready(const char *status)
{
    (void)status;
    return 0;
}

int lf_notify_stopping(void)
{
    return 0;
}
#endif
