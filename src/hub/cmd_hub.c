/* cmd_hub.c — 'lockerfleet hub' (not built yet: being written). */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

int lf_cmd_hub(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--help") == 0) {
        printf("usage: lockerfleet hub [options]\n(not implemented yet)\n");
        return 0;
    }
    fprintf(stderr, "lockerfleet hub: not implemented yet\n");
    return 1;
}
