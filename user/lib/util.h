/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Small helpers shared by librund and rund-helper. */
#ifndef RUND_UTIL_H
#define RUND_UTIL_H

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#ifndef TEMP_FAILURE_RETRY
#define TEMP_FAILURE_RETRY(expr)                                   \
	({                                                         \
		long __r;                                          \
		do                                                 \
			__r = (long)(expr);                        \
		while (__r == -1L && errno == EINTR);              \
		__r;                                               \
	})
#endif

static inline void rund_freep(void *p)
{
	free(*(void **)p);
}

static inline void rund_closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}

/* Free or close when the variable leaves scope; descriptors start at -1. */
#define _cleanup_free_ __attribute__((cleanup(rund_freep)))
#define _cleanup_close_ __attribute__((cleanup(rund_closep)))

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Return CLOCK_MONOTONIC in milliseconds, for deadlines. */
static inline long long rund_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Return the milliseconds left until deadline (from rund_now_ms()), at least 0. */
static inline int rund_ms_left(long long deadline)
{
	long long left = deadline - rund_now_ms();

	return left > 0 ? (int)left : 0;
}

#endif /* RUND_UTIL_H */
