#define _GNU_SOURCE
#include "czlib.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static int (*p_inflateInit2_)(z_streamp, int, const char *, int);
static int (*p_inflate)(z_streamp, int);
static int (*p_inflateEnd)(z_streamp);

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char load_error[256];

static void load(void) {
    void *lib = dlopen("libz.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(load_error, sizeof load_error, "cannot load the system zlib: %s", dlerror());
        return;
    }
    p_inflateInit2_ = (int (*)(z_streamp, int, const char *, int))dlsym(lib, "inflateInit2_");
    p_inflate = (int (*)(z_streamp, int))dlsym(lib, "inflate");
    p_inflateEnd = (int (*)(z_streamp))dlsym(lib, "inflateEnd");
    if (!p_inflateInit2_ || !p_inflate || !p_inflateEnd) snprintf(load_error, sizeof load_error, "the system zlib is incomplete");
}

int czlib_load(char *why, size_t why_size) {
    pthread_once(&once, load);
    if (load_error[0] == '\0') return 0;
    if (why && why_size) snprintf(why, why_size, "%s", load_error);
    return -1;
}

struct czlib_inflater {
    z_stream stream;
    char error[128];
};

czlib_inflater *czlib_gunzip_new(void) {
    if (czlib_load(NULL, 0) != 0) return NULL;
    czlib_inflater *z = calloc(1, sizeof *z);
    if (!z) return NULL;
    // 15 + 16: a 32 KiB window, gzip framing only (a bare zlib or raw stream is refused).
    if (p_inflateInit2_(&z->stream, 15 + 16, ZLIB_VERSION, (int)sizeof(z_stream)) != Z_OK) {
        free(z);
        return NULL;
    }
    return z;
}

void czlib_inflater_free(czlib_inflater *z) {
    if (!z) return;
    p_inflateEnd(&z->stream);
    free(z);
}

int czlib_inflate(czlib_inflater *z, const uint8_t *in, size_t in_len, size_t *consumed,
                  uint8_t *out, size_t out_cap, size_t *produced) {
    z->stream.next_in = (Bytef *)in;
    z->stream.avail_in = in_len > UINT32_MAX ? UINT32_MAX : (uInt)in_len;
    z->stream.next_out = out;
    z->stream.avail_out = out_cap > UINT32_MAX ? UINT32_MAX : (uInt)out_cap;
    uInt in_before = z->stream.avail_in, out_before = z->stream.avail_out;
    int rc = p_inflate(&z->stream, Z_NO_FLUSH);
    *consumed = in_before - z->stream.avail_in;
    *produced = out_before - z->stream.avail_out;
    switch (rc) {
    case Z_OK: return 0;
    case Z_BUF_ERROR: return 0;  // no progress possible with what was given: the caller gives more
    case Z_STREAM_END: return 1;
    default:
        snprintf(z->error, sizeof z->error, "%s", z->stream.msg ? z->stream.msg : "corrupt gzip data");
        return -1;
    }
}

const char *czlib_error(czlib_inflater *z) { return z->error[0] ? z->error : "corrupt gzip data"; }
