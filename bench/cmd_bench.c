/* cmd_bench.c — 'lockerfleet bench' (not built yet: being written). */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

int lf_cmd_bench(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--help") == 0) {
        printf("usage: lockerfleet bench [options]\n(not implemented yet)\n");
        return 0;
    }
    fprintf(stderr, "lockerfleet bench: not implemented yet\n");
    return 1;
}
