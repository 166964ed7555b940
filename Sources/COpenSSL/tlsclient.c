// TLS client connections for the LLM key proxy: the appliance connects to LLM providers over
// HTTPS through the system OpenSSL, verifying the provider's certificate against the system's
// CA store and its name (SNI sent, hostname or IP address checked), TLS 1.2 or newer.
#include "copenssl.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cossl_private.h"

struct cossl_client {
    SSL_CTX *ctx;
};

static void client_explain(char *why, size_t why_size, const char *what) {
    if (!why || !why_size) return;
    unsigned long code = p_ERR_get_error();
    if (code) {
        char detail[200];
        p_ERR_error_string_n(code, detail, sizeof detail);
        snprintf(why, why_size, "%s: %s", what, detail);
    } else {
        snprintf(why, why_size, "%s", what);
    }
    p_ERR_clear_error();
}

cossl_client *cossl_client_new(char *why, size_t why_size) {
    if (cossl_load(why, why_size) != 0) return NULL;
    SSL_CTX *ctx = p_SSL_CTX_new(p_TLS_client_method());
    if (!ctx) { client_explain(why, why_size, "making a TLS client context"); return NULL; }
    p_SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, TLS1_2_VERSION, NULL);
    p_SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    // The distribution's CA bundle (and SSL_CERT_FILE / SSL_CERT_DIR when set).
    if (p_SSL_CTX_set_default_verify_paths(ctx) != 1) {
        client_explain(why, why_size, "loading the system's CA certificates");
        p_SSL_CTX_free(ctx);
        return NULL;
    }
    p_SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    cossl_client *client = calloc(1, sizeof *client);
    if (!client) { p_SSL_CTX_free(ctx); snprintf(why, why_size, "out of memory"); return NULL; }
    client->ctx = ctx;
    return client;
}

void cossl_client_free(cossl_client *client) {
    if (!client) return;
    p_SSL_CTX_free(client->ctx);
    free(client);
}

static int is_ip_address(const char *host) {
    unsigned char buf[16];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

cossl_conn *cossl_client_conn_new(cossl_client *client, const char *host, char *why, size_t why_size) {
    SSL *ssl = p_SSL_new(client->ctx);
    if (!ssl) { client_explain(why, why_size, "making a TLS connection"); return NULL; }
    // The certificate must name `host` (SSL_set1_host checks an IP address as one).
    if (p_SSL_set1_host(ssl, host) != 1) {
        client_explain(why, why_size, "setting the expected host name");
        p_SSL_free(ssl);
        return NULL;
    }
    // SNI carries names only, never addresses (RFC 6066).
    if (!is_ip_address(host) && p_SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, (void *)host) != 1) {
        client_explain(why, why_size, "setting the server name");
        p_SSL_free(ssl);
        return NULL;
    }
    p_SSL_set_connect_state(ssl);
    cossl_conn *conn = cossl_conn_wrap(ssl);
    if (!conn) snprintf(why, why_size, "out of memory");
    return conn;
}
