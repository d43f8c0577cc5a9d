/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Kernel symbol table from /proc/kallsyms, for naming stack frames and locks. */
#ifndef RUND_KSYMS_H
#define RUND_KSYMS_H

#include <stdbool.h>
#include <stdint.h>

struct ksym {
	uint64_t addr;
	char type;		/* the nm(1) type letter: T, t, D, d, B, ... */
	const char *name;	/* "name" or "name [module]" */
};

struct ksyms {
	struct ksym *text;	/* sorted by address */
	size_t text_count;
	struct ksym *data;	/* sorted by address, section markers left out */
	size_t data_count;
	char *names;		/* storage for every name */
	bool addresses_visible;	/* false when kptr_restrict shows zeros */
	uint64_t stext;		/* start of the kernel's text, 0 if unknown */
};

/* Loads @path (normally /proc/kallsyms). Returns NULL with errno set on failure. */
struct ksyms *ksyms_load(const char *path);
void ksyms_free(struct ksyms *ksyms);

/* Returns the text symbol that contains @addr, or NULL. */
const struct ksym *ksyms_find_text(const struct ksyms *ksyms, uint64_t addr);

/*
 * Returns the data symbol that contains @addr, or NULL. Kallsyms gives no
 * sizes, so "contains" means the nearest symbol below @addr within 64 KiB.
 */
const struct ksym *ksyms_find_data(const struct ksyms *ksyms, uint64_t addr);

/* Returns the first symbol named @name (text or data), or NULL. */
const struct ksym *ksyms_by_name(const struct ksyms *ksyms, const char *name);

/* Returns the address of text symbol @name, or 0 when it is not listed. */
uint64_t ksyms_text_addr(const struct ksyms *ksyms, const char *name);

#endif /* RUND_KSYMS_H */
