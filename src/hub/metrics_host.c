/*
 * metrics_host.c — host-level gauges (metrics_host.h), refreshed on each
 * scrape of /metrics so they are never stale.
 */
#include "hub/metrics_host.h"

#include "hub/hub.h"

#include <pthread.h>
#include <sys/statvfs.h>

static pthread_once_t described = PTHREAD_ONCE_INIT;

static void describe(void)
{
    lf_metric_describe("lockerfleet_data_fs_avail_bytes", "gauge",
                       "bytes available to the hub on the filesystem of its data dir");
    lf_metric_describe("lockerfleet_data_fs_size_bytes", "gauge",
                       "size in bytes of the filesystem of the hub's data dir");
    lf_metric_describe("lockerfleet_build_info", "gauge", "always 1; the version as a label");
}

void lf_metrics_host_update(const char *data_dir)
{
    pthread_once(&described, describe);
    lf_metric_set("lockerfleet_build_info", "version=\"" LF_VERSION "\"", 1);
    struct statvfs sv;
    if (!data_dir || statvfs(data_dir, &sv) != 0) return;
    lf_metric_set("lockerfleet_data_fs_avail_bytes", NULL,
                  (double)sv.f_bavail * (double)sv.f_frsize);
    lf_metric_set("lockerfleet_data_fs_size_bytes", NULL,
                  (double)sv.f_blocks * (double)sv.f_frsize);
}
