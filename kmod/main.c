// SPDX-License-Identifier: GPL-2.0
/*
 * rund.ko: a node-wide pool of pre-created cgroups driven over generic
 * netlink, and the writable-layer device /dev/rund.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/init.h>
#include <linux/module.h>

#include "layer.h"
#include "pool.h"

static int __init rund_init(void)
{
	int err;

	err = rund_pool_setup();
	if (err)
		return err;

	err = rund_layer_init();
	if (err)
		goto out_pool_teardown;

	err = rund_genl_register();
	if (err)
		goto out_layer_exit;

	pr_info("loaded, generic netlink family %s version %d\n", RUND_GENL_NAME, RUND_GENL_VERSION);
	return 0;

out_layer_exit:
	rund_layer_exit();
out_pool_teardown:
	rund_pool_teardown();
	return err;
}

static void __exit rund_exit(void)
{
	rund_genl_unregister();
	rund_layer_exit();
	rund_pool_teardown();
	pr_info("unloaded\n");
}

module_init(rund_init);
module_exit(rund_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("rund cgroup slot pool and writable-layer fast path");
MODULE_AUTHOR("rund developers");
