/*
 * TLS configurations from memory.  The parent loads and checks each
 * TLS listener's certificate and key at start-up (so a mismatch is an
 * error on the terminal, not a dead worker), the serving role gets the
 * bytes with its config and builds its context in init, before its
 * sandbox, and opens nothing afterwards.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tls.h>
#include <unistd.h>

#include "log.h"
#include "tls_conf.h"

static int
tls_conf_common(struct tls_config *cfg, char *err, size_t errlen)
{
	uint32_t	 protocols;

	if (tls_config_parse_protocols(&protocols, TLS_CONF_PROTOCOLS) == -1 ||
	    tls_config_set_protocols(cfg, protocols) == -1) {
		snprintf(err, errlen, "TLS protocols: %s",
		    tls_config_error(cfg));
		return -1;
	}
	if (tls_config_set_ciphers(cfg, TLS_CONF_CIPHERS) == -1) {
		snprintf(err, errlen, "TLS ciphers: %s",
		    tls_config_error(cfg));
		return -1;
	}
	return 0;
}

struct tls *
tls_conf_server(const uint8_t *cert, size_t certlen, const uint8_t *key,
    size_t keylen, char *err, size_t errlen)
{
	struct tls_config	*cfg;
	struct tls		*ctx = NULL;

	if (cert == NULL || key == NULL || certlen == 0 || keylen == 0) {
		snprintf(err, errlen, "TLS: no certificate or key");
		return NULL;
	}
	if ((cfg = tls_config_new()) == NULL) {
		snprintf(err, errlen, "TLS: out of memory");
		return NULL;
	}
	if (tls_conf_common(cfg, err, errlen) == -1)
		goto fail;
	tls_config_prefer_ciphers_server(cfg);
	if (tls_config_set_keypair_mem(cfg, cert, certlen, key, keylen) ==
	    -1) {
		snprintf(err, errlen, "TLS certificate or key: %s",
		    tls_config_error(cfg));
		goto fail;
	}
	if ((ctx = tls_server()) == NULL) {
		snprintf(err, errlen, "TLS: out of memory");
		goto fail;
	}
	/* This also checks that the key belongs to the certificate. */
	if (tls_configure(ctx, cfg) == -1) {
		snprintf(err, errlen, "TLS: %s", tls_error(ctx));
		tls_free(ctx);
		ctx = NULL;
		goto fail;
	}
 fail:
	/* The context holds what it needs; wipe the config's key copy. */
	tls_config_clear_keys(cfg);
	tls_config_free(cfg);
	return ctx;
}

struct tls *
tls_conf_listener(const struct listener *l, char *err, size_t errlen)
{
	char	 why[256];
	struct tls	*ctx;

	if (l->tls_cert == NULL || l->tls_key == NULL) {
		snprintf(err, errlen, "%s %s port %u: no TLS certificate "
		    "received from the parent", listener_kind_names[l->kind],
		    l->addr, l->port);
		return NULL;
	}
	ctx = tls_conf_server((const uint8_t *)l->tls_cert, l->tls_certlen,
	    (const uint8_t *)l->tls_key, l->tls_keylen, why, sizeof(why));
	if (ctx == NULL)
		snprintf(err, errlen, "%s %s port %u: %s",
		    listener_kind_names[l->kind], l->addr, l->port, why);
	return ctx;
}

struct tls_config *
tls_conf_client(int verify, const uint8_t *ca, size_t calen, char *err,
    size_t errlen)
{
	struct tls_config	*cfg;

	if ((cfg = tls_config_new()) == NULL) {
		snprintf(err, errlen, "TLS: out of memory");
		return NULL;
	}
	if (tls_conf_common(cfg, err, errlen) == -1)
		goto fail;
	if (verify) {
		if (ca == NULL || calen == 0) {
			snprintf(err, errlen, "TLS: verification needs CA "
			    "certificates");
			goto fail;
		}
		/* In memory: libtls would read its default file lazily. */
		if (tls_config_set_ca_mem(cfg, ca, calen) == -1) {
			snprintf(err, errlen, "TLS CA certificates: %s",
			    tls_config_error(cfg));
			goto fail;
		}
		tls_config_verify(cfg);
	} else {
		/* Opportunistic SMTP: encrypted beats clear. */
		tls_config_insecure_noverifycert(cfg);
		tls_config_insecure_noverifyname(cfg);
	}
	return cfg;
 fail:
	tls_config_free(cfg);
	return NULL;
}

