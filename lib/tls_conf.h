/*
 * TLS configurations built from memory, so that a role loads nothing
 * from disk after start-up: the parent reads the certificate and key
 * files, sends their bytes, and the role builds its contexts in init.
 */
#ifndef TLS_CONF_H
#define TLS_CONF_H

#include <stddef.h>
#include <stdint.h>

#include "postern.h"

#define TLS_CERT_FILE_MAX	(256 * 1024)	/* certificate chain, PEM */
#define TLS_KEY_FILE_MAX	(64 * 1024)	/* private key, PEM */
#define TLS_CA_FILE_MAX		(4 * 1024 * 1024)	/* CA bundle, PEM */
#define TLS_CONF_PROTOCOLS	"tlsv1.2,tlsv1.3"
#define TLS_CONF_CIPHERS	"secure"

struct tls;
struct tls_config;

/* Server: a configured tls_server() context, or NULL and err set. */
struct tls	*tls_conf_server(const uint8_t *, size_t, const uint8_t *,
		    size_t, char *, size_t);
struct tls	*tls_conf_listener(const struct listener *, char *, size_t);

/*
 * Client (outbound SMTP): a shared config, then one context per
 * connection.  With verify, ca is the PEM bundle of trusted roots,
 * loaded before the sandbox (tls_conf_load_file()).
 */
struct tls_config *tls_conf_client(int, const uint8_t *, size_t, char *,
		    size_t);
struct tls	*tls_conf_client_ctx(struct tls_config *, char *, size_t);

/* Parent and pre-chroot: whole files into memory, with a size limit. */
uint8_t		*tls_conf_load_file(const char *, size_t, size_t *, char *,
		    size_t);
int		 tls_conf_load(struct postern_conf *, char *, size_t);
void		 tls_conf_unload(struct postern_conf *);

#endif /* TLS_CONF_H */
