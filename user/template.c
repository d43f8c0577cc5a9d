// SPDX-License-Identifier: GPL-2.0-or-later
/* rund-helper template: create, list, show and delete VM templates. */
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "layer.h"
#include "template.h"
#include "util.h"
#include "verbs.h"
#include "vm.h"

#define DEFAULT_IMAGE "/var/lib/rund/images/debian.erofs"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: rund-helper template COMMAND [OPTIONS]\n"
		"\n"
		"  create NAME [OPTIONS]  boot a guest to the agent's ready point and save it,\n"
		"                         or save it before it boots (--kind preboot)\n"
		"  list [--json]          list templates\n"
		"  show NAME [--json]     print a template and whether a start with default\n"
		"                         settings (no --kernel, --memory, ...) matches it\n"
		"  delete NAME            remove a template; running clones are not affected\n"
		"\n"
		"create options:\n"
		"  --kind KIND      snapshot: a guest booted to the agent's ready point, whose\n"
		"                   clones resume there (default); preboot: the kernel loaded\n"
		"                   and not started, whose clones boot fresh and share the\n"
		"                   kernel's pages (use it with a pre-patched kernel)\n"
		"  --image PATH     read-only EROFS image (default %s)\n"
		"  --layer PATH     writable-layer image whose clones will be used (default %s)\n"
		"  --kernel PATH    guest kernel vmlinux (default $RUND_KERNEL or %s)\n"
		"  --initrd PATH    agent initramfs (default $RUND_INITRD or %s)\n"
		"  --memory MIB     guest memory in MiB (default 128, 64-65536)\n"
		"  --vcpus N        guest vCPUs (default 1, 1-64)\n"
		"  --timeout S      boot deadline in seconds (default 60)\n"
		"  --settle S       keep the guest running S seconds at its ready point before\n"
		"                   saving it, so that deferred boot work finishes (default 0;\n"
		"                   snapshot only)\n"
		"  --replace        replace a template of the same name\n"
		"  --console        copy the guest console to stderr\n"
		"  --json           print the template as JSON\n"
		"\n"
		"The memory file is kept in %s (tmpfs), the rest in %s/NAME.\n",
		DEFAULT_IMAGE, RUND_LAYER_DEFAULT_IMAGE, RUND_DEFAULT_KERNEL, RUND_DEFAULT_INITRD,
		RUND_TEMPLATE_MEMORY_DIR, RUND_TEMPLATE_DIR);
}

static const char *env_or(const char *name, const char *def)
{
	const char *v = getenv(name);

	return v && *v ? v : def;
}

static int parse_uint(const char *opt, const char *s, long min, long max, unsigned int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max) {
		fprintf(stderr, "rund-helper template: invalid %s '%s': expected an integer from %ld to %ld\n",
			opt, s, min, max);
		return -1;
	}
	*out = (unsigned int)v;
	return 0;
}

static void format_age(int64_t created_ns, char *buf, size_t size)
{
	int64_t s = (int64_t)time(NULL) - created_ns / 1000000000;

	if (s < 120)
		snprintf(buf, size, "%" PRId64 "s", s);
	else if (s < 7200)
		snprintf(buf, size, "%" PRId64 "m", s / 60);
	else
		snprintf(buf, size, "%" PRId64 "h", s / 3600);
}

static void print_template(const struct rund_template *t, FILE *out)
{
	const struct rund_template_match *m = &t->match;
	char age[32];

	format_age(t->created_ns, age, sizeof(age));
	fprintf(out, "name:          %s\n", t->name);
	fprintf(out, "kind:          %s\n", rund_template_kind_name(t->kind));
	fprintf(out, "age:           %s\n", age);
	fprintf(out, "memory file:   %s (%.1f MiB used of %u MiB)\n", t->memory_path,
		(double)t->memory_bytes / (1 << 20), m->memory_mib);
	fprintf(out, "device state:  %s (%" PRIu64 " bytes)\n", t->state_path, t->state_bytes);
	if (t->kind == RUND_TEMPLATE_SNAPSHOT)
		fprintf(out, "boot, save:    %.1f ms, %.1f ms\n", t->boot_ms, t->save_ms);
	else
		fprintf(out, "save:          %.1f ms (not booted)\n", t->save_ms);
	fprintf(out, "qemu:          %s (%s), accel %s, vCPU model %s\n", m->qemu,
		m->qemu_version, m->accel, m->cpu_model);
	fprintf(out, "kernel:        %s (build id %s%s)\n", m->kernel, m->kernel_build_id,
		t->kind == RUND_TEMPLATE_PREBOOT ? ", loaded in the memory file" : "");
	fprintf(out, "initrd:        %s\n", m->initrd);
	fprintf(out, "cmdline:       %s\n", m->cmdline);
	fprintf(out, "vcpus, memory: %u, %u MiB\n", m->vcpus, m->memory_mib);
	fprintf(out, "devices:       %s\n", m->devices);
	fprintf(out, "host TSC:      %lu kHz\n", m->tsc_khz);
	fprintf(out, "image:         %s\n", m->image);
	fprintf(out, "layer:         %s (%" PRIu64 " bytes)\n", t->layer_image, m->layer_size);
}

