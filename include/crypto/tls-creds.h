/*
 * tls-creds.h: the -object kinds that TLS migration needs, with QEMU's
 * names and properties (crypto/tls-creds.c):
 *
 *   tls-creds-x509,id=ID,dir=DIR,endpoint=server|client[,verify-peer=on|off]
 *       DIR holds ca-cert.pem, and server-cert.pem + server-key.pem
 *       (server) or client-cert.pem + client-key.pem (client; optional
 *       unless the server verifies its peers)
 *   authz-simple,id=ID,identity=DN
 *   authz-list-file,id=ID,filename=PATH[,refresh=on|off]
 *       PATH: {"policy": "allow|deny", "rules": [{"match": "...",
 *       "policy": "allow|deny", "format": "exact|glob"}, ...]}
 *
 * Objects live for the whole process; any thread may look them up.
 */
#ifndef CRYPTO_TLS_CREDS_H
#define CRYPTO_TLS_CREDS_H

#include "qemu/osdep.h"

#include <gnutls/gnutls.h>

typedef struct TlsCreds {
    char *id;
    char *dir;
    bool server;
    bool verify_peer;
    gnutls_certificate_credentials_t x509;
} TlsCreds;

/* Creates the object -object @spec describes ("tls-creds-x509,id=..."),
 * loading its files now so that a bad file is reported at once. */
bool user_object_add(const char *spec, GError **errp);

/* NULL with @errp set if there is no tls-creds-x509 @id. */
const TlsCreds *tls_creds_find(const char *id, GError **errp);

/* Whether the authz object @id lets @identity (a peer's distinguished
 * name) in; false with @errp saying why not (or that @id is unknown). */
bool authz_is_allowed(const char *id, const char *identity, GError **errp);

#endif /* CRYPTO_TLS_CREDS_H */
