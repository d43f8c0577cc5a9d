// SPDX-License-Identifier: LGPL-2.1-or-later
#include <stdio.h>
#include <string.h>

#include "error.h"

static int error_vset(struct rund_error *err, int errnum, int with_strerror,
		      const char *fmt, va_list ap)
{
	int n;

	if (!err)
		return -errnum;

	err->code = errnum;
	n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	if (n < 0)
		n = 0;
	if (with_strerror && errnum && (size_t)n < sizeof(err->msg))
		snprintf(err->msg + n, sizeof(err->msg) - n, ": %s",
			 strerror(errnum));
	return -errnum;
}

int rund_error_set(struct rund_error *err, int errnum, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = error_vset(err, errnum, 1, fmt, ap);
	va_end(ap);
	return ret;
}

int rund_error_setx(struct rund_error *err, int errnum, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = error_vset(err, errnum, 0, fmt, ap);
	va_end(ap);
	return ret;
}

void rund_error_prefix(struct rund_error *err, const char *fmt, ...)
{
	char prefix[256];
	char old[RUND_ERROR_MSG_MAX];
	va_list ap;

	if (!err)
		return;

	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);

	memcpy(old, err->msg, sizeof(old));
	/* A message longer than the buffer keeps its beginning. */
	if (snprintf(err->msg, sizeof(err->msg), "%s%s", prefix, old) < 0)
		memcpy(err->msg, old, sizeof(old));
}

void rund_error_clear(struct rund_error *err)
{
	if (!err)
		return;
	err->code = 0;
	err->msg[0] = '\0';
}
