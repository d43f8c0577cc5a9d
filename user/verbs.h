/* SPDX-License-Identifier: GPL-2.0-or-later */
/* rund-helper verbs: one file per verb, each parses its own arguments. */
#ifndef RUND_VERBS_H
#define RUND_VERBS_H

/*
 * Exit codes of rund-helper's own failures, as docker run and podman run use
 * them: the function's own status passes through unchanged.
 */
#define RUND_EXIT_FAILED 125	/* rund itself failed */
#define RUND_EXIT_CANNOT_INVOKE 126	/* command found but not executable */
#define RUND_EXIT_NOT_FOUND 127	/* command not found in the sandbox */

struct rund_verb {
	const char *name;
	int (*main)(int argc, char **argv);	/* argv[0] is the verb */
	const char *summary;
};

int cmd_run(int argc, char **argv);
int cmd_pool(int argc, char **argv);
int cmd_layer(int argc, char **argv);
int cmd_template(int argc, char **argv);
int cmd_vmm_pool(int argc, char **argv);

#endif /* RUND_VERBS_H */
