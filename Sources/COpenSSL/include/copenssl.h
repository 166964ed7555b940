// TLS and certificates through the system's OpenSSL 3 (Debian's libssl3), bound at run time.
//
// The daemon's HTTPS and its certificate go through the distribution's libssl/libcrypto, which
// Debian patches, rather than a vendored BoringSSL (swift-nio-ssl, swift-crypto). Like SQLite,
// the libraries are dlopen'ed on first use: the instance init is an exec of this binary and
// must not load and relocate two large libraries it never calls. Swift sees no OpenSSL type:
// a server context and a connection are opaque handles, and every function reports failure
// with a return value and a readable reason.
#ifndef COPENSSL_H
#define COPENSSL_H

#include <stddef.h>
#include <stdint.h>

typedef struct cossl_server cossl_server;  // an SSL_CTX with the appliance's certificate
typedef struct cossl_conn cossl_conn;      // one TLS connection over memory buffers

// Loads libssl.so.3 and libcrypto.so.3 if not loaded yet. 0, or -1 with the reason in `why`.
int cossl_load(char *why, size_t why_size);

// SHA-256 of `len` bytes into `out`. 0, or -1 (the library is not loaded).
int cossl_sha256(const void *bytes, size_t len, uint8_t out[32]);

// SHA-1 of `len` bytes into `out`, for RFC 6455's Sec-WebSocket-Accept only. 0 or -1.
int cossl_sha1(const void *bytes, size_t len, uint8_t out[20]);

// HMAC-SHA-256 of `len` bytes under `key` into `out`. 0 or -1.
int cossl_hmac_sha256(const uint8_t *key, size_t key_len, const void *bytes, size_t len, uint8_t out[32]);

// Cryptographically secure random bytes. 0 or -1.
int cossl_random(uint8_t *out, size_t len);

// AES-256-GCM with a 96-bit nonce and a 128-bit tag; `ciphertext` and `plaintext` are `len`
// bytes. Opening fails (-1) when the tag, the key, the nonce or the associated data differ.
int cossl_aes256gcm_seal(const uint8_t key[32], const uint8_t nonce[12], const uint8_t *aad, size_t aad_len,
                         const uint8_t *plaintext, size_t len, uint8_t *ciphertext, uint8_t tag[16]);
int cossl_aes256gcm_open(const uint8_t key[32], const uint8_t nonce[12], const uint8_t *aad, size_t aad_len,
                         const uint8_t *ciphertext, size_t len, const uint8_t tag[16], uint8_t *plaintext);

// ---- WebAuthn signatures ---------------------------------------------------------------------

// COSE algorithm numbers of the signatures passkeys use.
enum { COSSL_COSE_ES256 = -7, COSSL_COSE_EDDSA = -8, COSSL_COSE_RS256 = -257 };
enum { COSSL_SIG_VALID = 1, COSSL_SIG_INVALID = 0, COSSL_SIG_BAD_KEY = -1 };

// Verifies `sig` over `msg` with a public key given by its COSE parts:
//   ES256: a = x, b = y (32 bytes each, P-256); sig is DER, as WebAuthn sends it; SHA-256.
//   EdDSA: a = the 32-byte Ed25519 key, b unused; sig is the raw 64 bytes.
//   RS256: a = n, b = e (big-endian; n of at least 2048 bits); PKCS#1 v1.5 with SHA-256.
// COSSL_SIG_VALID, COSSL_SIG_INVALID, or COSSL_SIG_BAD_KEY (no such key: a point off the curve,
// a short RSA modulus, an unknown algorithm, or the library is missing).
int cossl_verify_signature(int cose_alg, const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
                           const uint8_t *msg, size_t msg_len, const uint8_t *sig, size_t sig_len);

// ---- Ed25519 (the appliance's device identity towards OpenClaw gateways) -----------------------

// A new key: its 32-byte private seed (RFC 8032's secret key) and its 32-byte public key. 0 or -1.
int cossl_ed25519_keygen(uint8_t seed[32], uint8_t public_key[32]);

