// Shared by the COpenSSL sources, not part of the target's interface: the OpenSSL headers and
// the table of functions bound from the system libraries at run time.
#ifndef COSSL_PRIVATE_H
#define COSSL_PRIVATE_H

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

// ---- binding the system libraries ------------------------------------------------------------
// Every OpenSSL function called here: X(library, name, return type, (parameters)). Macros of
// OpenSSL's API (SSL_CTX_set_min_proto_version, BIO_set_mem_eof_return, ...) expand to the
// *_ctrl functions listed, so the sources call those directly.
#define COSSL_FUNCTIONS(X)                                                                         \
    X(ssl, TLS_server_method, const SSL_METHOD *, (void))                                          \
    X(ssl, TLS_client_method, const SSL_METHOD *, (void))                                          \
    X(ssl, SSL_CTX_set_default_verify_paths, int, (SSL_CTX *))                                     \
    X(ssl, SSL_CTX_set_verify, void, (SSL_CTX *, int, SSL_verify_cb))                              \
    X(ssl, SSL_set1_host, int, (SSL *, const char *))                                              \
    X(ssl, SSL_ctrl, long, (SSL *, int, long, void *))                                             \
    X(ssl, SSL_set_connect_state, void, (SSL *))                                                   \
    X(ssl, SSL_get_verify_result, long, (const SSL *))                                             \
    X(crypto, X509_verify_cert_error_string, const char *, (long))                                 \
    X(ssl, SSL_CTX_new, SSL_CTX *, (const SSL_METHOD *))                                           \
    X(ssl, SSL_CTX_free, void, (SSL_CTX *))                                                        \
    X(ssl, SSL_CTX_ctrl, long, (SSL_CTX *, int, long, void *))                                     \
    X(ssl, SSL_CTX_set_options, uint64_t, (SSL_CTX *, uint64_t))                                   \
    X(ssl, SSL_CTX_use_certificate_chain_file, int, (SSL_CTX *, const char *))                     \
    X(ssl, SSL_CTX_use_PrivateKey_file, int, (SSL_CTX *, const char *, int))                       \
    X(ssl, SSL_CTX_check_private_key, int, (const SSL_CTX *))                                      \
    X(ssl, SSL_new, SSL *, (SSL_CTX *))                                                            \
    X(ssl, SSL_free, void, (SSL *))                                                                \
    X(ssl, SSL_set_bio, void, (SSL *, BIO *, BIO *))                                               \
    X(ssl, SSL_set_accept_state, void, (SSL *))                                                    \
    X(ssl, SSL_do_handshake, int, (SSL *))                                                         \
    X(ssl, SSL_read, int, (SSL *, void *, int))                                                    \
    X(ssl, SSL_write, int, (SSL *, const void *, int))                                             \
    X(ssl, SSL_shutdown, int, (SSL *))                                                             \
    X(ssl, SSL_get_error, int, (const SSL *, int))                                                 \
    X(crypto, BIO_new, BIO *, (const BIO_METHOD *))                                                \
    X(crypto, BIO_s_mem, const BIO_METHOD *, (void))                                               \
    X(crypto, BIO_free, int, (BIO *))                                                              \
    X(crypto, BIO_write, int, (BIO *, const void *, int))                                          \
    X(crypto, BIO_read, int, (BIO *, void *, int))                                                 \
    X(crypto, BIO_ctrl, long, (BIO *, int, long, void *))                                          \
    X(crypto, BIO_ctrl_pending, size_t, (BIO *))                                                   \
    X(crypto, ERR_get_error, unsigned long, (void))                                                \
    X(crypto, ERR_clear_error, void, (void))                                                       \
    X(crypto, ERR_error_string_n, void, (unsigned long, char *, size_t))                           \
    X(crypto, EVP_PKEY_Q_keygen, EVP_PKEY *, (OSSL_LIB_CTX *, const char *, const char *, ...))    \
    X(crypto, EVP_PKEY_free, void, (EVP_PKEY *))                                                   \
    X(crypto, EVP_sha256, const EVP_MD *, (void))                                                  \
    X(crypto, EVP_sha1, const EVP_MD *, (void))                                                    \
    X(crypto, EVP_Digest, int, (const void *, size_t, unsigned char *, unsigned int *, const EVP_MD *, ENGINE *)) \
    X(crypto, RAND_bytes, int, (unsigned char *, int))                                             \
    X(crypto, EVP_aes_256_gcm, const EVP_CIPHER *, (void))                                          \
    X(crypto, EVP_CIPHER_CTX_new, EVP_CIPHER_CTX *, (void))                                         \
    X(crypto, EVP_CIPHER_CTX_free, void, (EVP_CIPHER_CTX *))                                        \
    X(crypto, EVP_CIPHER_CTX_ctrl, int, (EVP_CIPHER_CTX *, int, int, void *))                       \
    X(crypto, EVP_EncryptInit_ex, int, (EVP_CIPHER_CTX *, const EVP_CIPHER *, ENGINE *, const unsigned char *, const unsigned char *)) \
    X(crypto, EVP_EncryptUpdate, int, (EVP_CIPHER_CTX *, unsigned char *, int *, const unsigned char *, int)) \
    X(crypto, EVP_EncryptFinal_ex, int, (EVP_CIPHER_CTX *, unsigned char *, int *))                \
    X(crypto, EVP_DecryptInit_ex, int, (EVP_CIPHER_CTX *, const EVP_CIPHER *, ENGINE *, const unsigned char *, const unsigned char *)) \
    X(crypto, EVP_DecryptUpdate, int, (EVP_CIPHER_CTX *, unsigned char *, int *, const unsigned char *, int)) \
    X(crypto, EVP_DecryptFinal_ex, int, (EVP_CIPHER_CTX *, unsigned char *, int *))                \
    X(crypto, BN_bin2bn, BIGNUM *, (const unsigned char *, int, BIGNUM *))                         \
    X(crypto, BN_to_ASN1_INTEGER, ASN1_INTEGER *, (const BIGNUM *, ASN1_INTEGER *))                \
    X(crypto, BN_free, void, (BIGNUM *))                                                           \
    X(crypto, X509_new, X509 *, (void))                                                            \
    X(crypto, X509_free, void, (X509 *))                                                           \
    X(crypto, X509_set_version, int, (X509 *, long))                                               \
    X(crypto, X509_get_serialNumber, ASN1_INTEGER *, (X509 *))                                     \
    X(crypto, X509_getm_notBefore, ASN1_TIME *, (const X509 *))                                    \
    X(crypto, X509_getm_notAfter, ASN1_TIME *, (const X509 *))                                     \
    X(crypto, X509_gmtime_adj, ASN1_TIME *, (ASN1_TIME *, long))                                   \
    X(crypto, X509_set_pubkey, int, (X509 *, EVP_PKEY *))                                          \
    X(crypto, X509_get_subject_name, X509_NAME *, (const X509 *))                                  \
    X(crypto, X509_set_issuer_name, int, (X509 *, const X509_NAME *))                              \
    X(crypto, X509_NAME_add_entry_by_txt, int,                                                     \
      (X509_NAME *, const char *, int, const unsigned char *, int, int, int))                      \
    X(crypto, X509V3_set_ctx, void, (X509V3_CTX *, X509 *, X509 *, X509_REQ *, X509_CRL *, int))   \
    X(crypto, X509V3_EXT_conf_nid, X509_EXTENSION *, (LHASH_OF(CONF_VALUE) *, X509V3_CTX *, int, const char *)) \
    X(crypto, X509_add_ext, int, (X509 *, X509_EXTENSION *, int))                                  \
    X(crypto, X509_EXTENSION_free, void, (X509_EXTENSION *))                                       \
    X(crypto, X509_sign, int, (X509 *, EVP_PKEY *, const EVP_MD *))                                \
    X(crypto, X509_digest, int, (const X509 *, const EVP_MD *, unsigned char *, unsigned int *))   \
    X(crypto, PEM_write_X509, int, (FILE *, const X509 *))                                         \
    X(crypto, PEM_write_PrivateKey, int,                                                           \
      (FILE *, const EVP_PKEY *, const EVP_CIPHER *, const unsigned char *, int, pem_password_cb *, void *)) \
    X(crypto, PEM_read_X509, X509 *, (FILE *, X509 **, pem_password_cb *, void *))               \
    X(crypto, OSSL_PARAM_BLD_new, OSSL_PARAM_BLD *, (void))                                        \
    X(crypto, OSSL_PARAM_BLD_free, void, (OSSL_PARAM_BLD *))                                       \
    X(crypto, OSSL_PARAM_BLD_push_utf8_string, int, (OSSL_PARAM_BLD *, const char *, const char *, size_t)) \
    X(crypto, OSSL_PARAM_BLD_push_octet_string, int, (OSSL_PARAM_BLD *, const char *, const void *, size_t)) \
    X(crypto, OSSL_PARAM_BLD_push_BN, int, (OSSL_PARAM_BLD *, const char *, const BIGNUM *))       \
    X(crypto, OSSL_PARAM_BLD_to_param, OSSL_PARAM *, (OSSL_PARAM_BLD *))                           \
    X(crypto, OSSL_PARAM_free, void, (OSSL_PARAM *))                                               \
    X(crypto, EVP_PKEY_CTX_new_from_name, EVP_PKEY_CTX *, (OSSL_LIB_CTX *, const char *, const char *)) \
    X(crypto, EVP_PKEY_CTX_free, void, (EVP_PKEY_CTX *))                                           \
    X(crypto, EVP_PKEY_fromdata_init, int, (EVP_PKEY_CTX *))                                       \
    X(crypto, EVP_PKEY_fromdata, int, (EVP_PKEY_CTX *, EVP_PKEY **, int, OSSL_PARAM *))            \
    X(crypto, EVP_PKEY_new_raw_public_key, EVP_PKEY *, (int, ENGINE *, const unsigned char *, size_t)) \
    X(crypto, EVP_PKEY_get_bits, int, (const EVP_PKEY *))                                          \
    X(crypto, EVP_MD_CTX_new, EVP_MD_CTX *, (void))                                                \
    X(crypto, EVP_MD_CTX_free, void, (EVP_MD_CTX *))                                               \
    X(crypto, EVP_DigestVerifyInit, int, (EVP_MD_CTX *, EVP_PKEY_CTX **, const EVP_MD *, ENGINE *, EVP_PKEY *)) \
    X(crypto, EVP_DigestVerify, int, (EVP_MD_CTX *, const unsigned char *, size_t, const unsigned char *, size_t)) \
    X(crypto, EVP_PKEY_new_raw_private_key, EVP_PKEY *, (int, ENGINE *, const unsigned char *, size_t)) \
    X(crypto, EVP_PKEY_get_raw_private_key, int, (const EVP_PKEY *, unsigned char *, size_t *))  \
    X(crypto, EVP_PKEY_get_raw_public_key, int, (const EVP_PKEY *, unsigned char *, size_t *))   \
    X(crypto, EVP_DigestSignInit, int, (EVP_MD_CTX *, EVP_PKEY_CTX **, const EVP_MD *, ENGINE *, EVP_PKEY *)) \
    X(crypto, EVP_DigestSign, int, (EVP_MD_CTX *, unsigned char *, size_t *, const unsigned char *, size_t)) \
    X(crypto, HMAC, unsigned char *, (const EVP_MD *, const void *, int, const unsigned char *, size_t, unsigned char *, unsigned int *))

// Bound by cossl_load (copenssl.c); hidden, so they never clash with another library's symbols.
#define DECLARE_POINTER(lib, name, ret, params) extern __attribute__((visibility("hidden"))) ret(*p_##name) params;
COSSL_FUNCTIONS(DECLARE_POINTER)

// Wraps an SSL (taking it, also on failure) in a connection over two memory buffers
// (copenssl.c); the caller sets the role.
__attribute__((visibility("hidden"))) struct cossl_conn *cossl_conn_wrap(SSL *ssl);

#endif
