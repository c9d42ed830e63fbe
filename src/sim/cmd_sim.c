/* cmd_sim.c — 'lockerfleet sim' (not built yet: being written). */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

int lf_cmd_sim(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--help") == 0) {
        printf("usage: lockerfleet sim [options]\n(not implemented yet)\n");
        return 0;
    }
    fprintf(stderr, "lockerfleet sim: not implemented yet\n");
    return 1;
}