static json_object *template_summary_json(const struct rund_template *t)
{
	char path[PATH_MAX];
	json_object *o;

	snprintf(path, sizeof(path), "%s/template.json", t->dir);
	o = json_object_from_file(path);
	if (o) {
		json_object_object_add(o, "state_path", json_object_new_string(t->state_path));
		/* Format 1 files may lack it. */
		json_object_object_add(o, "kind",
				       json_object_new_string(rund_template_kind_name(t->kind)));
	}
	return o;
}

static int do_create(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "kind", required_argument, NULL, 'K' },
		{ "image", required_argument, NULL, 'i' },
		{ "layer", required_argument, NULL, 'l' },
		{ "kernel", required_argument, NULL, 'k' },
		{ "initrd", required_argument, NULL, 'r' },
		{ "memory", required_argument, NULL, 'm' },
		{ "vcpus", required_argument, NULL, 'c' },
		{ "timeout", required_argument, NULL, 't' },
		{ "settle", required_argument, NULL, 's' },
		{ "replace", no_argument, NULL, 'R' },
		{ "console", no_argument, NULL, 'C' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct rund_template_create_opts o = {
		.image = DEFAULT_IMAGE,
		.layer_image = RUND_LAYER_DEFAULT_IMAGE,
		.kernel = env_or("RUND_KERNEL", RUND_DEFAULT_KERNEL),
		.initrd = env_or("RUND_INITRD", RUND_DEFAULT_INITRD),
		.memory_mib = 128,
		.vcpus = 1,
		.timeout_s = 60,
		.console_fd = -1,
	};
	struct rund_error err = { 0 };
	struct rund_template t;
	bool json = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'K':
			if (rund_template_kind_parse(optarg, &o.kind)) {
				fprintf(stderr, "rund-helper template create: invalid --kind '%s': expected snapshot or preboot\n",
					optarg);
				return RUND_EXIT_FAILED;
			}
			break;
		case 'i':
			o.image = optarg;
			break;
		case 'l':
			o.layer_image = optarg;
			break;
		case 'k':
			o.kernel = optarg;
			break;
		case 'r':
			o.initrd = optarg;
			break;
		case 'm':
			if (parse_uint("--memory", optarg, 64, 65536, &o.memory_mib))
				return RUND_EXIT_FAILED;
			break;
		case 'c':
			if (parse_uint("--vcpus", optarg, 1, 64, &o.vcpus))
				return RUND_EXIT_FAILED;
			break;
		case 't':
			if (parse_uint("--timeout", optarg, 1, 3600, &o.timeout_s))
				return RUND_EXIT_FAILED;
			break;
		case 's':
			if (parse_uint("--settle", optarg, 0, 600, &o.settle_s))
				return RUND_EXIT_FAILED;
			break;
		case 'R':
			o.replace = true;
			break;
		case 'C':
			o.console_fd = STDERR_FILENO;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return RUND_EXIT_FAILED;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "rund-helper template create: expected one template NAME; see 'rund-helper template --help'\n");
		return RUND_EXIT_FAILED;
	}
	o.name = argv[optind];
	if (o.kind == RUND_TEMPLATE_PREBOOT && o.settle_s) {
		fprintf(stderr, "rund-helper template create: --settle %u applies to snapshot templates; a pre-boot template is saved before its guest runs, so drop --settle or use --kind snapshot\n",
			o.settle_s);
		return RUND_EXIT_FAILED;
	}

	if (rund_template_create(&o, &t, &err)) {
		fprintf(stderr, "rund-helper template create: %s\n", err.msg);
		return RUND_EXIT_FAILED;
	}
	if (json) {
		json_object *j = template_summary_json(&t);

		printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY));
		json_object_put(j);
	} else {
		print_template(&t, stdout);
	}
	return 0;
}

