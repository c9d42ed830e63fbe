/*
 * metrics_host.h — host-level gauges for /metrics that no module owns:
 * free and total bytes of the filesystem holding the data dir (the
 * "disk nearly full" alert of contrib/prometheus/alerts.yml) and
 * lockerfleet_build_info{version}.
 */
#ifndef LF_METRICS_HOST_H
#define LF_METRICS_HOST_H

/* Sets lockerfleet_data_fs_avail_bytes, lockerfleet_data_fs_size_bytes
 * (statvfs of data_dir; left unset if it fails) and
 * lockerfleet_build_info. Cheap: called on every scrape. data_dir is
 * borrowed. */
void lf_metrics_host_update(const char *data_dir);

#endif
