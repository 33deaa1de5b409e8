/* secret.c - password files and $CREDENTIALS_DIRECTORY.
 *
 * A password is read once, into pages of its own that are locked in
 * memory and wiped before they are returned.  The file must be private
 * to its owner: a password others can read is already leaked, and one
 * others can write lets them choose where our login goes.  Messages name
 * the file or credential, never a byte of its content.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "secret.h"
#include "util.h"

/* Larger than any sane password, small enough to read in one go. */
#define SECRET_MAX_SIZE 4096

/* Where a secret comes from, for reading rules and messages. */
struct secret_source {
	const char *path;	/* what is opened and named in messages */
	const char *what;	/* "password file" or "credential" */
	bool check_mode;	/* systemd already made credentials private */
};

static void __attribute__((format(printf, 3, 4)))
secret_error(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errbuf == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
}

/* The buffer gets whole pages from mmap() rather than malloc(): mlock()
   does not nest, so munlock() of one malloc'd secret could unlock a page
   still shared with another one.  Its size is fixed so secret_free()
   knows what to wipe without trusting len. */
static size_t secret_map_size(void)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t pg = page > 0 ? (size_t)page : 4096;

	/* room for SECRET_MAX_SIZE + 1 bytes: one more than allowed, so
	   an oversized file is seen while reading; or the final NUL */
	return (SECRET_MAX_SIZE + 1 + pg - 1) / pg * pg;
}

static char *secret_buf_alloc(void)
{
	size_t size = secret_map_size();
	void *p;

	p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	/* Without CAP_IPC_LOCK or with a small RLIMIT_MEMLOCK this fails
	   (EPERM/ENOMEM); the password is then merely swappable, which
	   is no reason to refuse to run. */
	(void)mlock(p, size);
	/* keep it out of core dumps even if dumps are re-enabled */
	(void)madvise(p, size, MADV_DONTDUMP);
	return p;
}

static void secret_buf_free(char *p)
{
	size_t size = secret_map_size();

	explicit_wipe(p, size);
	(void)munlock(p, size);
	(void)munmap(p, size);
}

/* Open path without following a final symlink and without
   blocking on a FIFO.  Returns fd, or -1 with errno set. */
