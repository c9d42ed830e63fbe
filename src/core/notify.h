/*
 * notify.h — readiness and stop notifications to the service manager
 * (systemd's sd_notify protocol, through libsystemd when the build found
 * it; otherwise these do nothing). Used by `lockerfleet hub` and
 * `lockerfleet unit` so that Type=notify units (contrib/systemd) become
 * active only once the store is open and the listener is bound.
 */
#ifndef LF_NOTIFY_H
#define LF_NOTIFY_H

/* Tells the service manager the process is ready ("READY=1") with a
 * short status line (may be NULL; borrowed). No-op when not started by a
 * service manager ($NOTIFY_SOCKET unset) or built without libsystemd.
 * Returns 1 if a notification was sent, 0 if not, negative on error. */
int lf_notify_ready(const char *status);

/* Tells the service manager the process is stopping ("STOPPING=1"). */
int lf_notify_stopping(void);

#endif
