#define _GNU_SOURCE
#include "copenssl.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cossl_private.h"

#define DEFINE_POINTER(lib, name, ret, params) ret(*p_##name) params;
COSSL_FUNCTIONS(DEFINE_POINTER)

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char load_error[256];

static void load(void) {
    // libssl needs libcrypto; loading libssl first brings both in.
    void *ssl = dlopen("libssl.so.3", RTLD_NOW | RTLD_LOCAL);
    void *crypto = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL);
    if (!ssl || !crypto) {
        snprintf(load_error, sizeof load_error, "cannot load the system OpenSSL 3 (libssl3): %s", dlerror());
        return;
    }
#define RESOLVE(lib, name, ret, params)                                                        \
    p_##name = (ret(*) params)dlsym(lib, #name);                                               \
    if (!p_##name) {                                                                           \
        snprintf(load_error, sizeof load_error, "the system OpenSSL lacks %s", #name);         \
        return;                                                                                \
    }
    COSSL_FUNCTIONS(RESOLVE)
}

int cossl_load(char *why, size_t why_size) {
    pthread_once(&once, load);
    if (load_error[0] == '\0') return 0;
    if (why && why_size) snprintf(why, why_size, "%s", load_error);
    return -1;
}

// The reason for the last failure: OpenSSL's error queue if it has one, else `what`.
static void explain(char *why, size_t why_size, const char *what) {
    if (!why || !why_size) return;
    unsigned long code = p_ERR_get_error ? p_ERR_get_error() : 0;
    if (code) {
        char detail[200];
        p_ERR_error_string_n(code, detail, sizeof detail);
        snprintf(why, why_size, "%s: %s", what, detail);
    } else {
        snprintf(why, why_size, "%s", what);
    }
    if (p_ERR_clear_error) p_ERR_clear_error();
}

int cossl_sha256(const void *bytes, size_t len, uint8_t out[32]) {
    if (cossl_load(NULL, 0) != 0) return -1;
    unsigned int n = 0;
    return p_EVP_Digest(bytes, len, out, &n, p_EVP_sha256(), NULL) == 1 && n == 32 ? 0 : -1;
}

int cossl_sha1(const void *bytes, size_t len, uint8_t out[20]) {
    if (cossl_load(NULL, 0) != 0) return -1;
    unsigned int n = 0;
    return p_EVP_Digest(bytes, len, out, &n, p_EVP_sha1(), NULL) == 1 && n == 20 ? 0 : -1;
}

int cossl_hmac_sha256(const uint8_t *key, size_t key_len, const void *bytes, size_t len, uint8_t out[32]) {
    if (cossl_load(NULL, 0) != 0 || key_len > INT32_MAX) return -1;
    unsigned int n = 0;
    return p_HMAC(p_EVP_sha256(), key, (int)key_len, bytes, len, out, &n) && n == 32 ? 0 : -1;
}

// ---- AES-256-GCM ------------------------------------------------------------------------------

int cossl_random(uint8_t *out, size_t len) {
    if (cossl_load(NULL, 0) != 0 || len > INT32_MAX) return -1;
    return p_RAND_bytes(out, (int)len) == 1 ? 0 : -1;
}

static int gcm(int seal, const uint8_t key[32], const uint8_t nonce[12], const uint8_t *aad, size_t aad_len,
               const uint8_t *in, size_t len, uint8_t *out, uint8_t tag[16]) {
    if (cossl_load(NULL, 0) != 0 || len > INT32_MAX || aad_len > INT32_MAX) return -1;
    EVP_CIPHER_CTX *ctx = p_EVP_CIPHER_CTX_new();
    if (!ctx) return -1;
    int ok = 0, n = 0;
    if (seal) {
        ok = p_EVP_EncryptInit_ex(ctx, p_EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
             p_EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) == 1 &&
             p_EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) == 1 &&
             (aad_len == 0 || p_EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aad_len) == 1) &&
             p_EVP_EncryptUpdate(ctx, out, &n, in, (int)len) == 1 && (size_t)n == len &&
             p_EVP_EncryptFinal_ex(ctx, out + n, &n) == 1 &&
             p_EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1;
    } else {
        ok = p_EVP_DecryptInit_ex(ctx, p_EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
             p_EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) == 1 &&
             p_EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce) == 1 &&
             (aad_len == 0 || p_EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aad_len) == 1) &&
             p_EVP_DecryptUpdate(ctx, out, &n, in, (int)len) == 1 && (size_t)n == len &&
             p_EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, tag) == 1 &&
             p_EVP_DecryptFinal_ex(ctx, out + n, &n) == 1;   // fails when the tag does not match
    }
    p_EVP_CIPHER_CTX_free(ctx);
    if (p_ERR_clear_error) p_ERR_clear_error();
    return ok ? 0 : -1;
}

