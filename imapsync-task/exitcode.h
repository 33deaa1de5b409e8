/* exitcode.h - the documented exit codes (sysexits-style; see
 * imapsync-task(8)).  Ordered so that a larger "severity" wins when a run
 * collects several mailbox-scoped errors. */
#ifndef EXITCODE_H
#define EXITCODE_H

enum exit_code {
	EXIT_OK = 0,            /* done */
	EXIT_SKIPPED = 2,       /* done, some messages skipped by policy/limits */
	EXIT_USAGE = 64,        /* command-line usage */
	EXIT_DATAERR = 65,      /* state unreplayable; operator needed */
	EXIT_UNAVAILABLE = 69,  /* cannot connect: DNS, refused, greeting timeout */
	EXIT_SOFTWARE = 70,     /* internal error */
	EXIT_CANTCREAT = 73,    /* local quota exceeded or local disk full */
	EXIT_IOERR = 74,        /* I/O error on the state directory */
	EXIT_TEMPFAIL = 75,     /* dropped connection, timeout, lock held,
	                           SIGTERM: the next run resumes */
	EXIT_PROTOCOL = 76,     /* TLS or protocol violation by a peer */
	EXIT_NOPERM = 77,       /* authentication failed (remote or local) */
	EXIT_CONFIG = 78,       /* configuration error */
};

#endif
