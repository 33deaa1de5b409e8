/* secret.h - password files and $CREDENTIALS_DIRECTORY.
 *
 * Secrets live only in files.  A password file must be a regular file of
 * mode 0600 or stricter, one line, no CR/LF/NUL inside.  Under systemd the
 * service's LoadCredential= puts copies in $CREDENTIALS_DIRECTORY, which is
 * read first.  Secret buffers are locked out of core dumps and wiped.
 */
#ifndef SECRET_H
#define SECRET_H

#include <stddef.h>

struct secret {
	char *value;   /* NUL-terminated; no CR, LF, NUL inside */
	size_t len;
};

/* Read the secret for credential id cred_id (looked up in
   $CREDENTIALS_DIRECTORY first) or else from path.  On failure returns
   NULL and writes a message (never containing the secret) to errbuf. */
struct secret *secret_load(const char *cred_id, const char *path,
			   char *errbuf, size_t errlen);
void secret_free(struct secret **secret);

/* Disable core dumps of this process (secrets are in memory). */
void secret_protect_process(void);

#endif