int cossl_aes256gcm_seal(const uint8_t key[32], const uint8_t nonce[12], const uint8_t *aad, size_t aad_len,
                         const uint8_t *plaintext, size_t len, uint8_t *ciphertext, uint8_t tag[16]) {
    return gcm(1, key, nonce, aad, aad_len, plaintext, len, ciphertext, tag);
}

int cossl_aes256gcm_open(const uint8_t key[32], const uint8_t nonce[12], const uint8_t *aad, size_t aad_len,
                         const uint8_t *ciphertext, size_t len, const uint8_t tag[16], uint8_t *plaintext) {
    return gcm(0, key, nonce, aad, aad_len, ciphertext, len, plaintext, (uint8_t *)tag);
}

// ---- certificates ----------------------------------------------------------------------------

static int add_extension(X509 *cert, X509V3_CTX *ctx, int nid, const char *value) {
    X509_EXTENSION *ext = p_X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    if (!ext) return -1;
    int ok = p_X509_add_ext(cert, ext, -1);
    p_X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

// Writes with `write_pem` into `<path>.tmp` (mode 0600), then renames it over `path`.
static int write_file(const char *path, int (*write_pem)(FILE *, void *), void *object) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) return -1;
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return -1;
    FILE *f = fdopen(fd, "w");
    if (!f) { close(fd); unlink(tmp); return -1; }
    int ok = write_pem(f, object) && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) { unlink(tmp); return -1; }
    return 0;
}

static int pem_certificate(FILE *f, void *cert) { return p_PEM_write_X509(f, cert); }
static int pem_key(FILE *f, void *key) { return p_PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL); }

int cossl_make_self_signed(const char *cert_path, const char *key_path,
                           const char *const *dns_names, int dns_count,
                           const char *const *ip_addresses, int ip_count,
                           const char *common_name, int days, char *why, size_t why_size) {
    if (cossl_load(why, why_size) != 0) return -1;
    int result = -1;
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    char *names = NULL;

    key = p_EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!key) { explain(why, why_size, "making a P-256 key"); goto out; }
    cert = p_X509_new();
    if (!cert || !p_X509_set_version(cert, 2)) { explain(why, why_size, "making a certificate"); goto out; }

    // A random positive 128-bit serial: browsers remember certificates by issuer and serial.
    unsigned char serial[16];
    if (p_RAND_bytes(serial, sizeof serial) != 1) { explain(why, why_size, "drawing a serial"); goto out; }
    serial[0] &= 0x7f;
    BIGNUM *bn = p_BN_bin2bn(serial, sizeof serial, NULL);
    int serial_ok = bn && p_BN_to_ASN1_INTEGER(bn, p_X509_get_serialNumber(cert));
    p_BN_free(bn);
    if (!serial_ok) { explain(why, why_size, "setting the serial"); goto out; }

    // Valid from an hour ago, so a client clock slightly behind still accepts it.
    if (!p_X509_gmtime_adj(p_X509_getm_notBefore(cert), -3600) ||
        !p_X509_gmtime_adj(p_X509_getm_notAfter(cert), (long)days * 86400) ||
        !p_X509_set_pubkey(cert, key)) {
        explain(why, why_size, "setting validity and key");
        goto out;
    }
    X509_NAME *subject = p_X509_get_subject_name(cert);
    if (!p_X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_UTF8, (const unsigned char *)"Claworc appliance", -1, -1, 0) ||
        !p_X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8, (const unsigned char *)common_name, -1, -1, 0) ||
        !p_X509_set_issuer_name(cert, subject)) {
        explain(why, why_size, "setting the subject");
        goto out;
    }

    // subjectAltName: what browsers match the address bar against ("DNS:a,IP:192.0.2.1").
    size_t size = 1;
    for (int i = 0; i < dns_count; i++) size += strlen(dns_names[i]) + 5;
    for (int i = 0; i < ip_count; i++) size += strlen(ip_addresses[i]) + 4;
    names = calloc(1, size);
    if (!names) { explain(why, why_size, "out of memory"); goto out; }
    for (int i = 0; i < dns_count; i++) {
        if (strchr(dns_names[i], ',')) { explain(why, why_size, "a name contains a comma"); goto out; }
        strcat(names, names[0] ? ",DNS:" : "DNS:");
        strcat(names, dns_names[i]);
    }
    for (int i = 0; i < ip_count; i++) {
        if (strchr(ip_addresses[i], ',')) { explain(why, why_size, "an address contains a comma"); goto out; }
        strcat(names, names[0] ? ",IP:" : "IP:");
        strcat(names, ip_addresses[i]);
    }
    X509V3_CTX ctx;
    p_X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
    if ((names[0] && add_extension(cert, &ctx, NID_subject_alt_name, names) != 0) ||
        add_extension(cert, &ctx, NID_basic_constraints, "critical,CA:FALSE") != 0 ||
        add_extension(cert, &ctx, NID_key_usage, "critical,digitalSignature") != 0 ||
        add_extension(cert, &ctx, NID_ext_key_usage, "serverAuth") != 0 ||
        add_extension(cert, &ctx, NID_subject_key_identifier, "hash") != 0) {
        explain(why, why_size, "adding extensions");
        goto out;
    }
    if (!p_X509_sign(cert, key, p_EVP_sha256())) { explain(why, why_size, "signing"); goto out; }

    // The key first: a certificate on disk without its key would be kept and never work.
    if (write_file(key_path, pem_key, key) != 0) {
        snprintf(why, why_size, "writing %s: %s", key_path, strerror(errno));
        goto out;
    }
    if (write_file(cert_path, pem_certificate, cert) != 0) {
        snprintf(why, why_size, "writing %s: %s", cert_path, strerror(errno));
        unlink(key_path);
        goto out;
    }
    result = 0;
