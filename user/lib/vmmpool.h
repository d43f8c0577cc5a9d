/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The pool of pre-started VMMs: QEMU processes started ahead of time with a
 * snapshot template's command line, waiting paused at -incoming defer, each
 * born in a cgroup slot that the pool's owner claimed for it.
 *
 * The owner (rund-helper vmm-pool serve) listens on a unix SOCK_SEQPACKET
 * socket, one per template: RUND_VMM_POOL_DIR/<template>.sock. A start sends
 * one JSON request for a VMM and receives a JSON reply. A positive reply
 * carries, as SCM_RIGHTS, the host ends of the VMM's QMP, agent and console
 * sockets, the read end of its stderr pipe and a pidfd, in the order of enum
 * rund_vmm_fd. The owner stays QEMU's parent: it keeps the connection open
 * and sends {"exit": STATUS} when it reaps the process, then releases the
 * slot and starts a replacement. A borrower that closes the connection while
 * its VMM runs gets the VMM killed, as a start that dies gets its own QEMU
 * killed by PR_SET_PDEATHSIG.
 *
 * The borrower gives the VMM its writable layer over QMP before it restores
 * the template (rund_vmm_swap_layer()).
 *
 * Requests:  {"op": "take", "template": NAME, "memory": PATH, "sandbox_id": ID}
 *            {"op": "status"}
 * Replies:   {"ok": true, "pid": N, "accel": "tcg", ...} (take, with descriptors)
 *            {"ok": false, "reason": "empty"|"mismatch"|"bad-request"|"draining",
 *             "error": TEXT}
 */
#ifndef RUND_VMMPOOL_H
#define RUND_VMMPOOL_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "error.h"
#include "qmp.h"
#include "rund.h"

#define RUND_VMM_POOL_DIR "/run/rund/vmm"
#define RUND_VMM_MSG_MAX 8192		/* largest request or reply */

/* Descriptors of a handed-over VMM, in the order they travel. */
enum rund_vmm_fd {
	RUND_VMM_FD_QMP,
	RUND_VMM_FD_AGENT,
	RUND_VMM_FD_CONSOLE,
	RUND_VMM_FD_STDERR,
	RUND_VMM_FD_PIDFD,
	RUND_VMM_NR_FDS,
};

/* A VMM taken from a pool. */
struct rund_vmm_lease {
	int conn;			/* connection to the owner, -1 when closed */
	int fds[RUND_VMM_NR_FDS];	/* -1 once taken over by the caller */
	pid_t pid;
	pid_t owner;			/* pid of the pool's owner */
	char accel[8];			/* "tcg" or "kvm" */
	char accel_reason[160];		/* why the owner's QEMU uses TCG */
	char qemu[64];			/* binary name */
	bool in_cgroup;			/* QEMU was born in its slot */
	bool has_slot;
	uint32_t slot_index;
	char slot_path[RUND_PATH_MAX + 1];
	char slot_backend[16];
	char slot_method[32];
	char slot_note[256];		/* why there is no slot */
	double waited_ms;		/* how long the VMM had been ready */
	bool checked;			/* the process is the pool's QEMU */
};

/* RUND_VMM_POOL_DIR/<template>.sock; -ENAMETOOLONG when it does not fit. */
int rund_vmm_pool_socket_path(const char *template_name, char *buf, size_t size);

/*
 * Ask the pool at socket for a VMM of template (whose memory file is
 * memory_path) for sandbox_id. Returns 0 with lease filled, or:
 * -ENOENT or -ECONNREFUSED when no pool serves there, -EAGAIN when the pool
 * has no VMM ready, -ESTALE when it serves another version of the template,
 * -EPROTO when the reply or its descriptors break the protocol,
 * other -errno on socket errors. err contains the message.
 */
int rund_vmm_pool_take(const char *socket, const char *template_name,
		       const char *memory_path, const char *sandbox_id, int timeout_ms,
		       struct rund_vmm_lease *lease, struct rund_error *err);

/*
 * Give a VMM waiting for its incoming migration its own writable layer in
 * place of the template's null-co placeholder. The steps: add-fd with
 * layer_fd passed on the QMP socket, blockdev-add a file node on the new
 * fdset, blockdev-reopen the "layer" raw node onto it, blockdev-del the
 * placeholder. The guest has not run yet, so it never read the placeholder.
 */
int rund_vmm_swap_layer(struct rund_qmp *q, int layer_fd, int timeout_ms,
			struct rund_error *err);

/*
 * Wait up to timeout_ms for the leased QEMU to exit, kill it when it has
 * not, then read its wait status from the owner (which reaps it). Returns
 * the wait status, or -1 when the owner did not send it. Closes the lease.
 */
int rund_vmm_lease_reap(struct rund_vmm_lease *lease, int timeout_ms);

/* Kill the leased QEMU if it still runs and close everything the lease holds. */
void rund_vmm_lease_close(struct rund_vmm_lease *lease);

/*
 * Query the status of the pool at socket: returns 0 with the owner's JSON
 * object in *status (put it with json_object_put()).
 */
int rund_vmm_pool_status(const char *socket, int timeout_ms, json_object **status,
			 struct rund_error *err);

/*
 * Protocol helpers shared by the owner and its clients. rund_vmm_send()
 * sends one message with nfds descriptors. rund_vmm_recv() receives one
 * message within timeout_ms, rejecting one longer than RUND_VMM_MSG_MAX, one
 * that is not a JSON object, and one with more than maxfds descriptors
 * (those are closed); *nfds receives the count. Returns 0, -ETIMEDOUT,
 * -ECONNRESET when the peer closed, -EPROTO or -errno.
 */
int rund_vmm_send(int fd, json_object *msg, const int *fds, int nfds, struct rund_error *err);
int rund_vmm_recv(int fd, int timeout_ms, json_object **msg, int *fds, int maxfds, int *nfds,
		  struct rund_error *err);

#endif /* RUND_VMMPOOL_H */