struct tls *
tls_conf_client_ctx(struct tls_config *cfg, char *err, size_t errlen)
{
	struct tls	*ctx;

	if ((ctx = tls_client()) == NULL) {
		snprintf(err, errlen, "TLS: out of memory");
		return NULL;
	}
	if (tls_configure(ctx, cfg) == -1) {
		snprintf(err, errlen, "TLS: %s", tls_error(ctx));
		tls_free(ctx);
		return NULL;
	}
	return ctx;
}

/*
 * Reads a whole regular file of at most max bytes, NUL-terminated (not
 * counted in *lenp).  The caller freezero()s what holds a key.
 */
uint8_t *
tls_conf_load_file(const char *path, size_t max, size_t *lenp, char *err,
    size_t errlen)
{
	struct stat	 st;
	uint8_t		*buf = NULL;
	size_t		 len = 0;
	ssize_t		 n;
	int		 fd;

	*lenp = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto fail;
	}
	if (st.st_size <= 0 || (unsigned long long)st.st_size > max) {
		snprintf(err, errlen, "%s: size %lld not within 1 to %zu "
		    "bytes", path, (long long)st.st_size, max);
		goto fail;
	}
	if ((buf = malloc(st.st_size + 1)) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	while (len < (size_t)st.st_size) {
		n = read(fd, buf + len, st.st_size - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (n == 0) {
			snprintf(err, errlen, "%s: changed while read", path);
			goto fail;
		}
		len += n;
	}
	buf[len] = '\0';
	close(fd);
	*lenp = len;
	return buf;
 fail:
	if (buf != NULL)
		freezero(buf, st.st_size + 1);
	close(fd);
	return NULL;
}

static void
tls_conf_unload_listener(struct listener *l)
{
	free(l->tls_cert);
	if (l->tls_key != NULL)
		freezero(l->tls_key, l->tls_keylen);
	l->tls_cert = l->tls_key = NULL;
	l->tls_certlen = l->tls_keylen = 0;
}

/*
 * Parent, at start-up: reads every TLS listener's certificate and key
 * and checks that they make a working server context.
 */
int
tls_conf_load(struct postern_conf *conf, char *err, size_t errlen)
{
	struct listener	*l;
	struct tls	*ctx;
	char		 why[512];
	size_t		 len;

	TAILQ_FOREACH(l, &conf->listeners, entry) {
		if (!(l->flags & LISTENER_TLS))
			continue;
		tls_conf_unload_listener(l);
		l->tls_cert = (char *)tls_conf_load_file(l->cert,
		    TLS_CERT_FILE_MAX, &len, why, sizeof(why));
		if (l->tls_cert == NULL)
			goto fail;
		l->tls_certlen = len;
		l->tls_key = (char *)tls_conf_load_file(l->key,
		    TLS_KEY_FILE_MAX, &len, why, sizeof(why));
		if (l->tls_key == NULL)
			goto fail;
		l->tls_keylen = len;
		if ((ctx = tls_conf_listener(l, err, errlen)) == NULL)
			return -1;
		tls_free(ctx);
	}
	return 0;
 fail:
	snprintf(err, errlen, "%s %s port %u: %s",
	    listener_kind_names[l->kind], l->addr, l->port, why);
	return -1;
}

/* Parent, once the roles have their copies. */
void
tls_conf_unload(struct postern_conf *conf)
{
	struct listener	*l;

	TAILQ_FOREACH(l, &conf->listeners, entry)
		tls_conf_unload_listener(l);
}