out:
    free(names);
    if (cert) p_X509_free(cert);
    if (key) p_EVP_PKEY_free(key);
    return result;
}

int cossl_certificate_sha256(const char *cert_path, uint8_t out[32], char *why, size_t why_size) {
    if (cossl_load(why, why_size) != 0) return -1;
    FILE *f = fopen(cert_path, "re");
    if (!f) {
        snprintf(why, why_size, "opening %s: %s", cert_path, strerror(errno));
        return -1;
    }
    X509 *cert = p_PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (!cert) { explain(why, why_size, "reading the certificate"); return -1; }
    unsigned int len = 0;
    int ok = p_X509_digest(cert, p_EVP_sha256(), out, &len) && len == 32;
    p_X509_free(cert);
    if (!ok) { explain(why, why_size, "hashing the certificate"); return -1; }
    return 0;
}

// ---- server ----------------------------------------------------------------------------------

struct cossl_server {
    SSL_CTX *ctx;
};

cossl_server *cossl_server_new(const char *cert_path, const char *key_path, char *why, size_t why_size) {
    if (cossl_load(why, why_size) != 0) return NULL;
    SSL_CTX *ctx = p_SSL_CTX_new(p_TLS_server_method());
    if (!ctx) { explain(why, why_size, "making a TLS context"); return NULL; }
    p_SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, TLS1_2_VERSION, NULL);
    // No renegotiation (a client-driven CPU sink), no compression (CRIME), no tickets (their
    // key would live as long as the process, weakening forward secrecy); the server picks.
    p_SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_NO_TICKET |
                                   SSL_OP_CIPHER_SERVER_PREFERENCE);
    p_SSL_CTX_ctrl(ctx, SSL_CTRL_SET_SESS_CACHE_MODE, SSL_SESS_CACHE_OFF, NULL);
    if (p_SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1) {
        explain(why, why_size, "loading the certificate");
        p_SSL_CTX_free(ctx);
        return NULL;
    }
    if (p_SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1 || p_SSL_CTX_check_private_key(ctx) != 1) {
        explain(why, why_size, "loading the private key (does it match the certificate?)");
        p_SSL_CTX_free(ctx);
        return NULL;
    }
    cossl_server *server = calloc(1, sizeof *server);
    if (!server) { p_SSL_CTX_free(ctx); snprintf(why, why_size, "out of memory"); return NULL; }
    server->ctx = ctx;
    return server;
}

