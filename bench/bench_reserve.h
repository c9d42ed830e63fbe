/*
 * bench_reserve.h — 'lockerfleet bench reserve': reserve+confirm pairs/s
 * across many units against a real hub (see bench_reserve.c).
 */
#ifndef LF_BENCH_RESERVE_H
#define LF_BENCH_RESERVE_H

int lf_bench_reserve(int argc, char **argv);

#endif
