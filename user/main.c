// SPDX-License-Identifier: GPL-2.0-or-later
/* rund-helper: dispatch to the verb named by the first argument. */
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "util.h"
#include "verbs.h"

/* Each verb adds its line here when its file lands. */
static const struct rund_verb verbs[] = {
	{ "layer", cmd_layer, "create, check and list writable-layer images" },
	{ "run", cmd_run, "run a command in a new microVM sandbox" },
	{ "pool", cmd_pool, "drive the node's cgroup pool (init, acquire, release, list, stats)" },
	{ "template", cmd_template, "create, list, show and delete VM templates" },
	{ "vmm-pool", cmd_vmm_pool, "keep QEMU processes started ahead of time for a template" },
};

static void usage(FILE *out)
{
	size_t i;

	fprintf(out, "usage: rund-helper VERB [OPTIONS...]\n\nverbs:\n");
	for (i = 0; i < ARRAY_SIZE(verbs); i++)
		fprintf(out, "  %-10s %s\n", verbs[i].name, verbs[i].summary);
	fprintf(out, "\nrund-helper VERB --help describes one verb.\n");
}

int main(int argc, char **argv)
{
	size_t i;

	if (argc < 2) {
		usage(stderr);
		return RUND_EXIT_FAILED;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}

	/* Durations are in ms; microsecond resolution is plenty in --json. */
	json_c_set_serialization_double_format("%.3f", JSON_C_OPTION_GLOBAL);

	for (i = 0; i < ARRAY_SIZE(verbs); i++)
		if (!strcmp(argv[1], verbs[i].name))
			return verbs[i].main(argc - 1, argv + 1);

	fprintf(stderr, "rund-helper: unknown verb '%s'; run 'rund-helper --help' for the list\n",
		argv[1]);
	return RUND_EXIT_FAILED;
}
