/* bench_ingest.h — 'lockerfleet bench ingest': a real hub (child process,
 * embedded SQLite store, durable) receives pushed batches from U
 * concurrent units over HTTP; reports events/s. */
#ifndef LF_BENCH_INGEST_H
#define LF_BENCH_INGEST_H

int lf_bench_ingest(int argc, char **argv);

#endif
