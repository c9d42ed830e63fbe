/* module.c — lf_module_sym (module.h): dlopen of NAME.so next to the binary. */
#define _GNU_SOURCE
#include "core/module.h"

#include "core/lf.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef LF_MODULE_RELDIR
#define LF_MODULE_RELDIR "../lib/lockerfleet"
#endif

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

#define DIR_MAX (PATH_MAX + 256)

/* dirs[] gets up to 2 candidate directories; returns how many. */
static int module_dirs(char dirs[2][DIR_MAX])
{
    const char *env = getenv("LF_MODULE_DIR");
    if (env && *env) {
        int k = snprintf(dirs[0], DIR_MAX, "%s", env);
        return k > 0 && k < DIR_MAX ? 1 : 0;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return 0;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash) return 0;
    *slash = '\0';
    memcpy(dirs[0], exe, (size_t)(slash - exe) + 1);
    int k = snprintf(dirs[1], DIR_MAX, "%s/%s", exe, LF_MODULE_RELDIR);
    return k > 0 && k < DIR_MAX ? 2 : 1;
}

void *lf_module_sym(const char *name, const char *sym)
{
    char dirs[2][DIR_MAX];
    char tried[2 * DIR_MAX + 8] = "";
    char why[512] = "not found";
    void *h = NULL;
    pthread_mutex_lock(&mu); /* one loader at a time: clear error reporting */
    int nd = module_dirs(dirs);
    for (int i = 0; i < nd && !h; i++) {
        char path[DIR_MAX + 128];
        int k = snprintf(path, sizeof path, "%s/%s.so", dirs[i], name);
        if (k < 0 || (size_t)k >= sizeof path) continue;
        size_t tl = strlen(tried);
        snprintf(tried + tl, sizeof tried - tl, "%s%s", tl ? ", " : "", dirs[i]);
        if (access(path, F_OK) != 0) continue;
        /* RTLD_LOCAL: the module's client library stays out of the global
         * scope; RTLD_NOW: a broken module fails here, not mid-request.
         * Never dlclose()d: its ops tables are used until exit. */
        h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            const char *e = dlerror();
            snprintf(why, sizeof why, "%s", e ? e : "dlopen failed");
            break;
        }
    }
    pthread_mutex_unlock(&mu);
    if (!h) {
        lf_err_set("cannot load module %s.so (looked in %s%s): %s", name,
                   tried[0] ? tried : "no directory: /proc/self/exe unreadable",
                   getenv("LF_MODULE_DIR") ? " from $LF_MODULE_DIR" : "", why);
        return NULL;
    }
    void *p = dlsym(h, sym);
    if (!p) lf_err_set("module %s.so has no symbol %s (built for another version?)", name, sym);
    return p;
}