static int secret_open(const char *path)
{
	int fd, flags;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY |
		  O_NONBLOCK);
	if (fd < 0)
		return -1;
	/* O_NONBLOCK only guarded the open; reads must not see EAGAIN */
	if ((flags = fcntl(fd, F_GETFL)) < 0 ||
	    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* Say why open() failed; ELOOP from O_NOFOLLOW means the file itself is
   a symlink, which gets its own message because "Too many levels of
   symbolic links" would only confuse. */
static void secret_open_error(const struct secret_source *src, int err,
			      char *errbuf, size_t errlen)
{
	struct stat st;

	if (err == ELOOP && lstat(src->path, &st) == 0 && S_ISLNK(st.st_mode)) {
		secret_error(errbuf, errlen,
			     "%s: %s is a symbolic link; refusing to follow it",
			     src->path, src->what);
		return;
	}
	secret_error(errbuf, errlen, "%s: cannot open %s: %s",
		     src->path, src->what, strerror(err));
}

static bool secret_check_file(const struct secret_source *src,
			      const struct stat *st,
			      char *errbuf, size_t errlen)
{
	if (!S_ISREG(st->st_mode)) {
		secret_error(errbuf, errlen, "%s: %s is not a regular file",
			     src->path, src->what);
		return false;
	}
	if (src->check_mode && (st->st_mode & 077) != 0) {
		secret_error(errbuf, errlen,
			     "%s: %s is readable or writable by group or others "
			     "(mode %04o); chmod 600 it", src->path, src->what,
			     (unsigned int)(st->st_mode & 07777));
		return false;
	}
	if (st->st_size > SECRET_MAX_SIZE) {
		secret_error(errbuf, errlen, "%s: %s is larger than %d bytes",
			     src->path, src->what, SECRET_MAX_SIZE);
		return false;
	}
	return true;
}

/* Read all of fd into buf (which holds SECRET_MAX_SIZE + 1 bytes).
   The size was checked by fstat(), but the file may grow meanwhile. */
static bool secret_read(const struct secret_source *src, int fd, char *buf,
			size_t *len_r, char *errbuf, size_t errlen)
{
	size_t len = 0;
	ssize_t n;

	while (len <= SECRET_MAX_SIZE) {
		n = read(fd, buf + len, SECRET_MAX_SIZE + 1 - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			secret_error(errbuf, errlen, "%s: cannot read %s: %s",
				     src->path, src->what, strerror(errno));
			return false;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > SECRET_MAX_SIZE) {
		secret_error(errbuf, errlen, "%s: %s is larger than %d bytes",
			     src->path, src->what, SECRET_MAX_SIZE);
		return false;
	}
	*len_r = len;
	return true;
}

/* Strip one trailing "\n" or "\r\n" (editors add it), then insist on
   exactly one non-empty line: a stray CR or NUL inside a password is
   almost certainly a mistake, and would be sent to the server as is. */
static bool secret_check_content(const struct secret_source *src, char *buf,
				 size_t *len, char *errbuf, size_t errlen)
{
	size_t n = *len;

	if (n > 0 && buf[n - 1] == '\n') {
		n--;
		if (n > 0 && buf[n - 1] == '\r')
			n--;
	}
	if (n == 0) {
		secret_error(errbuf, errlen, "%s: %s is empty",
			     src->path, src->what);
		return false;
	}
	if (memchr(buf, '\r', n) != NULL || memchr(buf, '\n', n) != NULL ||
	    memchr(buf, '\0', n) != NULL) {
		secret_error(errbuf, errlen, "%s: %s must hold one line",
			     src->path, src->what);
		return false;
	}
	/* wipe the stripped line end too; n <= SECRET_MAX_SIZE */
	memset(buf + n, '\0', *len - n + 1);
	*len = n;
	return true;
}

static struct secret *secret_load_fd(const struct secret_source *src, int fd,
				     char *errbuf, size_t errlen)
{
	struct secret *secret;
	struct stat st;
	size_t len;
	char *buf;

	if (fstat(fd, &st) < 0) {
		secret_error(errbuf, errlen, "%s: cannot stat %s: %s",
			     src->path, src->what, strerror(errno));
		return NULL;
	}
	if (!secret_check_file(src, &st, errbuf, errlen))
		return NULL;
	if ((buf = secret_buf_alloc()) == NULL) {
		secret_error(errbuf, errlen, "%s: cannot allocate memory "
			     "for %s: %s", src->path, src->what,
			     strerror(errno));
		return NULL;
	}
	if (!secret_read(src, fd, buf, &len, errbuf, errlen) ||
	    !secret_check_content(src, buf, &len, errbuf, errlen)) {
		secret_buf_free(buf);
		return NULL;
	}
	secret = xmalloc(sizeof(*secret));
	secret->value = buf;
	secret->len = len;
	return secret;
}

/* A credential id is a file name inside $CREDENTIALS_DIRECTORY; refuse
   anything that could point elsewhere. */
static bool secret_cred_id_valid(const char *cred_id)
{
	return cred_id[0] != '\0' && strchr(cred_id, '/') == NULL &&
		strcmp(cred_id, ".") != 0 && strcmp(cred_id, "..") != 0;
}

/* Try $CREDENTIALS_DIRECTORY/cred_id.  Returns true if it exists, with
   *secret_r set to the secret or NULL after an error; false if there is
   no such credential and the password file should be tried. */
static bool secret_load_credential(const char *cred_id,
				   struct secret **secret_r,
				   char *errbuf, size_t errlen)
{
	const char *dir = getenv("CREDENTIALS_DIRECTORY");
	struct secret_source src;
	char *path;
	int fd;

	if (dir == NULL || dir[0] == '\0')
		return false;
	path = xasprintf("%s/%s", dir, cred_id);
	src.path = path;
	src.what = "credential";
	src.check_mode = false;
	if ((fd = secret_open(path)) < 0) {
		if (errno == ENOENT) {
			free(path);
			return false;
		}
		secret_open_error(&src, errno, errbuf, errlen);
		*secret_r = NULL;
		free(path);
		return true;
	}
	*secret_r = secret_load_fd(&src, fd, errbuf, errlen);
	close(fd);
	free(path);
	return true;
}

static void secret_missing_error(const char *cred_id, const char *path,
				 char *errbuf, size_t errlen)
{
	const char *dir = getenv("CREDENTIALS_DIRECTORY");

	if (dir == NULL || dir[0] == '\0')
		dir = "$CREDENTIALS_DIRECTORY (not set)";
	secret_error(errbuf, errlen, "%s: cannot open password file: %s; "
		     "credential \"%s\" is not in %s either",
		     path, strerror(ENOENT), cred_id, dir);
}

struct secret *secret_load(const char *cred_id, const char *path,
			   char *errbuf, size_t errlen)
{
	struct secret_source src;
	struct secret *secret = NULL;
	bool have_cred_id = cred_id != NULL && cred_id[0] != '\0';
	int fd;

	if (have_cred_id && !secret_cred_id_valid(cred_id)) {
		secret_error(errbuf, errlen, "invalid credential id \"%s\"",
			     cred_id);
		return NULL;
	}
	if (have_cred_id &&
	    secret_load_credential(cred_id, &secret, errbuf, errlen))
		return secret;

	if (path == NULL || path[0] == '\0') {
		if (have_cred_id) {
			secret_error(errbuf, errlen, "credential \"%s\" is not "
				     "in $CREDENTIALS_DIRECTORY and no password "
				     "file is set", cred_id);
		} else {
			secret_error(errbuf, errlen,
				     "no password file or credential is set");
		}
		return NULL;
	}

	src.path = path;
	src.what = "password file";
	src.check_mode = true;
	if ((fd = secret_open(path)) < 0) {
		/* A missing file is most often a missing LoadCredential=:
		   say which credential was looked for too. */
		if (errno == ENOENT && have_cred_id)
			secret_missing_error(cred_id, path, errbuf, errlen);
		else
			secret_open_error(&src, errno, errbuf, errlen);
		return NULL;
	}
	secret = secret_load_fd(&src, fd, errbuf, errlen);
	close(fd);
	return secret;
}

void secret_free(struct secret **secret)
{
	if (*secret == NULL)
		return;
	secret_buf_free((*secret)->value);
	free(*secret);
	*secret = NULL;
}

void secret_protect_process(void)
{
	const struct rlimit no_core = { 0, 0 };

	/* Not dumpable: no core file, and other processes of the same
	   user cannot ptrace us or read /proc/PID/mem. */
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	/* Belt and braces, in case something turns dumpable back on. */
	(void)setrlimit(RLIMIT_CORE, &no_core);
}
