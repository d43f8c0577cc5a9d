/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Error reporting for librund.
 *
 * Every fallible librund function returns a negative errno and fills a
 * struct rund_error with a message that names the value involved and, where
 * one exists, the fix. Callers print err->msg and branch on err->code.
 */
#ifndef RUND_ERROR_H
#define RUND_ERROR_H

#include <errno.h>
#include <stdarg.h>

#define RUND_ERROR_MSG_MAX 1024

struct rund_error {
	int code;			/* positive errno, 0 when no error */
	char msg[RUND_ERROR_MSG_MAX];
};

/*
 * Record an error and return -errnum. When errnum is non-zero its
 * strerror() text is appended as ": <text>". err may be NULL.
 */
int rund_error_set(struct rund_error *err, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Like rund_error_set() but without the strerror() suffix. */
int rund_error_setx(struct rund_error *err, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefix an existing message with more context ("run: " + msg). */
void rund_error_prefix(struct rund_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

void rund_error_clear(struct rund_error *err);

#endif /* RUND_ERROR_H */
