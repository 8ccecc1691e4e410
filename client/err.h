/* How the client reports a failure: one line for the operator and the class
 * of the failure, which becomes the exit code (see docs/client.md). */
#ifndef MESHGATE_CLIENT_ERR_H
#define MESHGATE_CLIENT_ERR_H

#include <stddef.h>

enum cl_exit {
	CL_EXIT_OK = 0,
	CL_EXIT_FAILURE = 1,         /* a local failure: files, permissions, keys */
	CL_EXIT_USAGE = 2,           /* bad command line */
	CL_EXIT_TLS = 3,             /* the server's identity could not be verified */
	CL_EXIT_SERVER = 4,          /* server unreachable, server error, malformed reply */
	CL_EXIT_CODE_INVALID = 5,    /* unknown code or a request the server rejected */
	CL_EXIT_CODE_USED = 6,       /* the code was already redeemed */
	CL_EXIT_CODE_EXPIRED = 7,    /* the code expired or was revoked */
	CL_EXIT_RATE_LIMITED = 8,    /* too many attempts: try again later */
	CL_EXIT_TUNNEL = 9,          /* the tunnel could not be set up or no handshake */
	CL_EXIT_NOT_FOUND = 10,      /* down/status: no such meshgate interface */
	CL_EXIT_ACCESS_EXPIRED = 11, /* the user's access has ended (until an admin extends it) */
	CL_EXIT_LOGIN = 12,          /* --login: refused by the identity provider or the gateway */
};

struct cl_err {
	int exit_code;
	char msg[512];
};

/* Records the first failure (later ones are consequences) and returns -1. */
int cl_fail(struct cl_err *err, int exit_code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Copies text that came from the network into buf, keeping printable ASCII
 * only, so a server cannot put escape sequences on the user's terminal. */
void cl_sanitize(const char *text, char *buf, size_t size);

#endif
