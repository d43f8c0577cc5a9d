// SPDX-License-Identifier: LGPL-2.1-or-later
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent_proto.h"
#include "pool.h"
#include "prepatch.h"
#include "util.h"
#include "vm.h"

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

const char *rund_accel_name(enum rund_accel accel)
{
	return accel == RUND_ACCEL_KVM ? "kvm" : "tcg";
}

/* Read the host's boot id (36 characters); false when it cannot be read. */
static bool host_boot_id(char out[40])
{
	ssize_t n;
	int fd;

	fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, out, 39);
	close(fd);
	if (n < 36)
		return false;
	out[36] = '\0';
	return true;
}

static bool kvm_probed_this_boot(void)
{
	char now[40], saved[40];
	ssize_t n;
	int fd;

	if (!host_boot_id(now))
		return false;
	fd = open(RUND_KVM_PROBED_FILE, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, saved, 39);
	close(fd);
	if (n < 36)
		return false;
	saved[36] = '\0';
	return !strcmp(now, saved);
}

static void kvm_probe_remember(void)
{
	char id[40], tmp[] = RUND_KVM_PROBED_FILE ".XXXXXX";
	int fd;

	if (!host_boot_id(id))
		return;
	mkdir("/run/rund", 0755);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return;	/* the next start probes again, which is only slower */
	if (dprintf(fd, "%s\n", id) != 37 || fchmod(fd, 0644) || rename(tmp, RUND_KVM_PROBED_FILE))
		unlink(tmp);
	close(fd);
}

enum rund_accel rund_accel_detect(const char **why)
{
	const char *force = getenv("RUND_ACCEL");
	int kvm, vm, vcpu;

	if (force && !strcmp(force, "tcg")) {
		*why = "RUND_ACCEL=tcg";
		return RUND_ACCEL_TCG;
	}
	if (force && !strcmp(force, "kvm")) {
		*why = NULL;
		return RUND_ACCEL_KVM;
	}
	if (force && *force) {
		fprintf(stderr, "rund: ignoring RUND_ACCEL='%s': use 'kvm' or 'tcg'\n", force);
		*why = NULL;
	}

	if (!access(RUND_KVM_UNUSABLE_FILE, F_OK)) {
		*why = "an earlier KVM guest failed; remove " RUND_KVM_UNUSABLE_FILE " to try KVM again";
		return RUND_ACCEL_TCG;
	}

	/*
	 * Creating a VM and a vCPU would add work to every start, so a passed
	 * probe is remembered for this host boot. /dev/kvm must still
	 * open: the module may have been unloaded since.
	 * NOTE: only the failing side of this cache has run; no test machine
	 * had a working KVM.
	 */
	if (kvm_probed_this_boot()) {
		kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
		if (kvm >= 0) {
			close(kvm);
			*why = NULL;
			return RUND_ACCEL_KVM;
		}
	}
	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		*why = "/dev/kvm cannot be opened";
		return RUND_ACCEL_TCG;
	}
	if (ioctl(kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
		close(kvm);
		*why = "/dev/kvm has an unexpected API version";
		return RUND_ACCEL_TCG;
	}
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0) {
		close(kvm);
		*why = "KVM_CREATE_VM failed";
		return RUND_ACCEL_TCG;
	}
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	close(vm);
	close(kvm);
	if (vcpu < 0) {
		*why = "KVM_CREATE_VCPU failed";
		return RUND_ACCEL_TCG;
	}
	close(vcpu);
	kvm_probe_remember();
	*why = NULL;
	return RUND_ACCEL_KVM;
}

