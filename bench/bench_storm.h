/* bench_storm.h — 'lockerfleet bench storm': N units, each with a backlog
 * of B buffered events, reconnect to a real hub at the same moment; reports
 * the time until every event is stored exactly once and the projections
 * have caught up, the hub's peak RSS and the 429s it issued. */
#ifndef LF_BENCH_STORM_H
#define LF_BENCH_STORM_H

int lf_bench_storm(int argc, char **argv);

#endif
