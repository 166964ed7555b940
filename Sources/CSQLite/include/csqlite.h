// The system libsqlite3, bound at run time.
//
// The daemon uses SQLite; the instance init, an exec of the same binary, never does. Linked
// normally, libsqlite3.so would be loaded and relocated at every instance launch for nothing
// (docs/performance.md), so this target defines the few sqlite3_* functions the store calls
// as forwarders to the system library, which is dlopen'ed on first use.
#ifndef CSQLITE_H
#define CSQLITE_H

#include <stddef.h>
#include <sqlite3.h>

// Loads libsqlite3.so.0 if it is not loaded yet. Returns 0, or -1 with the reason in `why`.
int csqlite_load(char *why, size_t why_size);

#endif
