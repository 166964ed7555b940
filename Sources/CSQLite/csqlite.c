#define _GNU_SOURCE
#include "csqlite.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Every function the store calls: X(name, return type, (parameters), (arguments)).
#define CSQLITE_FUNCTIONS(X) \
    X(sqlite3_open_v2, int, (const char *f, sqlite3 **db, int flags, const char *vfs), (f, db, flags, vfs)) \
    X(sqlite3_close, int, (sqlite3 *db), (db)) \
    X(sqlite3_exec, int, (sqlite3 *db, const char *sql, int (*cb)(void *, int, char **, char **), void *arg, char **err), (db, sql, cb, arg, err)) \
    X(sqlite3_busy_timeout, int, (sqlite3 *db, int ms), (db, ms)) \
    X(sqlite3_errmsg, const char *, (sqlite3 *db), (db)) \
    X(sqlite3_extended_errcode, int, (sqlite3 *db), (db)) \
    X(sqlite3_changes, int, (sqlite3 *db), (db)) \
    X(sqlite3_last_insert_rowid, sqlite3_int64, (sqlite3 *db), (db)) \
    X(sqlite3_prepare_v2, int, (sqlite3 *db, const char *sql, int n, sqlite3_stmt **st, const char **tail), (db, sql, n, st, tail)) \
    X(sqlite3_finalize, int, (sqlite3_stmt *st), (st)) \
    X(sqlite3_step, int, (sqlite3_stmt *st), (st)) \
    X(sqlite3_bind_int64, int, (sqlite3_stmt *st, int i, sqlite3_int64 v), (st, i, v)) \
    X(sqlite3_bind_null, int, (sqlite3_stmt *st, int i), (st, i)) \
    X(sqlite3_bind_text, int, (sqlite3_stmt *st, int i, const char *v, int n, void (*d)(void *)), (st, i, v, n, d)) \
    X(sqlite3_column_count, int, (sqlite3_stmt *st), (st)) \
    X(sqlite3_column_name, const char *, (sqlite3_stmt *st, int i), (st, i)) \
    X(sqlite3_column_type, int, (sqlite3_stmt *st, int i), (st, i)) \
    X(sqlite3_column_int64, sqlite3_int64, (sqlite3_stmt *st, int i), (st, i)) \
    X(sqlite3_column_text, const unsigned char *, (sqlite3_stmt *st, int i), (st, i))

#define DECLARE_POINTER(name, ret, params, args) static ret(*p_##name) params;
CSQLITE_FUNCTIONS(DECLARE_POINTER)
static void (*p_sqlite3_free)(void *);

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char load_error[256];

static void load(void) {
    void *lib = dlopen("libsqlite3.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(load_error, sizeof load_error, "cannot load the system SQLite library: %s", dlerror());
        return;
    }
#define RESOLVE(name, ret, params, args)                                                       \
    p_##name = (ret(*) params)dlsym(lib, #name);                                               \
    if (!p_##name) {                                                                           \
        snprintf(load_error, sizeof load_error, "the system SQLite library lacks %s", #name);  \
        return;                                                                                \
    }
    CSQLITE_FUNCTIONS(RESOLVE)
    RESOLVE(sqlite3_free, void, (void *), ())
}

int csqlite_load(char *why, size_t why_size) {
    pthread_once(&once, load);
    if (load_error[0] == '\0') return 0;
    if (why && why_size) snprintf(why, why_size, "%s", load_error);
    return -1;
}

// A forwarder reached without a successful csqlite_load is a programming error: the store
// loads the library before it opens a database.
static void require_loaded(const char *name) {
    if (csqlite_load(NULL, 0) == 0) return;
    fprintf(stderr, "claworc: %s called without SQLite: %s\n", name, load_error);
    abort();
}

#define FORWARD(name, ret, params, args) \
    ret name params {                    \
        require_loaded(#name);           \
        return p_##name args;            \
    }
CSQLITE_FUNCTIONS(FORWARD)

void sqlite3_free(void *p) {
    require_loaded("sqlite3_free");
    p_sqlite3_free(p);
}