// The public key of a private seed. 0 or -1.
int cossl_ed25519_public(const uint8_t seed[32], uint8_t public_key[32]);

// The 64-byte signature of `msg` under the key of `seed`. 0 or -1.
int cossl_ed25519_sign(const uint8_t seed[32], const uint8_t *msg, size_t msg_len, uint8_t sig[64]);

// ---- certificates ----------------------------------------------------------------------------

// Writes a new self-signed certificate (ECDSA P-256, SHA-256, serverAuth) for the given DNS
// names and IP addresses (text, IPv4 or IPv6), valid `days` days, to cert_path, and its key to
// key_path (created 0600). Both files are written whole or not at all. 0, or -1 with `why`.
int cossl_make_self_signed(const char *cert_path, const char *key_path,
                           const char *const *dns_names, int dns_count,
                           const char *const *ip_addresses, int ip_count,
                           const char *common_name, int days, char *why, size_t why_size);

// The SHA-256 of the DER form of the first certificate in a PEM file, as 32 bytes. 0 or -1.
int cossl_certificate_sha256(const char *cert_path, uint8_t out[32], char *why, size_t why_size);

// ---- server ----------------------------------------------------------------------------------

// A TLS server context (TLS 1.2 and 1.3 only, no renegotiation, no compression, no session
// tickets) for a PEM certificate chain and its private key. NULL with `why` on failure.
cossl_server *cossl_server_new(const char *cert_path, const char *key_path, char *why, size_t why_size);
void cossl_server_free(cossl_server *server);

// ---- connections -----------------------------------------------------------------------------
// A connection never touches a socket: the caller feeds it the bytes that arrived
// (cossl_feed) and sends whatever it has to send (cossl_take_output).

enum {
    COSSL_OK = 0,          // progress was made (or nothing to do)
    COSSL_WANT_INPUT = 1,  // needs more bytes from the peer
    COSSL_ERROR = -1,      // fatal: the reason is in the connection's error text
};

cossl_conn *cossl_conn_new(cossl_server *server);
void cossl_conn_free(cossl_conn *conn);

// Hands over `len` bytes received from the peer. 0, or COSSL_ERROR when memory runs out.
int cossl_feed(cossl_conn *conn, const uint8_t *bytes, size_t len);

// Advances the handshake: COSSL_OK once it is complete, COSSL_WANT_INPUT, or COSSL_ERROR.
int cossl_handshake(cossl_conn *conn);

// Decrypts into buf: the number of bytes (> 0), or one of these.
enum { COSSL_READ_WANT_INPUT = -1, COSSL_READ_CLOSED = -2, COSSL_READ_ERROR = -3 };
long cossl_read(cossl_conn *conn, uint8_t *buf, size_t cap);

// Encrypts all `len` bytes (the output grows unbounded in memory; the caller drains it).
// 0, or COSSL_ERROR.
int cossl_write(cossl_conn *conn, const uint8_t *bytes, size_t len);

// Queues a close_notify alert. 0, or COSSL_ERROR.
int cossl_close_notify(cossl_conn *conn);

// Bytes waiting to be sent to the peer, and taking up to `cap` of them (returns how many).
size_t cossl_output_pending(cossl_conn *conn);
size_t cossl_take_output(cossl_conn *conn, uint8_t *buf, size_t cap);

// Why the last COSSL_ERROR happened (never NULL).
const char *cossl_conn_error(cossl_conn *conn);

// ---- client (tlsclient.c) --------------------------------------------------------------------

typedef struct cossl_client cossl_client;  // an SSL_CTX that verifies servers

// A client context: TLS 1.2+, peers verified against the system's CA store. NULL with `why`.
cossl_client *cossl_client_new(char *why, size_t why_size);
void cossl_client_free(cossl_client *client);

// A client connection to `host` (a DNS name or an IP address): SNI for names, and the
// certificate must match `host`. Drive it like a server connection: cossl_handshake first
// produces the ClientHello in the output. NULL with `why`.
cossl_conn *cossl_client_conn_new(cossl_client *client, const char *host, char *why, size_t why_size);

#endif