static int list_one(const struct rund_template *t, void *arg)
{
	json_object *arr = arg;
	char age[32];

	if (arr) {
		json_object_array_add(arr, template_summary_json(t));
		return 0;
	}
	format_age(t->created_ns, age, sizeof(age));
	printf("%-20s %-8s %6s %7u %5u %8.1f  %s\n", t->name, rund_template_kind_name(t->kind),
	       age, t->match.memory_mib, t->match.vcpus, (double)t->memory_bytes / (1 << 20),
	       t->match.image);
	return 0;
}

static void list_bad(const char *name, const struct rund_error *e, void *arg)
{
	fprintf(stderr, "rund-helper template list: skipped '%s': %s\n", name, e->msg);
}

static int do_list(int argc, char **argv)
{
	struct rund_error err = { 0 };
	json_object *arr = NULL;

	if (argc > 2 || (argc == 2 && strcmp(argv[1], "--json"))) {
		fprintf(stderr, "rund-helper template list: unexpected argument '%s'; usage: rund-helper template list [--json]\n", argv[1]);
		return RUND_EXIT_FAILED;
	}
	if (argc == 2)
		arr = json_object_new_array();
	else
		printf("%-20s %-8s %6s %7s %5s %8s  %s\n", "NAME", "KIND", "AGE", "MEM_MIB", "VCPUS",
		       "USED_MIB", "IMAGE");
	if (rund_template_foreach(list_one, list_bad, arr, &err)) {
		fprintf(stderr, "rund-helper template list: %s\n", err.msg);
		json_object_put(arr);
		return RUND_EXIT_FAILED;
	}
	if (arr) {
		printf("%s\n", json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY));
		json_object_put(arr);
	}
	return 0;
}

static int do_show(int argc, char **argv)
{
	struct rund_error err = { 0 }, cerr = { 0 };
	struct rund_template_want want = {
		.image = DEFAULT_IMAGE,
		.kernel = env_or("RUND_KERNEL", RUND_DEFAULT_KERNEL),
		.initrd = env_or("RUND_INITRD", RUND_DEFAULT_INITRD),
	};
	struct rund_template t;
	bool json = argc == 3 && !strcmp(argv[2], "--json");
	int usable;

	if (argc < 2 || argc > 3 || (argc == 3 && !json)) {
		fprintf(stderr, "usage: rund-helper template show NAME [--json]\n");
		return RUND_EXIT_FAILED;
	}
	if (rund_template_load(argv[1], &t, &err)) {
		fprintf(stderr, "rund-helper template show: %s\n", err.msg);
		return RUND_EXIT_FAILED;
	}
	/* Would a start with the template's own image and sizes use it here? */
	want.image = t.match.image;
	want.kernel = t.match.kernel;
	want.initrd = t.match.initrd;
	want.memory_mib = t.match.memory_mib;
	want.vcpus = t.match.vcpus;
	want.layer_size = t.match.layer_size;
	usable = rund_template_check(&t, &want, &cerr) == 0;
	if (json) {
		json_object *j = template_summary_json(&t);

		json_object_object_add(j, "usable", json_object_new_boolean(usable));
		if (!usable)
			json_object_object_add(j, "unusable_reason", json_object_new_string(cerr.msg));
		printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY));
		json_object_put(j);
	} else {
		print_template(&t, stdout);
		printf("usable:        %s\n", usable ? "yes" : cerr.msg);
	}
	return 0;
}

static int do_delete(int argc, char **argv)
{
	struct rund_error err = { 0 };

	if (argc != 2) {
		fprintf(stderr, "usage: rund-helper template delete NAME\n");
		return RUND_EXIT_FAILED;
	}
	if (rund_template_delete(argv[1], &err)) {
		fprintf(stderr, "rund-helper template delete: %s\n", err.msg);
		return RUND_EXIT_FAILED;
	}
	return 0;
}

int cmd_template(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? RUND_EXIT_FAILED : 0;
	}
	if (!strcmp(argv[1], "create"))
		return do_create(argc - 1, argv + 1);
	if (!strcmp(argv[1], "list"))
		return do_list(argc - 1, argv + 1);
	if (!strcmp(argv[1], "show"))
		return do_show(argc - 1, argv + 1);
	if (!strcmp(argv[1], "delete"))
		return do_delete(argc - 1, argv + 1);
	fprintf(stderr, "rund-helper template: unknown command '%s'; expected create, list, show or delete\n",
		argv[1]);
	return RUND_EXIT_FAILED;
}
