/*
 * module.h — loadable modules of lockerfleet (dlopen), found next to the
 * binary. The server-store backends (postgres, nats, redis) and the
 * raw-engine benchmarks are built as modules so that a process that does
 * not use them — above all a unit agent (DESIGN §8: < 8 MiB RSS) — never
 * maps libpq, libnats, hiredis, protobuf-c or OpenSSL's libssl: every
 * DT_NEEDED library costs resident pages for its loading and relocation,
 * used or not.
 *
 * A module NAME is the file NAME.so (e.g. "lockerfleet-store-postgres"),
 * looked for, in order, in
 *   1. $LF_MODULE_DIR, when set (and then only there);
 *   2. the directory of the running binary (/proc/self/exe): the build tree;
 *   3. that directory + LF_MODULE_RELDIR (CMake: the install layout, e.g.
 *      ../lib/lockerfleet from bin/).
 * Modules resolve lf_* functions from the binary (exported with
 * --export-dynamic-symbol=lf_*), so a module only works with the binary
 * it was built with.
 */
#ifndef LF_MODULE_H
#define LF_MODULE_H

/* Returns the address of symbol sym in module name, loading the module on
 * first use (it then stays loaded for the life of the process). NULL with
 * lf_err_get() naming the module, the directories tried and the loader's
 * error when the module cannot be found or loaded or lacks sym.
 * Thread-safe. */
void *lf_module_sym(const char *name, const char *sym);

#endif
