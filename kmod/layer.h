/* SPDX-License-Identifier: GPL-2.0 */
#ifndef RUND_KMOD_LAYER_H
#define RUND_KMOD_LAYER_H

/* Writable-layer fast path (/dev/rund): set up at module load, torn down at unload. */
int rund_layer_init(void);
void rund_layer_exit(void);

#endif /* RUND_KMOD_LAYER_H */
