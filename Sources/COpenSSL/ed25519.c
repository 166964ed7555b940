// Ed25519 through the system OpenSSL bound in copenssl.c: the appliance's one device key, which
// it signs OpenClaw's connect challenge with (webauthn.c verifies Ed25519; this side signs).
// The key travels as its raw 32-byte seed: the file that keeps it needs no ASN.1 and the seed
// is all RFC 8032 needs to rebuild it.
#include "copenssl.h"

#include "cossl_private.h"

static int raw_public(EVP_PKEY *key, uint8_t public_key[32]) {
    size_t len = 32;
    return p_EVP_PKEY_get_raw_public_key(key, public_key, &len) == 1 && len == 32 ? 0 : -1;
}

int cossl_ed25519_keygen(uint8_t seed[32], uint8_t public_key[32]) {
    if (cossl_load(NULL, 0) != 0) return -1;
    EVP_PKEY *key = p_EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!key) { p_ERR_clear_error(); return -1; }
    size_t len = 32;
    int rc = p_EVP_PKEY_get_raw_private_key(key, seed, &len) == 1 && len == 32 ? raw_public(key, public_key) : -1;
    p_EVP_PKEY_free(key);
    p_ERR_clear_error();
    return rc;
}

int cossl_ed25519_public(const uint8_t seed[32], uint8_t public_key[32]) {
    if (cossl_load(NULL, 0) != 0) return -1;
    EVP_PKEY *key = p_EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
    if (!key) { p_ERR_clear_error(); return -1; }
    int rc = raw_public(key, public_key);
    p_EVP_PKEY_free(key);
    p_ERR_clear_error();
    return rc;
}

int cossl_ed25519_sign(const uint8_t seed[32], const uint8_t *msg, size_t msg_len, uint8_t sig[64]) {
    if (cossl_load(NULL, 0) != 0) return -1;
    EVP_PKEY *key = p_EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
    if (!key) { p_ERR_clear_error(); return -1; }
    int rc = -1;
    EVP_MD_CTX *md = p_EVP_MD_CTX_new();
    size_t len = 64;
    // Ed25519 is one-shot and hashes internally: no digest is named.
    if (md && p_EVP_DigestSignInit(md, NULL, NULL, NULL, key) == 1 &&
        p_EVP_DigestSign(md, sig, &len, msg, msg_len) == 1 && len == 64) {
        rc = 0;
    }
    if (md) p_EVP_MD_CTX_free(md);
    p_EVP_PKEY_free(key);
    p_ERR_clear_error();
    return rc;
}
