// SPDX-License-Identifier: GPL-2.0
/* Placeholder until the writable-layer fast path lands. */
#include "layer.h"

int rund_layer_init(void)
{
	return 0;
}

void rund_layer_exit(void)
{
}
