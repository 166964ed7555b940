// The system zlib (libz.so.1), bound at run time, for reading gzip'd uploads (agent bundles).
// Like SQLite and OpenSSL it is dlopen'ed on first use: the instance init, an exec of this
// binary, never loads it. Swift sees an opaque inflater.
#ifndef CZLIB_H
#define CZLIB_H

#include <stddef.h>
#include <stdint.h>

typedef struct czlib_inflater czlib_inflater;

// Loads libz.so.1. 0, or -1 with the reason in `why`.
int czlib_load(char *why, size_t why_size);

// A gzip (RFC 1952) decoder; NULL when out of memory or zlib cannot be loaded.
czlib_inflater *czlib_gunzip_new(void);
void czlib_inflater_free(czlib_inflater *z);

// Decodes from `in` into `out`. *consumed and *produced report progress. Returns 0 while more
// is expected, 1 at the end of the gzip stream, -1 on corrupt input (reason in czlib_error).
int czlib_inflate(czlib_inflater *z, const uint8_t *in, size_t in_len, size_t *consumed,
                  uint8_t *out, size_t out_cap, size_t *produced);
const char *czlib_error(czlib_inflater *z);

#endif