void cossl_server_free(cossl_server *server) {
    if (!server) return;
    p_SSL_CTX_free(server->ctx);
    free(server);
}

// ---- connections -----------------------------------------------------------------------------

struct cossl_conn {
    SSL *ssl;
    BIO *in;   // bytes from the peer, read by OpenSSL
    BIO *out;  // bytes OpenSSL wrote for the peer
    char error[256];
};

cossl_conn *cossl_conn_new(cossl_server *server) {
    SSL *ssl = p_SSL_new(server->ctx);
    if (!ssl) return NULL;
    cossl_conn *conn = cossl_conn_wrap(ssl);
    if (conn) p_SSL_set_accept_state(conn->ssl);
    return conn;
}

cossl_conn *cossl_conn_wrap(SSL *ssl) {
    cossl_conn *conn = calloc(1, sizeof *conn);
    if (!conn) { p_SSL_free(ssl); return NULL; }
    conn->ssl = ssl;
    conn->in = p_BIO_new(p_BIO_s_mem());
    conn->out = p_BIO_new(p_BIO_s_mem());
    if (!conn->ssl || !conn->in || !conn->out) {
        if (conn->ssl) p_SSL_free(conn->ssl);
        if (conn->in) p_BIO_free(conn->in);
        if (conn->out) p_BIO_free(conn->out);
        free(conn);
        return NULL;
    }
    // An empty input buffer means "wait for more", not end of stream.
    p_BIO_ctrl(conn->in, BIO_C_SET_BUF_MEM_EOF_RETURN, -1, NULL);
    p_SSL_set_bio(conn->ssl, conn->in, conn->out);  // the SSL owns both from here
    return conn;
}

void cossl_conn_free(cossl_conn *conn) {
    if (!conn) return;
    p_SSL_free(conn->ssl);
    free(conn);
}

static int fail(cossl_conn *conn, const char *what) {
    explain(conn->error, sizeof conn->error, what);
    return COSSL_ERROR;
}

int cossl_feed(cossl_conn *conn, const uint8_t *bytes, size_t len) {
    while (len > 0) {
        int chunk = len > (1 << 30) ? (1 << 30) : (int)len;
        int n = p_BIO_write(conn->in, bytes, chunk);
        if (n <= 0) return fail(conn, "buffering input");
        bytes += n;
        len -= (size_t)n;
    }
    return COSSL_OK;
}

int cossl_handshake(cossl_conn *conn) {
    int r = p_SSL_do_handshake(conn->ssl);
    if (r == 1) return COSSL_OK;
    switch (p_SSL_get_error(conn->ssl, r)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: return COSSL_WANT_INPUT;
    default: return fail(conn, "handshake");
    }
}

long cossl_read(cossl_conn *conn, uint8_t *buf, size_t cap) {
    int r = p_SSL_read(conn->ssl, buf, cap > INT32_MAX ? INT32_MAX : (int)cap);
    if (r > 0) return r;
    switch (p_SSL_get_error(conn->ssl, r)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: return COSSL_READ_WANT_INPUT;
    case SSL_ERROR_ZERO_RETURN: return COSSL_READ_CLOSED;
    default: fail(conn, "reading"); return COSSL_READ_ERROR;
    }
}

int cossl_write(cossl_conn *conn, const uint8_t *bytes, size_t len) {
    while (len > 0) {
        int chunk = len > (1 << 30) ? (1 << 30) : (int)len;
        int n = p_SSL_write(conn->ssl, bytes, chunk);
        if (n <= 0) return fail(conn, "writing");
        bytes += n;
        len -= (size_t)n;
    }
    return COSSL_OK;
}

int cossl_close_notify(cossl_conn *conn) {
    return p_SSL_shutdown(conn->ssl) >= 0 ? COSSL_OK : fail(conn, "closing");
}

size_t cossl_output_pending(cossl_conn *conn) { return p_BIO_ctrl_pending(conn->out); }

size_t cossl_take_output(cossl_conn *conn, uint8_t *buf, size_t cap) {
    int n = p_BIO_read(conn->out, buf, cap > INT32_MAX ? INT32_MAX : (int)cap);
    return n > 0 ? (size_t)n : 0;
}

const char *cossl_conn_error(cossl_conn *conn) { return conn->error[0] ? conn->error : "TLS error"; }
