// SPDX-License-Identifier: LGPL-2.1-or-later
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prepatch.h"
#include "util.h"

/*
 * Command-line options that change which CPU features or how many CPUs the
 * kernel patches for. Keep in sync with FEATURE_OPTIONS in
 * guest/rund-prepatch.py.
 */
static const char *const feature_options[] = {
	"nosmp", "maxcpus=", "nr_cpus=", "possible_cpus=", "noreplace-smp",
	"clearcpuid=", "mitigations=", "spectre_v2=", "spectre_v1=",
	"spec_store_bypass_disable=", "retbleed=", "pti=", "nopti", "nospectre",
	"noxsave", "noxsaves", "noxsaveopt", "nofxsr", "nopcid", "noinvpcid",
	"nosmap", "nosmep", "no-kvmclock", "no-kvmapf", "no_timer_check",
	"nokaslr", "alternatives=",
};

static int is_feature_option(const char *tok, size_t len)
{
	size_t i;

	for (i = 0; i < sizeof(feature_options) / sizeof(feature_options[0]); i++) {
		const char *o = feature_options[i];
		size_t olen = strlen(o);

		if (o[olen - 1] == '=' ? len >= olen && !strncmp(tok, o, olen) :
					 len == olen && !strncmp(tok, o, olen))
			return 1;
	}
	return 0;
}

/* Write the CPU-affecting options of cmdline to out, space-separated. */
static void feature_subset(const char *cmdline, char *out, size_t size)
{
	const char *p = cmdline;
	size_t n = 0;

	out[0] = '\0';
	while (*p) {
		size_t len;

		p += strspn(p, " \t");
		len = strcspn(p, " \t");
		if (len && is_feature_option(p, len) && n + len + 2 <= size) {
			if (n)
				out[n++] = ' ';
			memcpy(out + n, p, len);
			n += len;
			out[n] = '\0';
		}
		p += len;
	}
}

struct sidecar {
	char accel[16];
	char cpu[64];
	char cpu_type[64];
	unsigned int vcpus;
	char features[512];
};

static int sidecar_read(const char *path, struct sidecar *s, struct rund_error *err)
{
	char line[1024];
	int have_vcpus = 0;
	FILE *f;

	memset(s, 0, sizeof(*s));
	f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? 1 : rund_error_set(err, errno, "failed to open %s", path);
	while (fgets(line, sizeof(line), f)) {
		char *eq, *val;

		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '#' || !(eq = strchr(line, '=')))
			continue;
		*eq = '\0';
		val = eq + 1;
		if (!strcmp(line, "accel"))
			snprintf(s->accel, sizeof(s->accel), "%s", val);
		else if (!strcmp(line, "cpu"))
			snprintf(s->cpu, sizeof(s->cpu), "%s", val);
		else if (!strcmp(line, "cpu_type"))
			snprintf(s->cpu_type, sizeof(s->cpu_type), "%s", val);
		else if (!strcmp(line, "cmdline_features"))
			snprintf(s->features, sizeof(s->features), "%s", val);
		else if (!strcmp(line, "vcpus"))
			have_vcpus = sscanf(val, "%u", &s->vcpus) == 1;
	}
	fclose(f);
	if (!s->accel[0] || !s->cpu[0] || !have_vcpus)
		return rund_error_setx(err, EINVAL,
				       "invalid pre-patch record %s: it needs accel=, cpu= and vcpus= lines; rebuild it with guest/rund-prepatch.py build",
				       path);
	return 0;
}

int rund_prepatch_check(const char *kernel, const char *accel, const char *cpu,
			unsigned int vcpus, const char *cmdline, struct rund_error *err)
{
	_cleanup_free_ char *path = NULL;
	char features[512];
	struct sidecar s;
	int ret;

	if (asprintf(&path, "%s%s", kernel, RUND_PREPATCH_SUFFIX) < 0)
		return rund_error_set(err, ENOMEM, "failed to check the kernel %s", kernel);
	ret = sidecar_read(path, &s, err);
	if (ret)
		return ret > 0 ? 0 : ret;

	feature_subset(cmdline, features, sizeof(features));
	if (strcmp(s.accel, accel) || strcmp(s.cpu, cpu) || s.vcpus != vcpus ||
	    strcmp(s.features, features))
		return rund_error_setx(err, EINVAL,
				       "kernel %s was pre-patched for %u vCPU(s), CPU model %s (%s) under %s%s%s, but this launch has %u vCPU(s), CPU model %s under %s%s%s; its text would be wrong for this guest. Launch with --vcpus %u, or build an image for this configuration with guest/rund-prepatch.py build",
				       kernel, s.vcpus, s.cpu, s.cpu_type[0] ? s.cpu_type : "?",
				       s.accel, s.features[0] ? " with " : "", s.features,
				       vcpus, cpu, accel, features[0] ? " with " : "", features,
				       s.vcpus);
	return 0;
}