void rund_accel_mark_kvm_unusable(const char *reason)
{
	int fd;

	unlink(RUND_KVM_PROBED_FILE);
	mkdir("/run/rund", 0755);
	fd = open(RUND_KVM_UNUSABLE_FILE, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;	/* the next start probes KVM again, which is only slower */
	dprintf(fd, "%s\n", reason);
	close(fd);
}

/* Spawn */

struct spawn_ctx {
	const struct rund_spawn_opts *opts;
	const char *exe;		/* resolved path */
	char *const *envp;
	pid_t parent;
	int devnull;
	int err;			/* errno of the child's failure, shared memory */
};

static bool fd_kept(const struct rund_spawn_opts *o, int fd)
{
	int i;

	for (i = 0; i < o->nkeep; i++)
		if (o->keep_fds[i] == fd)
			return true;
	return false;
}

/*
 * Runs in the child, which shares the parent's memory (CLONE_VM) while the
 * parent is suspended (CLONE_VFORK): only system calls, no allocation.
 */
static int spawn_child(void *arg)
{
	struct spawn_ctx *c = arg;
	const struct rund_spawn_opts *o = c->opts;
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	int stdio[3] = { o->stdin_fd, o->stdout_fd, o->stderr_fd };
	sigset_t empty;
	int fd, sig, max;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != c->parent)
		goto fail;

	for (sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &dfl, NULL);
	sigemptyset(&empty);
	sigprocmask(SIG_SETMASK, &empty, NULL);

	for (fd = 0; fd < 3; fd++)
		if (dup2(stdio[fd] >= 0 ? stdio[fd] : c->devnull, fd) < 0)
			goto fail;

	/* Close everything else except the kept descriptors. */
	max = (int)sysconf(_SC_OPEN_MAX);
	for (fd = 3; fd < max; fd++) {
		if (fd_kept(o, fd)) {
			if (fcntl(fd, F_SETFD, 0) < 0)
				goto fail;
			continue;
		}
		if (!o->nkeep || fd > o->keep_fds[o->nkeep - 1]) {
			syscall(SYS_close_range, fd, ~0U, 0);
			break;
		}
		close(fd);
	}

	execve(c->exe, o->argv, c->envp);
fail:
	c->err = errno ? errno : EINVAL;
	_exit(127);
}

#if defined(__x86_64__)
/*
 * clone3() on a separate stack, calling fn(arg) in the child. The child must
 * not return into this function's frame: it shares the parent's stack
 * memory until execve, so it runs fn on its own stack and exits.
 */
static long clone3_call(struct clone_args *args, int (*fn)(void *), void *arg)
{
	long ret;

	__asm__ volatile("syscall\n\t"
			 "test %%rax, %%rax\n\t"
			 "jnz 1f\n\t"
			 "xor %%ebp, %%ebp\n\t"
			 "mov %[arg], %%rdi\n\t"
			 "call *%[fn]\n\t"
			 "mov %%eax, %%edi\n\t"
			 "mov %[nr_exit], %%eax\n\t"
			 "syscall\n\t"
			 "hlt\n"
			 "1:\n\t"
			 : "=a"(ret)
			 : "a"((long)SYS_clone3), "D"(args), "S"(sizeof(*args)),
			   [fn] "r"(fn), [arg] "r"(arg), [nr_exit] "i"(SYS_exit)
			 : "rcx", "r11", "memory");
	return ret;
}
#define SPAWN_SHARES_VM 1
#else
/* Elsewhere clone3 runs without CLONE_VM: a fork that returns here. */
static long clone3_call(struct clone_args *args, int (*fn)(void *), void *arg)
{
	long ret = syscall(SYS_clone3, args, sizeof(*args));

	if (ret == 0)
		_exit(fn(arg));
	return ret < 0 ? -errno : ret;
}
#define SPAWN_SHARES_VM 0
#endif

/* Resolve name through PATH unless it contains a slash. */
static int find_exe(const char *name, char *out, size_t size)
{
	const char *path = getenv("PATH");
	const char *p, *end;

	if (strchr(name, '/')) {
		snprintf(out, size, "%s", name);
		return access(out, X_OK) ? -errno : 0;
	}
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path; *p; p = *end ? end + 1 : end) {
		end = strchrnul(p, ':');
		snprintf(out, size, "%.*s/%s", (int)(end - p), p, name);
		if (!access(out, X_OK))
			return 0;
	}
	return -ENOENT;
}

