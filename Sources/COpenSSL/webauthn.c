// Signature checks for passkeys (WebAuthn): public keys built from COSE parts, verified by the
// system OpenSSL bound in copenssl.c.
#include "copenssl.h"

#include <string.h>

#include "cossl_private.h"

// ---- WebAuthn signatures ---------------------------------------------------------------------

// The public key of a COSE key's parts: ES256 (x, y on P-256), RS256 (n, e), EdDSA (x of Ed25519).
static EVP_PKEY *public_key(int cose_alg, const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len) {
    if (cose_alg == COSSL_COSE_EDDSA) {
        return a_len == 32 ? p_EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, a, a_len) : NULL;
    }
    const char *type = NULL;
    uint8_t point[65];
    BIGNUM *n = NULL, *e = NULL;
    OSSL_PARAM_BLD *bld = p_OSSL_PARAM_BLD_new();
    if (!bld) return NULL;
    int ok = 0;
    if (cose_alg == COSSL_COSE_ES256) {
        if (a_len != 32 || b_len != 32) goto out;
        point[0] = 0x04;  // uncompressed: 04 || x || y
        memcpy(point + 1, a, 32);
        memcpy(point + 33, b, 32);
        type = "EC";
        ok = p_OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0) &&
             p_OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point);
    } else if (cose_alg == COSSL_COSE_RS256) {
        if (a_len == 0 || a_len > 1024 || b_len == 0 || b_len > 8) goto out;
        type = "RSA";
        n = p_BN_bin2bn(a, (int)a_len, NULL);
        e = p_BN_bin2bn(b, (int)b_len, NULL);
        ok = n && e && p_OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) &&
             p_OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e);
    }
out:;
    EVP_PKEY *key = NULL;
    OSSL_PARAM *params = ok ? p_OSSL_PARAM_BLD_to_param(bld) : NULL;
    if (params) {
        EVP_PKEY_CTX *ctx = p_EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
        // For EC, building the key decodes the point, which fails for one off the curve.
        if (ctx && p_EVP_PKEY_fromdata_init(ctx) == 1) p_EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params);
        if (ctx) p_EVP_PKEY_CTX_free(ctx);
        p_OSSL_PARAM_free(params);
    }
    p_OSSL_PARAM_BLD_free(bld);
    if (n) p_BN_free(n);
    if (e) p_BN_free(e);
    if (key && cose_alg == COSSL_COSE_RS256 && p_EVP_PKEY_get_bits(key) < 2048) {
        p_EVP_PKEY_free(key);
        key = NULL;
    }
    return key;
}

int cossl_verify_signature(int cose_alg, const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
                           const uint8_t *msg, size_t msg_len, const uint8_t *sig, size_t sig_len) {
    if (cossl_load(NULL, 0) != 0) return COSSL_SIG_BAD_KEY;
    EVP_PKEY *key = public_key(cose_alg, a, a_len, b, b_len);
    if (!key) { p_ERR_clear_error(); return COSSL_SIG_BAD_KEY; }
    int result = COSSL_SIG_INVALID;
    EVP_MD_CTX *md = p_EVP_MD_CTX_new();
    // Ed25519 hashes internally (no digest is named); ECDSA and RSA over SHA-256.
    const EVP_MD *digest = cose_alg == COSSL_COSE_EDDSA ? NULL : p_EVP_sha256();
    if (md && p_EVP_DigestVerifyInit(md, NULL, digest, NULL, key) == 1 &&
        p_EVP_DigestVerify(md, sig, sig_len, msg, msg_len) == 1) {
        result = COSSL_SIG_VALID;
    }
    if (md) p_EVP_MD_CTX_free(md);
    p_EVP_PKEY_free(key);
    p_ERR_clear_error();
    return result;
}
