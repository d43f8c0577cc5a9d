// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Kernel symbol table from /proc/kallsyms. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ksyms.h"

/* Max distance from a data symbol to a lock inside its object, see ksyms_find_data(). */
#define KSYMS_MAX_DATA_OFFSET (64 * 1024)

static bool is_text_type(char type)
{
	return type == 'T' || type == 't' || type == 'W' || type == 'w';
}

static bool is_data_type(char type)
{
	return strchr("DdBbRr", type) != NULL;
}

/*
 * Section boundaries are listed even without CONFIG_KALLSYMS_ALL. They name
 * no object, so a lock between two of them must not be named after one.
 */
static bool is_section_marker(const char *name)
{
	static const char *const exact[] = {
		"_sdata", "_edata", "_end", "_stext", "_etext", "_sinittext",
		"_einittext", "__bss_start", "__bss_stop", "__init_begin",
		"__init_end", "__brk_base", "__end_of_kernel_reserve",
	};
	static const char *const prefixes[] = {
		"__start_", "__stop_", "__end_", "__per_cpu_", "__tracepoint_str",
	};
	size_t i;

	for (i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
		if (!strcmp(name, exact[i]))
			return true;
	for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (!strncmp(name, prefixes[i], strlen(prefixes[i])))
			return true;
	return false;
}

static int compare_ksym(const void *a, const void *b)
{
	const struct ksym *x = a, *y = b;

	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	return 0;
}

static int append(struct ksym **array, size_t *count, size_t *capacity,
		  const struct ksym *sym)
{
	if (*count == *capacity) {
		size_t grown = *capacity ? *capacity * 2 : 4096;
		struct ksym *bigger = realloc(*array, grown * sizeof(*bigger));

		if (!bigger)
			return -ENOMEM;
		*array = bigger;
		*capacity = grown;
	}
	(*array)[(*count)++] = *sym;
	return 0;
}

struct ksyms *ksyms_load(const char *path)
{
	size_t text_capacity = 0, data_capacity = 0, names_len = 0, names_capacity = 0;
	struct ksyms *ksyms;
	char line[512];
	FILE *file;
	size_t i;
	int err = 0;

	ksyms = calloc(1, sizeof(*ksyms));
	if (!ksyms)
		return NULL;
	file = fopen(path, "re");
	if (!file) {
		err = errno;
		free(ksyms);
		errno = err;
		return NULL;
	}

	/*
	 * Names go into one buffer that may move while it grows, so symbols
	 * store offsets first and pointers are set once it is complete.
	 */
	while (fgets(line, sizeof(line), file)) {
		unsigned long long addr;
		char type, name[sizeof(line)], module[sizeof(line)] = "";
		struct ksym sym;
		size_t len;
		int fields;

		fields = sscanf(line, "%llx %c %511s %511s", &addr, &type, name, module);
		if (fields < 3)
			continue;
		if (addr)
			ksyms->addresses_visible = true;
		if (!is_text_type(type) && !is_data_type(type))
			continue;
		if (is_data_type(type) && is_section_marker(name))
			continue;
		if (!strcmp(name, "_stext"))
			ksyms->stext = addr;

		len = strlen(name) + (fields == 4 ? strlen(module) + 1 : 0) + 1;
		if (names_len + len > names_capacity) {
			size_t grown = names_capacity ? names_capacity * 2 : 1 << 20;
			char *bigger;

			while (grown < names_len + len)
				grown *= 2;
			bigger = realloc(ksyms->names, grown);
			if (!bigger) {
				err = ENOMEM;
				goto out_close;
			}
			ksyms->names = bigger;
			names_capacity = grown;
		}
		if (fields == 4)
			snprintf(ksyms->names + names_len, len, "%s %s", name, module);
		else
			memcpy(ksyms->names + names_len, name, len);

		sym.addr = addr;
		sym.type = type;
		sym.name = (const char *)(uintptr_t)names_len;
		names_len += len;

		if (is_text_type(type))
			err = -append(&ksyms->text, &ksyms->text_count, &text_capacity, &sym);
		else
			err = -append(&ksyms->data, &ksyms->data_count, &data_capacity, &sym);
		if (err)
			goto out_close;
	}

	for (i = 0; i < ksyms->text_count; i++)
		ksyms->text[i].name = ksyms->names + (uintptr_t)ksyms->text[i].name;
	for (i = 0; i < ksyms->data_count; i++)
		ksyms->data[i].name = ksyms->names + (uintptr_t)ksyms->data[i].name;
	qsort(ksyms->text, ksyms->text_count, sizeof(struct ksym), compare_ksym);
	qsort(ksyms->data, ksyms->data_count, sizeof(struct ksym), compare_ksym);

out_close:
	fclose(file);
	if (err) {
		ksyms_free(ksyms);
		errno = err;
		return NULL;
	}
	return ksyms;
}

void ksyms_free(struct ksyms *ksyms)
{
	if (!ksyms)
		return;
	free(ksyms->text);
	free(ksyms->data);
	free(ksyms->names);
	free(ksyms);
}

/* Returns the last symbol at or below @addr in a sorted array, or NULL. */
static const struct ksym *find_below(const struct ksym *array, size_t count, uint64_t addr)
{
	size_t low = 0, high = count;

	while (low < high) {
		size_t mid = low + (high - low) / 2;

		if (array[mid].addr <= addr)
			low = mid + 1;
		else
			high = mid;
	}
	return low ? &array[low - 1] : NULL;
}

const struct ksym *ksyms_find_text(const struct ksyms *ksyms, uint64_t addr)
{
	if (!ksyms->addresses_visible)
		return NULL;
	return find_below(ksyms->text, ksyms->text_count, addr);
}

const struct ksym *ksyms_find_data(const struct ksyms *ksyms, uint64_t addr)
{
	const struct ksym *sym;

	if (!ksyms->addresses_visible)
		return NULL;
	sym = find_below(ksyms->data, ksyms->data_count, addr);
	/* Per-CPU symbols sit at small offsets and never hold a kernel address. */
	if (!sym || (ksyms->stext && sym->addr < ksyms->stext))
		return NULL;
	if (addr - sym->addr >= KSYMS_MAX_DATA_OFFSET)
		return NULL;
	return sym;
}

const struct ksym *ksyms_by_name(const struct ksyms *ksyms, const char *name)
{
	size_t i;

	for (i = 0; i < ksyms->data_count; i++)
		if (!strcmp(ksyms->data[i].name, name))
			return &ksyms->data[i];
	for (i = 0; i < ksyms->text_count; i++)
		if (!strcmp(ksyms->text[i].name, name))
			return &ksyms->text[i];
	return NULL;
}

uint64_t ksyms_text_addr(const struct ksyms *ksyms, const char *name)
{
	size_t i;

	for (i = 0; i < ksyms->text_count; i++)
		if (!strcmp(ksyms->text[i].name, name))
			return ksyms->text[i].addr;
	return 0;
}