int rund_spawn(const struct rund_spawn_opts *opts, struct rund_spawn_result *res,
	       struct rund_error *err)
{
	extern char **environ;
	const size_t stack_size = 256 * 1024;
	struct spawn_ctx ctx = { .opts = opts, .envp = environ, .parent = getpid() };
	struct clone_args args;
	char exe[4096];
	sigset_t all, old;
	void *stack;
	int pidfd = -1;
	long pid;
	int ret;

	ret = find_exe(opts->path, exe, sizeof(exe));
	if (ret)
		return rund_error_set(err, -ret, "failed to find %s in PATH", opts->path);
	ctx.exe = exe;

	ctx.devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (ctx.devnull < 0)
		return rund_error_set(err, errno, "failed to open /dev/null");
	stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack == MAP_FAILED) {
		ret = rund_error_set(err, errno, "failed to map the spawn stack");
		close(ctx.devnull);
		return ret;
	}

	memset(&args, 0, sizeof(args));
	args.flags = CLONE_VFORK | CLONE_PIDFD | (SPAWN_SHARES_VM ? CLONE_VM : 0);
	args.pidfd = (uintptr_t)&pidfd;
	args.exit_signal = SIGCHLD;
	if (SPAWN_SHARES_VM) {
		args.stack = (uintptr_t)stack;
		args.stack_size = stack_size;
	}
	if (opts->cgroup_fd >= 0) {
		args.flags |= CLONE_INTO_CGROUP;
		args.cgroup = (uint64_t)opts->cgroup_fd;
	}

	/* No signal handler of the parent may run on the child's side. */
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	pid = clone3_call(&args, spawn_child, &ctx);
	if (pid < 0 && opts->cgroup_fd >= 0 && opts->cgroup_fallback &&
	    pid != -ENOSYS && pid != -ENOMEM && pid != -EAGAIN) {
		/* A v1 cgroup or an older kernel refuses CLONE_INTO_CGROUP. */
		args.flags &= ~CLONE_INTO_CGROUP;
		args.cgroup = 0;
		pid = clone3_call(&args, spawn_child, &ctx);
		res->in_cgroup = false;
	} else {
		res->in_cgroup = opts->cgroup_fd >= 0;
	}
	sigprocmask(SIG_SETMASK, &old, NULL);

	munmap(stack, stack_size);
	close(ctx.devnull);

	if (pid < 0)
		return rund_error_set(err, (int)-pid, "failed to spawn %s with clone3%s", exe,
				      opts->cgroup_fd >= 0 ? " into the cgroup" : "");
	if (ctx.err) {
		/* The child failed before or in execve and has exited. */
		waitpid((pid_t)pid, NULL, 0);
		close(pidfd);
		return rund_error_set(err, ctx.err, "failed to execute %s", exe);
	}
	res->pid = (pid_t)pid;
	res->pidfd = pidfd;
	return 0;
}

/* QEMU command line */

struct arglist {
	char *argv[96];
	int argc;
	bool overflow;
};

static __attribute__((format(printf, 2, 3))) void arg_add(struct arglist *a, const char *fmt, ...)
{
	va_list ap;
	char *s;

	if (a->argc >= (int)ARRAY_SIZE(a->argv) - 1) {
		a->overflow = true;
		return;
	}
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	if (!s) {
		a->overflow = true;
		return;
	}
	a->argv[a->argc++] = s;
	a->argv[a->argc] = NULL;
}

static void arg_free(struct arglist *a)
{
	int i;

	for (i = 0; i < a->argc; i++)
		free(a->argv[i]);
}

/*
 * Host TSC frequency in kHz for tsc_early_khz=: under TCG the guest reads
 * the host TSC, and without the hint a loaded host can stall the guest's
 * calibration on microvm, which has no HPET or PM timer.
 */
