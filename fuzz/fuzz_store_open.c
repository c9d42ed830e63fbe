/* fuzz_store_open.c — the sqlite store opening and reading a file it did
 * not write (damaged, truncated, someone else's database, random bytes):
 * lf_store_open on the fuzzed file, then head, a full read and a stream
 * read. Must never crash: either a clear error (LF_ECORRUPT/LF_EIO with a
 * message) or a store whose reads return events with well-formed fields.
 * Seeds (fuzz/corpus/store_open): real store files, cut and flipped. */
#include "store/store.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64], path[128];

static void rm_files(void)
{
    char p[160];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-journal", path);
    unlink(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        if (lf_init() != 0) abort();
        lf_log_set_level(LF_LOG_ERROR);
        snprintf(dir, sizeof dir, "/tmp/lf-fuzz-store-XXXXXX");
        if (!mkdtemp(dir)) abort();
        snprintf(path, sizeof path, "%s/events.db", dir);
    }
    rm_files();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) abort();
    if (size && write(fd, data, size) != (ssize_t)size) abort();
    close(fd);
    char url[160], err[256] = "";
    snprintf(url, sizeof url, "sqlite:%s", path);
    lf_store *s = NULL;
    int rc = lf_store_open(url, &s, err, sizeof err);
    if (rc != 0) {
        if (s || !err[0]) abort(); /* an error says why */
        rm_files();
        return 0;
    }
    int64_t head = -1;
    (void)lf_store_head(s, &head);
    lf_event_list l = {0};
    if (lf_store_read_all(s, 0, 64, &l) == 0) {
        for (size_t i = 0; i < l.n; i++) {
            const lf_event *e = &l.ev[i];
            if (!e->stream || !e->type || !e->data || !e->meta) abort();
            if (i && e->position <= l.ev[i - 1].position) abort();
        }
        if (l.n) {
            char *st = lf_strdup(l.ev[0].stream);
            lf_event_list l2 = {0};
            (void)lf_store_read_stream(s, st, 1, 16, &l2);
            lf_event_list_free(&l2);
            int64_t v;
            (void)lf_store_stream_version(s, st, &v);
            free(st);
        }
    }
    lf_event_list_free(&l);
    lf_store_close(s);
    rm_files();
    return 0;
}
