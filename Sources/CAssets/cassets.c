#include "cassets.h"

/* Defined in blob.S around the .incbin of assets.bin. */
extern const unsigned char cassets_blob_start[];
extern const unsigned char cassets_blob_end[];

const unsigned char *cassets_ptr(void) {
    return cassets_blob_start;
}

unsigned long cassets_len(void) {
    return (unsigned long)(cassets_blob_end - cassets_blob_start);
}