unsigned long rund_host_tsc_khz(void)
{
	char line[256];
	double mhz = 0;
	FILE *f;

	f = fopen("/proc/cpuinfo", "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "cpu MHz : %lf", &mhz) == 1)
			break;
	fclose(f);
	return (unsigned long)(mhz * 1000);
}

/*
 * TCG translation buffer in MiB: 32 unless RUND_TCG_TB_MIB (1-1024) sets
 * another size, and 0 when that value is invalid. A started guest fills most
 * of it, so it is most of the private memory of an idle sandbox under TCG.
 */
static unsigned int tcg_tb_mib(void)
{
	const char *s = getenv("RUND_TCG_TB_MIB");
	char *end;
	long v;

	if (!s || !*s)
		return 32;
	v = strtol(s, &end, 10);
	return *end || v < 1 || v > 1024 ? 0 : (unsigned int)v;
}

void rund_vm_cmdline(enum rund_accel accel, bool template_guest, char *buf, size_t size)
{
	size_t n;

	n = (size_t)snprintf(buf, size,
			     "console=ttyS0 quiet reboot=t panic=-1 rund.ro=/dev/vda rund.rw=/dev/vdb");
	if (accel == RUND_ACCEL_TCG) {
		unsigned long khz = rund_host_tsc_khz();

		if (khz && n < size)
			n += (size_t)snprintf(buf + n, size - n, " tsc_early_khz=%lu", khz);
		/*
		 * QEMU's APIC timer counts at 1 GHz, one guest tick (HZ=250) is
		 * 4,000,000 cycles, and a given period skips the slow calibration.
		 * With tsc=reliable too, an idle guest of any vCPU count stops its tick.
		 * no_timer_check skips the IO-APIC timer test, which TCG on a loaded
		 * host fails now and then ("IO-APIC + timer doesn't work" panic).
		 * NOTE: 4,000,000 assumes the guest kernel is built with HZ=250.
		 */
		if (n < size)
			n += (size_t)snprintf(buf + n, size - n,
					      " lapic_timer_period=4000000 tsc=reliable no_timer_check");
	}
	if (template_guest && n < size)
		n += (size_t)snprintf(buf + n, size - n, " rund.template=1");
	/* Extra guest options, such as rund.patch_skip=off for comparisons. */
	if (getenv("RUND_KERNEL_APPEND") && *getenv("RUND_KERNEL_APPEND") && n < size)
		snprintf(buf + n, size - n, " %s", getenv("RUND_KERNEL_APPEND"));
}

int rund_vm_start(const struct rund_vm_config *cfg, struct rund_vm *vm, struct rund_error *err)
{
	struct rund_spawn_opts so = { 0 };
	struct rund_spawn_result sr = { 0 };
	struct arglist a = { .argc = 0 };
	char cmdline[RUND_VM_CMDLINE_MAX];
	_cleanup_close_ int mem_fd = -1;
	int keep[6];
	int i, ret;

	memset(vm, 0, sizeof(*vm));
	vm->pid = -1;
	vm->pidfd = -1;
	vm->accel = rund_accel_detect(&vm->accel_reason);
	vm->qemu = vm->accel == RUND_ACCEL_KVM ? RUND_QEMU_MICROVM : RUND_QEMU_FULL;

	rund_vm_cmdline(vm->accel, cfg->template_guest, cmdline, sizeof(cmdline));
	if (!cfg->incoming || cfg->boot_files) {
		/* QEMU picks the vCPU model: no -cpu below. */
		ret = rund_prepatch_check(cfg->kernel, rund_accel_name(vm->accel), "default",
					  cfg->vcpus, cmdline, err);
		if (ret)
			return ret;
	}
	if (vm->accel == RUND_ACCEL_TCG && !tcg_tb_mib())
		return rund_error_setx(err, EINVAL,
				       "invalid RUND_TCG_TB_MIB '%s': expected a TCG translation buffer size of 1-1024 MiB",
				       getenv("RUND_TCG_TB_MIB"));

	arg_add(&a, "%s", vm->qemu);
	arg_add(&a, "-M");
	arg_add(&a, "microvm,acpi=off");
	arg_add(&a, "-global");
	arg_add(&a, "virtio-mmio.force-legacy=false");
	arg_add(&a, "-accel");
	if (vm->accel == RUND_ACCEL_KVM)
		arg_add(&a, "kvm");
	else
		arg_add(&a, "tcg,tb-size=%u", tcg_tb_mib());
	arg_add(&a, "-nodefaults");
	arg_add(&a, "-no-user-config");
	arg_add(&a, "-nographic");
	arg_add(&a, "-no-reboot");
	arg_add(&a, "-m");
	arg_add(&a, "%u", cfg->memory_mib);
	arg_add(&a, "-smp");
	arg_add(&a, "%u", cfg->vcpus);
	if (cfg->memory_path && cfg->memory_share) {
		/* A named file, so that x-ignore-shared can leave the RAM out of a template. */
		arg_add(&a, "-object");
		arg_add(&a, "memory-backend-file,id=ram,size=%uM,mem-path=%s,share=on",
			cfg->memory_mib, cfg->memory_path);
		arg_add(&a, "-machine");
		arg_add(&a, "memory-backend=ram");
	} else if (cfg->memory_path) {
		/*
		 * A clone maps an existing template file. QEMU creates a missing
		 * mem-path, so a template deleted in the meantime would give the
		 * clone a new file of zeros. QEMU gets the file as an inherited
		 * descriptor instead, named through /proc/self/fd.
		 */
		mem_fd = open(cfg->memory_path, O_RDONLY | O_CLOEXEC);
		if (mem_fd < 0) {
			arg_free(&a);
			return rund_error_set(err, errno,
					      "failed to open the template memory file %s (was the template deleted or made again? start the sandbox again)",
					      cfg->memory_path);
		}
		arg_add(&a, "-object");
		arg_add(&a, "memory-backend-file,id=ram,size=%uM,mem-path=/proc/self/fd/%d,share=off",
			cfg->memory_mib, mem_fd);
		arg_add(&a, "-machine");
		arg_add(&a, "memory-backend=ram");
	}
	if (cfg->incoming) {
		/* A snapshot's kernel and command line are in the restored RAM already. */
		arg_add(&a, "-incoming");
		arg_add(&a, "defer");
	}
	if (cfg->start_paused)
		arg_add(&a, "-S");
	if (!cfg->incoming || cfg->boot_files) {
		arg_add(&a, "-kernel");
		arg_add(&a, "%s", cfg->kernel);
		arg_add(&a, "-initrd");
		arg_add(&a, "%s", cfg->initrd);
		arg_add(&a, "-append");
		arg_add(&a, "%s", cmdline);
	}

	/* Serial console and QMP on socket pairs: no path to clean up. */
	arg_add(&a, "-chardev");
	arg_add(&a, "socket,id=console,fd=%d", cfg->console_fd);
	arg_add(&a, "-serial");
	arg_add(&a, "chardev:console");
	arg_add(&a, "-chardev");
	arg_add(&a, "socket,id=qmp,fd=%d", cfg->qmp_fd);
	arg_add(&a, "-mon");
	arg_add(&a, "chardev=qmp,mode=control");

	/* The order of the virtio-blk devices makes them vda and vdb. */
	arg_add(&a, "-add-fd");
	arg_add(&a, "fd=%d,set=1,opaque=rund-image", cfg->image_fd);
	arg_add(&a, "-blockdev");
	arg_add(&a, "driver=file,node-name=image-file,filename=/dev/fdset/1,read-only=on");
	arg_add(&a, "-blockdev");
	arg_add(&a, "driver=raw,node-name=image,file=image-file,read-only=on");
	arg_add(&a, "-device");
	arg_add(&a, "virtio-blk-device,drive=image");
	if (cfg->layer_placeholder) {
		/* A template's layer device: the guest never mounts it. */
		arg_add(&a, "-blockdev");
		arg_add(&a, "driver=null-co,node-name=layer-file,size=%llu,read-zeroes=on",
			cfg->layer_placeholder);
	} else {
		arg_add(&a, "-add-fd");
		arg_add(&a, "fd=%d,set=2,opaque=rund-layer", cfg->layer_fd);
		arg_add(&a, "-blockdev");
		arg_add(&a, "driver=file,node-name=layer-file,filename=/dev/fdset/2,locking=off");
	}
	arg_add(&a, "-blockdev");
	arg_add(&a, "driver=raw,node-name=layer,file=layer-file");
	arg_add(&a, "-device");
	arg_add(&a, "virtio-blk-device,drive=layer");

	arg_add(&a, "-device");
	arg_add(&a, "virtio-serial-device,max_ports=2");
	arg_add(&a, "-chardev");
	arg_add(&a, "socket,id=agent,fd=%d", cfg->agent_fd);
	arg_add(&a, "-device");
	arg_add(&a, "virtserialport,chardev=agent,name=%s", RUND_AGENT_PORT_NAME);

	if (a.overflow) {
		arg_free(&a);
		return rund_error_setx(err, ENOMEM, "failed to build the QEMU command line");
	}

	/* Sorted: rund_spawn() closes everything above the last kept one. */
	keep[0] = cfg->image_fd;
	keep[1] = cfg->layer_fd;
	keep[2] = cfg->agent_fd;
	keep[3] = cfg->qmp_fd;
	keep[4] = cfg->console_fd;
	keep[5] = mem_fd;
	for (i = 1; i < 6; i++) {
		int v = keep[i], j = i - 1;

		while (j >= 0 && keep[j] > v) {
			keep[j + 1] = keep[j];
			j--;
		}
		keep[j + 1] = v;
	}

	so.path = vm->qemu;
	so.argv = a.argv;
	so.keep_fds = keep;
	so.nkeep = 6;
	so.stdin_fd = -1;
	so.stdout_fd = -1;
	so.stderr_fd = cfg->stderr_fd;
	so.cgroup_fd = cfg->cgroup_fd;
	so.cgroup_fallback = cfg->cgroup_fallback;

	ret = rund_spawn(&so, &sr, err);
	arg_free(&a);
	if (ret)
		return ret;
	vm->pid = sr.pid;
	vm->pidfd = sr.pidfd;
	vm->in_cgroup = sr.in_cgroup;
	return 0;
}

struct vm_start_call {
	const struct rund_vm_config *cfg;
	struct rund_vm *vm;
	struct rund_error *err;
};

static int vm_start_call(void *arg)
{
	struct vm_start_call *c = arg;

	return rund_vm_start(c->cfg, c->vm, c->err);
}

int rund_vm_start_in_slot(struct rund_pool_launch *launch, const struct rund_vm_config *cfg,
			  struct rund_vm *vm, struct rund_error *err)
{
	struct vm_start_call call = { .cfg = cfg, .vm = vm, .err = err };

	return rund_pool_launch_call(launch, vm_start_call, &call, err);
}

int rund_vm_reap(struct rund_vm *vm, int timeout_ms)
{
	struct pollfd pfd = { .fd = vm->pidfd, .events = POLLIN };
	int status = 0;

	if (vm->pid <= 0)
		return 0;
	if (vm->pidfd >= 0) {
		if (TEMP_FAILURE_RETRY(poll(&pfd, 1, timeout_ms)) == 0)
			syscall(SYS_pidfd_send_signal, vm->pidfd, SIGKILL, NULL, 0);
	} else {
		kill(vm->pid, SIGKILL);
	}
	TEMP_FAILURE_RETRY(waitpid(vm->pid, &status, 0));
	if (vm->pidfd >= 0)
		close(vm->pidfd);
	vm->pidfd = -1;
	vm->pid = -1;
	return status;
}
