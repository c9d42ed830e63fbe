/* bench_projection.h — 'lockerfleet bench projection' (bench_projection.c). */
#ifndef LF_BENCH_PROJECTION_H
#define LF_BENCH_PROJECTION_H

/* Fills a store with a realistic event mix (unit registrations, unit logs
 * with rentals/payments/doors/hardware errors, confirmed reservations)
 * unless it already holds enough, then rebuilds each projection offline
 * and reports events/s per projection. */
int lf_bench_projection(int argc, char **argv);

#endif
