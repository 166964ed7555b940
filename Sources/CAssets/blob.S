/* assets.bin sha256: dd68af6bb1202980de68d7bcec5f49be5b276e2c990265fe3942e7b274b4e204 */
/*
 * The packed dashboard (assets.bin, made by scripts/pack-web.py), linked in as read-only data.
 *
 * The first line above is rewritten by pack-web.py with the sha256 of assets.bin. SwiftPM does
 * not see .incbin inputs as dependencies, so that edit is what makes it re-assemble this file
 * when the dashboard changes.
 *
 * Where assets.bin is found: assemblers look up an .incbin path relative to the cwd and then
 * to each -I directory, NOT relative to this file. SwiftPM always passes the target's public
 * header dir (-I .../Sources/CAssets/include), so "../assets.bin" lands on
 * Sources/CAssets/assets.bin whatever the cwd. By hand:
 *     clang -I Sources/CAssets/include -c Sources/CAssets/blob.S -o blob.o
 *
 * Symbols: cassets_blob_start (first byte), cassets_blob_end (one past the last byte).
 * Use cassets_ptr()/cassets_len() from cassets.h rather than these directly.
 */

#if defined(__ELF__)

    .section .rodata.cassets, "a", @progbits
    .balign 16
    .globl cassets_blob_start
    .type cassets_blob_start, @object
cassets_blob_start:
    .incbin "../assets.bin"
    .globl cassets_blob_end
    .type cassets_blob_end, @object
cassets_blob_end:
    .byte 0     /* keeps cassets_blob_end inside the section; not part of the blob */
    .size cassets_blob_start, cassets_blob_end - cassets_blob_start
    .size cassets_blob_end, 1

    .section .note.GNU-stack, "", @progbits

#elif defined(__APPLE__)

    .section __TEXT,__const
    .p2align 4
    .globl _cassets_blob_start
_cassets_blob_start:
    .incbin "../assets.bin"
    .globl _cassets_blob_end
_cassets_blob_end:
    .byte 0

#else
#error "blob.S: unsupported object format"
#endif
