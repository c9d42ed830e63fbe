/* bench_presence.h — 'lockerfleet bench presence': one pinger thread
 * (libcurl multi, src/hub/fleet_ping.c) pings N units served by one
 * responder process on loopback; reports the time of each round. */
#ifndef LF_BENCH_PRESENCE_H
#define LF_BENCH_PRESENCE_H

int lf_bench_presence(int argc, char **argv);

#endif
