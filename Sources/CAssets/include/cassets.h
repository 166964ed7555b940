#ifndef CASSETS_H
#define CASSETS_H

/*
 * The packed dashboard, embedded in the binary (see Sources/CAssets/blob.S and
 * scripts/pack-web.py for the format: "CLWA", u32le index length, JSON index, gzip'd files).
 * The bytes are read-only and live for the whole process.
 */

#ifdef __cplusplus
extern "C" {
#endif

/* First byte of assets.bin. */
const unsigned char *cassets_ptr(void);

/* Length of assets.bin in bytes. */
unsigned long cassets_len(void);

#ifdef __cplusplus
}
#endif

#endif /* CASSETS_H */
