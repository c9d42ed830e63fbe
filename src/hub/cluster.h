/*
 * cluster.h — several hub nodes on one shared store (DESIGN §1.8).
 *
 * Each node keeps a lease "node.<id>" (its node record, renewed as a
 * heartbeat) and leases "shard.<h>" on the 16 one-digit shards, all held
 * in the store's engine (lf_store_lease). A node takes free or expired
 * shards until it holds ceil(16 / live nodes), gives extras back when more
 * nodes come, renews what it holds every renew interval (ttl = 3 x), and
 * releases everything on a graceful stop. The fleet workers (pinger,
 * delivery, pulls) run only for the shards this node holds; when it takes
 * a shard, the fleet state of that shard's units is rebuilt from the log,
 * so pending deliveries move with the shard. Every node serves the whole
 * HTTP API. A store without leases (none today) means one node owning all.
 *
 * Order in hub_main: lf_cluster_start (first round, synchronous) before
 * lf_fleet_start, lf_cluster_run after it, lf_cluster_stop before
 * lf_fleet_stop.
 */
#ifndef LF_HUB_CLUSTER_H
#define LF_HUB_CLUSTER_H

#include "hub/hub.h"

#define LF_CLUSTER_SHARDS 16

/* renew_ms: how often leases are renewed (ttl_ms = lease lifetime, > renew).
 * Runs the first round (node record, first shards) before returning. */
int lf_cluster_start(lf_hub *h, int64_t renew_ms, int64_t ttl_ms);
/* Starts the renewing thread (after lf_fleet_start). */
int lf_cluster_run(lf_hub *h);
/* Stops the thread and releases this node's leases. NULL-safe. */
void lf_cluster_stop(lf_hub *h);

/* The owned-shard set for lf_fleet_shard_owned ("0,1,a"; "-" = none).
 * The string stays valid until the next change, which happens with the
 * fleet's f->mu held, or until lf_cluster_stop. NULL when no cluster. */
const char *lf_cluster_owned(lf_hub *h);

/* GET /v1/cluster (admin). */
const lf_route *lf_cluster_routes(void);

#endif
