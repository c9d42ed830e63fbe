/*
 * notify.c — sd_notify readiness (notify.h). The one place that knows
 * whether the build has libsystemd (LF_HAVE_SYSTEMD, set by CMake).
 */
#include "core/notify.h"

#include <stdio.h>

#ifdef LF_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>

int lf_notify_ready(const char *status)
{
    if (status && *status) return sd_notifyf(0, "READY=1\nSTATUS=%.200s", status);
    return sd_notify(0, "READY=1");
}

int lf_notify_stopping(void)
{
    return sd_notify(0, "STOPPING=1");
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
