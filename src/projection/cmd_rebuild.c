/* cmd_rebuild.c — 'lockerfleet rebuild' (not built yet: being written). */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

int lf_cmd_rebuild(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--help") == 0) {
        printf("usage: lockerfleet rebuild [options]\n(not implemented yet)\n");
        return 0;
    }
    fprintf(stderr, "lockerfleet rebuild: not implemented yet\n");
    return 1;
}
