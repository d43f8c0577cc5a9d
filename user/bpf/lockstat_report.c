// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * rund-lockstat's report: combines the per-CPU aggregates, groups them per
 * lock, names each lock from kallsyms or infers a name from its callers, and
 * prints text or JSON.
 */
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <json-c/json.h>

#include "lockstat_report.h"

/*
 * Callers whose lock is known from the kernel source, checked against
 * kernel/cgroup/cgroup.c, cgroup-v1.c and legacy_freezer.c of Linux 6.1 and
 * against stacks recorded on 6.18. Newer kernels take cgroup_mutex through
 * cgroup_lock(), an inline function, so its callers still appear by their
 * own name. The caller is the first stack frame outside the locking code, so
 * a lock taken in an inlined helper shows the function the helper was
 * inlined into. The class must match too: proc_cgroup_show() takes both
 * cgroup_mutex and css_set_lock. STATIC_LOCK entries name a lock in the
 * kernel image, OBJECT_LOCK entries the kind of an allocated lock.
 */
#define STATIC_LOCK(caller, class, lock) { caller, class, lock, false }
#define OBJECT_LOCK(caller, class, lock) { caller, class, lock, true }

static const struct lockstat_inference inferences[] = {
	/* mutex_lock(&cgroup_mutex), directly or through cgroup_lock() */
	STATIC_LOCK("cgroup_kn_lock_live", LOCKSTAT_CLASS_MUTEX, "cgroup_mutex"),
	STATIC_LOCK("cgroup_lock_and_drain_offline", LOCKSTAT_CLASS_MUTEX, "cgroup_mutex"),
	STATIC_LOCK("css_killed_work_fn", LOCKSTAT_CLASS_MUTEX, "cgroup_mutex"),
	STATIC_LOCK("css_release_work_fn", LOCKSTAT_CLASS_MUTEX, "cgroup_mutex"),
	STATIC_LOCK("cgroup1_rename", LOCKSTAT_CLASS_MUTEX, "cgroup_mutex"),
	STATIC_LOCK("cgroup_attach_task_all", LOCKSTAT_CLASS_MUTEX, "cgroup_mutex"),
	STATIC_LOCK("cgroup_transfer_tasks", LOCKSTAT_CLASS_MUTEX, "cgroup_mutex"),
	STATIC_LOCK("cgroup_css_set_fork", LOCKSTAT_CLASS_MUTEX, "cgroup_mutex"),
	STATIC_LOCK("cgroup_can_fork", LOCKSTAT_CLASS_MUTEX, "cgroup_mutex"),
	STATIC_LOCK("cgroup_do_get_tree", LOCKSTAT_CLASS_MUTEX, "cgroup_mutex"),
	STATIC_LOCK("cgroup_path_ns", LOCKSTAT_CLASS_MUTEX, "cgroup_mutex"),
	STATIC_LOCK("task_cgroup_path", LOCKSTAT_CLASS_MUTEX, "cgroup_mutex"),
	STATIC_LOCK("proc_cgroup_show", LOCKSTAT_CLASS_MUTEX, "cgroup_mutex"),
	STATIC_LOCK("pressure_write", LOCKSTAT_CLASS_MUTEX, "cgroup_mutex"),
	STATIC_LOCK("cgroup_add_cftypes", LOCKSTAT_CLASS_MUTEX, "cgroup_mutex"),
	STATIC_LOCK("cgroup_rm_cftypes", LOCKSTAT_CLASS_MUTEX, "cgroup_mutex"),

	/* spin_lock_irq(&css_set_lock) and its irqsave form */
	STATIC_LOCK("cgroup_post_fork", LOCKSTAT_CLASS_SPIN, "css_set_lock"),
	STATIC_LOCK("cgroup_css_set_fork", LOCKSTAT_CLASS_SPIN, "css_set_lock"),
	STATIC_LOCK("cgroup_can_fork", LOCKSTAT_CLASS_SPIN, "css_set_lock"),
	STATIC_LOCK("cgroup_exit", LOCKSTAT_CLASS_SPIN, "css_set_lock"),
	STATIC_LOCK("cgroup_release", LOCKSTAT_CLASS_SPIN, "css_set_lock"),
	STATIC_LOCK("cgroup_migrate", LOCKSTAT_CLASS_SPIN, "css_set_lock"),
	STATIC_LOCK("cgroup_migrate_execute", LOCKSTAT_CLASS_SPIN, "css_set_lock"),
	STATIC_LOCK("cgroup_migrate_finish", LOCKSTAT_CLASS_SPIN, "css_set_lock"),
	STATIC_LOCK("cgroup_attach_task", LOCKSTAT_CLASS_SPIN, "css_set_lock"),
	STATIC_LOCK("__cgroup_procs_write", LOCKSTAT_CLASS_SPIN, "css_set_lock"),
	STATIC_LOCK("cgroup_attach_task_all", LOCKSTAT_CLASS_SPIN, "css_set_lock"),
	STATIC_LOCK("cgroup_transfer_tasks", LOCKSTAT_CLASS_SPIN, "css_set_lock"),
	STATIC_LOCK("find_css_set", LOCKSTAT_CLASS_SPIN, "css_set_lock"),
	STATIC_LOCK("cgroup_create", LOCKSTAT_CLASS_SPIN, "css_set_lock"),
	STATIC_LOCK("cgroup_destroy_locked", LOCKSTAT_CLASS_SPIN, "css_set_lock"),
	STATIC_LOCK("css_release_work_fn", LOCKSTAT_CLASS_SPIN, "css_set_lock"),
	STATIC_LOCK("css_task_iter_start", LOCKSTAT_CLASS_SPIN, "css_set_lock"),
	STATIC_LOCK("css_task_iter_next", LOCKSTAT_CLASS_SPIN, "css_set_lock"),
	STATIC_LOCK("css_task_iter_end", LOCKSTAT_CLASS_SPIN, "css_set_lock"),
	STATIC_LOCK("cgroup_task_count", LOCKSTAT_CLASS_SPIN, "css_set_lock"),
	STATIC_LOCK("__cgroup_kill", LOCKSTAT_CLASS_SPIN, "css_set_lock"),
	STATIC_LOCK("cgroup_update_dfl_csses", LOCKSTAT_CLASS_SPIN, "css_set_lock"),
	STATIC_LOCK("cgroup_path_ns", LOCKSTAT_CLASS_SPIN, "css_set_lock"),
	STATIC_LOCK("task_cgroup_path", LOCKSTAT_CLASS_SPIN, "css_set_lock"),
	STATIC_LOCK("proc_cgroup_show", LOCKSTAT_CLASS_SPIN, "css_set_lock"),
	STATIC_LOCK("cgroup_show_path", LOCKSTAT_CLASS_SPIN, "css_set_lock"),

	/*
	 * Locks inside allocated objects, named by their kind, from the 6.1
	 * sources of kernel/fork.c, mm/mmap.c, mm/util.c, fs/namei.c and
	 * fs/kernfs/dir.c. lock_mm_and_find_vma() (6.5+) and the
	 * do_renameat2() frame were seen on 6.18.
	 */
	OBJECT_LOCK("dup_mmap", LOCKSTAT_CLASS_RWSEM, "mmap_lock of an mm_struct"),
	OBJECT_LOCK("exit_mmap", LOCKSTAT_CLASS_RWSEM, "mmap_lock of an mm_struct"),
	OBJECT_LOCK("vm_mmap_pgoff", LOCKSTAT_CLASS_RWSEM, "mmap_lock of an mm_struct"),
	OBJECT_LOCK("__vm_munmap", LOCKSTAT_CLASS_RWSEM, "mmap_lock of an mm_struct"),
	OBJECT_LOCK("vm_munmap", LOCKSTAT_CLASS_RWSEM, "mmap_lock of an mm_struct"),
	OBJECT_LOCK("do_brk_flags", LOCKSTAT_CLASS_RWSEM, "mmap_lock of an mm_struct"),
	OBJECT_LOCK("vm_brk_flags", LOCKSTAT_CLASS_RWSEM, "mmap_lock of an mm_struct"),
	OBJECT_LOCK("do_user_addr_fault", LOCKSTAT_CLASS_RWSEM, "mmap_lock of an mm_struct"),
	OBJECT_LOCK("lock_mm_and_find_vma", LOCKSTAT_CLASS_RWSEM, "mmap_lock of an mm_struct"),
	OBJECT_LOCK("filename_create", LOCKSTAT_CLASS_RWSEM, "i_rwsem of a directory inode"),
	OBJECT_LOCK("do_rmdir", LOCKSTAT_CLASS_RWSEM, "i_rwsem of a directory inode"),
	OBJECT_LOCK("do_unlinkat", LOCKSTAT_CLASS_RWSEM, "i_rwsem of a directory inode"),
	OBJECT_LOCK("lock_rename", LOCKSTAT_CLASS_RWSEM, "i_rwsem of a directory inode"),
	OBJECT_LOCK("do_renameat2", LOCKSTAT_CLASS_RWSEM, "i_rwsem of a directory inode"),
	OBJECT_LOCK("open_last_lookups", LOCKSTAT_CLASS_RWSEM, "i_rwsem of a directory inode"),
	OBJECT_LOCK("lookup_slow", LOCKSTAT_CLASS_RWSEM, "i_rwsem of a directory inode"),
	OBJECT_LOCK("kernfs_dop_revalidate", LOCKSTAT_CLASS_RWSEM, "kernfs_rwsem of a kernfs root"),
	OBJECT_LOCK("kernfs_iop_lookup", LOCKSTAT_CLASS_RWSEM, "kernfs_rwsem of a kernfs root"),
	OBJECT_LOCK("kernfs_add_one", LOCKSTAT_CLASS_RWSEM, "kernfs_rwsem of a kernfs root"),
	OBJECT_LOCK("kernfs_remove", LOCKSTAT_CLASS_RWSEM, "kernfs_rwsem of a kernfs root"),
	OBJECT_LOCK("kernfs_remove_by_name_ns", LOCKSTAT_CLASS_RWSEM, "kernfs_rwsem of a kernfs root"),
	OBJECT_LOCK("kernfs_remove_self", LOCKSTAT_CLASS_RWSEM, "kernfs_rwsem of a kernfs root"),
	OBJECT_LOCK("kernfs_rename_ns", LOCKSTAT_CLASS_RWSEM, "kernfs_rwsem of a kernfs root"),
	OBJECT_LOCK("kernfs_fop_readdir", LOCKSTAT_CLASS_RWSEM, "kernfs_rwsem of a kernfs root"),
	OBJECT_LOCK("kernfs_find_and_get_ns", LOCKSTAT_CLASS_RWSEM, "kernfs_rwsem of a kernfs root"),
	OBJECT_LOCK("kernfs_walk_and_get_ns", LOCKSTAT_CLASS_RWSEM, "kernfs_rwsem of a kernfs root"),
	OBJECT_LOCK("kernfs_activate", LOCKSTAT_CLASS_RWSEM, "kernfs_rwsem of a kernfs root"),

	/* mutex_lock(&freezer_mutex) in kernel/cgroup/legacy_freezer.c (v1 freezer) */
	STATIC_LOCK("freezer_attach", LOCKSTAT_CLASS_MUTEX, "freezer_mutex"),
	STATIC_LOCK("freezer_fork", LOCKSTAT_CLASS_MUTEX, "freezer_mutex"),
	STATIC_LOCK("freezer_css_online", LOCKSTAT_CLASS_MUTEX, "freezer_mutex"),
	STATIC_LOCK("freezer_css_offline", LOCKSTAT_CLASS_MUTEX, "freezer_mutex"),
	STATIC_LOCK("freezer_read", LOCKSTAT_CLASS_MUTEX, "freezer_mutex"),
	STATIC_LOCK("freezer_change_state", LOCKSTAT_CLASS_MUTEX, "freezer_mutex"),
	/* freezer_write() shows when freezer_change_state() is inlined into it. */
	STATIC_LOCK("freezer_write", LOCKSTAT_CLASS_MUTEX, "freezer_mutex"),

	/*
	 * percpu_down_write(&cgroup_threadgroup_rwsem) in cgroup_attach_lock()
	 * (in cgroup_procs_write_start() on older kernels), and the read side of
	 * cgroup_threadgroup_change_begin() on fork, exec and exit. The
	 * cgroup_can_fork() entries cover cgroup_css_set_fork() inlined into it.
	 */
	STATIC_LOCK("cgroup_attach_lock", LOCKSTAT_CLASS_PERCPU_RWSEM, "cgroup_threadgroup_rwsem"),
	STATIC_LOCK("cgroup_procs_write_start", LOCKSTAT_CLASS_PERCPU_RWSEM,
		    "cgroup_threadgroup_rwsem"),
	STATIC_LOCK("cgroup_css_set_fork", LOCKSTAT_CLASS_PERCPU_RWSEM, "cgroup_threadgroup_rwsem"),
	STATIC_LOCK("cgroup_can_fork", LOCKSTAT_CLASS_PERCPU_RWSEM, "cgroup_threadgroup_rwsem"),
	STATIC_LOCK("copy_process", LOCKSTAT_CLASS_PERCPU_RWSEM, "cgroup_threadgroup_rwsem"),
	STATIC_LOCK("exit_signals", LOCKSTAT_CLASS_PERCPU_RWSEM, "cgroup_threadgroup_rwsem"),
	STATIC_LOCK("de_thread", LOCKSTAT_CLASS_PERCPU_RWSEM, "cgroup_threadgroup_rwsem"),
};

/*
 * Frames of the locking code itself, which never name the caller. Most of it
 * sits in the __lock_text and __sched_text sections. These are the slow paths
 * and tracing frames that live elsewhere.
 */
static const char *const lock_code_prefixes[] = {
	"native_queued_spin_lock_slowpath", "queued_spin_lock_slowpath",
	"__pv_queued_spin_lock_slowpath", "queued_read_lock_slowpath",
	"queued_write_lock_slowpath", "do_raw_spin_lock", "do_raw_read_lock",
	"do_raw_write_lock", "_raw_", "__mutex_lock", "mutex_lock", "mutex_spin_on_owner",
	"rwsem_down_", "rwsem_optimistic_spin", "__down_read", "__down_write", "down_read",
	"down_write", "__percpu_down_read", "percpu_down_write", "percpu_rwsem_wait",
	"rt_mutex", "__rt_mutex", "rtlock_", "bpf_trace_run", "__bpf_trace_", "__traceiter_",
	"bpf_prog_",
};

static __u64 lock_text_start, lock_text_end, sched_text_start, sched_text_end;

const char *lockstat_flags_name(__u32 flags)
{
	bool read = flags & LCB_F_READ;

	switch (lockstat_classify(flags)) {
	case LOCKSTAT_CLASS_SPIN:
		return "spin";
	case LOCKSTAT_CLASS_RWLOCK:
		return read ? "rwlock-read" : "rwlock-write";
	case LOCKSTAT_CLASS_MUTEX:
		return "mutex";
	case LOCKSTAT_CLASS_RWSEM:
		return read ? "rwsem-read" : "rwsem-write";
	case LOCKSTAT_CLASS_PERCPU_RWSEM:
		return read ? "percpu-rwsem-read" : "percpu-rwsem-write";
	case LOCKSTAT_CLASS_RTMUTEX:
		return "rtmutex";
	default:
		return "unknown";
	}
}

static bool is_lock_code(const struct ksyms *ksyms, __u64 ip)
{
	const struct ksym *sym;
	size_t i;

	if ((ip >= lock_text_start && ip < lock_text_end) ||
	    (ip >= sched_text_start && ip < sched_text_end))
		return true;
	sym = ksyms_find_text(ksyms, ip);
	if (!sym)
		return false;
	for (i = 0; i < sizeof(lock_code_prefixes) / sizeof(lock_code_prefixes[0]); i++)
		if (!strncmp(sym->name, lock_code_prefixes[i], strlen(lock_code_prefixes[i])))
			return true;
	return false;
}

/* Returns the symbol's name without a ".constprop.0"-style suffix in @buf. */
static const char *base_name(const char *name, char *buf, size_t size)
{
	size_t len = strcspn(name, ". ");

	if (len >= size)
		len = size - 1;
	memcpy(buf, name, len);
	buf[len] = '\0';
	return buf;
}

static bool matches_caller_filter(const struct ksyms *ksyms, const struct lockstat_entry *entry,
				  const struct lockstat_report_options *options)
{
	char name[256];
	int i, p;

	if (!options->caller_pattern_count)
		return true;
	for (i = 0; i < entry->depth; i++) {
		const struct ksym *sym = ksyms_find_text(ksyms, entry->ips[i]);

		if (!sym)
			continue;
		base_name(sym->name, name, sizeof(name));
		for (p = 0; p < options->caller_pattern_count; p++)
			if (!fnmatch(options->caller_patterns[p], name, 0))
				return true;
	}
	return false;
}

/*
 * A static lock lies in the kernel image, but heap, vmalloc and per-CPU locks
 * do not. On x86-64 the image is mapped from _stext up to the module area at
 * 0xffffffffc0000000 (Documentation/arch/x86/x86_64/mm.rst). Elsewhere the
 * check is skipped and every lock counts as static.
 */
static bool lock_in_kernel_image(const struct ksyms *ksyms, __u64 addr)
{
#ifdef __x86_64__
	if (!ksyms->stext)
		return true;
	return addr >= ksyms->stext && addr < 0xffffffffc0000000ULL;
#else
	return true;
#endif
}

static void infer_lock_name(const struct ksyms *ksyms, struct lockstat_lock *lock)
{
	char name[256];
	size_t e, i;

	/* Entries are sorted, so the first match is the one with the most weight. */
	for (e = 0; e < lock->entry_count; e++) {
		const struct lockstat_entry *entry = lock->entries[e];
		enum lockstat_class class = lockstat_classify(entry->key.flags);
		const struct ksym *sym;

		if (entry->caller < 0)
			continue;
		sym = ksyms_find_text(ksyms, entry->ips[entry->caller]);
		if (!sym)
			continue;
		base_name(sym->name, name, sizeof(name));
		for (i = 0; i < sizeof(inferences) / sizeof(inferences[0]); i++) {
			if (inferences[i].class != class || strcmp(inferences[i].caller, name))
				continue;
			if (inferences[i].dynamic == lock->in_kernel_image)
				continue;
			if (!lock->inferred)
				lock->inferred = &inferences[i];
			else if (strcmp(lock->inferred->lock, inferences[i].lock) &&
				 !lock->conflicting_lock)
				lock->conflicting_lock = inferences[i].lock;
		}
	}
}

static __u64 sort_value(enum lockstat_sort sort, __u64 count, __u64 total_ns, __u64 max_ns)
{
	switch (sort) {
	case LOCKSTAT_SORT_MAX:
		return max_ns;
	case LOCKSTAT_SORT_COUNT:
		return count;
	case LOCKSTAT_SORT_AVG:
		return count ? total_ns / count : 0;
	case LOCKSTAT_SORT_TOTAL:
	default:
		return total_ns;
	}
}

/* qsort(3) has no context argument; the report is built by one thread. */
static enum lockstat_sort current_sort;

static int compare_entries(const void *a, const void *b)
{
	const struct lockstat_entry *x = *(const struct lockstat_entry *const *)a;
	const struct lockstat_entry *y = *(const struct lockstat_entry *const *)b;
	__u64 vx = sort_value(current_sort, x->value.count, x->value.total_ns, x->value.max_ns);
	__u64 vy = sort_value(current_sort, y->value.count, y->value.total_ns, y->value.max_ns);

	return vx == vy ? 0 : (vx > vy ? -1 : 1);
}

static int compare_locks(const void *a, const void *b)
{
	const struct lockstat_lock *x = a, *y = b;
	__u64 vx = sort_value(current_sort, x->count, x->total_ns, x->max_ns);
	__u64 vy = sort_value(current_sort, y->count, y->total_ns, y->max_ns);

	if (vx != vy)
		return vx > vy ? -1 : 1;
	return x->addr == y->addr ? 0 : (x->addr < y->addr ? -1 : 1);
}

static int compare_entry_lock(const void *a, const void *b)
{
	const struct lockstat_entry *x = a, *y = b;

	return x->key.lock == y->key.lock ? 0 : (x->key.lock < y->key.lock ? -1 : 1);
}

static int read_entries(struct lockstat_report *report, int stats_fd, int stacks_fd,
			const struct ksyms *ksyms, const struct lockstat_report_options *options)
{
	struct lockstat_key key, next;
	size_t capacity = 0;
	void *prev = NULL;
	int err = 0;

	while (bpf_map_get_next_key(stats_fd, prev, &next) == 0) {
		struct lockstat_entry *entry;
		struct lockstat_value value;
		int i;

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(stats_fd, &key, &value))
			continue;	/* deleted meanwhile: nothing to report */

		if (report->entry_count == capacity) {
			size_t grown = capacity ? capacity * 2 : 256;
			struct lockstat_entry *bigger;

			bigger = realloc(report->entries, grown * sizeof(*bigger));
			if (!bigger) {
				err = -ENOMEM;
				break;
			}
			report->entries = bigger;
			capacity = grown;
		}
		entry = &report->entries[report->entry_count];
		memset(entry, 0, sizeof(*entry));
		entry->key = key;
		entry->value = value;
		if (!entry->value.count)
			continue;

		entry->caller = -1;
		if (key.stack_id >= 0 &&
		    bpf_map_lookup_elem(stacks_fd, &key.stack_id, entry->ips) == 0) {
			while (entry->depth < LOCKSTAT_MAX_STACK_DEPTH && entry->ips[entry->depth])
				entry->depth++;
			for (i = 0; i < entry->depth; i++) {
				if (!is_lock_code(ksyms, entry->ips[i])) {
					entry->caller = i;
					break;
				}
			}
		}

		if (!matches_caller_filter(ksyms, entry, options)) {
			report->filtered_count += entry->value.count;
			continue;
		}
		report->total_count += entry->value.count;
		report->total_ns += entry->value.total_ns;
		report->entry_count++;
	}
	return err;
}

static int group_by_lock(struct lockstat_report *report, const struct ksyms *ksyms,
			 const struct lockstat_report_options *options)
{
	struct lockstat_entry **pointers;
	size_t i, first;

	if (!report->entry_count)
		return 0;
	qsort(report->entries, report->entry_count, sizeof(*report->entries),
	      compare_entry_lock);
	pointers = calloc(report->entry_count, sizeof(*pointers));
	if (!pointers)
		return -ENOMEM;
	report->entry_pointers = pointers;
	report->locks = calloc(report->entry_count, sizeof(*report->locks));
	if (!report->locks)
		return -ENOMEM;
	for (i = 0; i < report->entry_count; i++)
		pointers[i] = &report->entries[i];

	/* Each lock gets the slice of @pointers that holds its entries. */
	for (first = 0; first < report->entry_count;) {
		struct lockstat_lock *lock = &report->locks[report->lock_count++];
		size_t end = first, s;

		lock->addr = report->entries[first].key.lock;
		while (end < report->entry_count && report->entries[end].key.lock == lock->addr) {
			const struct lockstat_value *v = &report->entries[end].value;

			lock->count += v->count;
			lock->total_ns += v->total_ns;
			if (v->max_ns > lock->max_ns) {
				lock->max_ns = v->max_ns;
				lock->max_tid = v->max_tid;
			}
			for (s = 0; s < LOCKSTAT_HIST_SLOTS; s++)
				lock->hist[s] += v->hist[s];
			end++;
		}
		lock->entries = &pointers[first];
		lock->entry_count = end - first;
		qsort(lock->entries, lock->entry_count, sizeof(*lock->entries), compare_entries);
		lock->symbol = ksyms_find_data(ksyms, lock->addr);
		lock->in_kernel_image = lock_in_kernel_image(ksyms, lock->addr);
		if (!lock->symbol)
			infer_lock_name(ksyms, lock);
		first = end;
	}
	qsort(report->locks, report->lock_count, sizeof(*report->locks), compare_locks);
	return 0;
}

int lockstat_report_collect(struct lockstat_report *report, int stats_fd, int stacks_fd,
			    const struct ksyms *ksyms,
			    const struct lockstat_report_options *options)
{
	const struct ksym *sym;
	int err;

	sym = ksyms_by_name(ksyms, "__lock_text_start");
	lock_text_start = sym ? sym->addr : 0;
	sym = ksyms_by_name(ksyms, "__lock_text_end");
	lock_text_end = sym ? sym->addr : 0;
	sym = ksyms_by_name(ksyms, "__sched_text_start");
	sched_text_start = sym ? sym->addr : 0;
	sym = ksyms_by_name(ksyms, "__sched_text_end");
	sched_text_end = sym ? sym->addr : 0;

	report->data_symbols = ksyms->data_count > 0;
	report->addresses_visible = ksyms->addresses_visible;
	current_sort = options->sort;

	err = read_entries(report, stats_fd, stacks_fd, ksyms, options);
	if (err)
		return err;
	return group_by_lock(report, ksyms, options);
}

void lockstat_report_free(struct lockstat_report *report)
{
	free(report->entry_pointers);
	free(report->locks);
	free(report->entries);
	memset(report, 0, sizeof(*report));
}

static const char *format_ns(__u64 ns, char *buf, size_t size)
{
	if (ns < 1000)
		snprintf(buf, size, "%" PRIu64 " ns", (uint64_t)ns);
	else if (ns < 1000000)
		snprintf(buf, size, "%.1f us", ns / 1e3);
	else if (ns < 1000000000)
		snprintf(buf, size, "%.1f ms", ns / 1e6);
	else
		snprintf(buf, size, "%.2f s", ns / 1e9);
	return buf;
}

static const char *format_frame(const struct ksyms *ksyms, __u64 ip, char *buf, size_t size)
{
	const struct ksym *sym = ksyms_find_text(ksyms, ip);

	if (sym)
		snprintf(buf, size, "%s+0x%" PRIx64, sym->name, (uint64_t)(ip - sym->addr));
	else
		snprintf(buf, size, "0x%" PRIx64, (uint64_t)ip);
	return buf;
}

/* Writes the lock's classes, such as "rwsem-read+rwsem-write", into @buf. */
static const char *format_classes(const struct lockstat_lock *lock, char *buf, size_t size)
{
	const char *seen[8];
	size_t count = 0, e, s, len = 0;

	buf[0] = '\0';
	for (e = 0; e < lock->entry_count && count < 8; e++) {
		const char *name = lockstat_flags_name(lock->entries[e]->key.flags);

		for (s = 0; s < count; s++)
			if (!strcmp(seen[s], name))
				break;
		if (s < count)
			continue;
		seen[count++] = name;
		len += snprintf(buf + len, len < size ? size - len : 0, "%s%s",
				count > 1 ? "+" : "", name);
	}
	return buf;
}

static const char *format_lock_name(const struct lockstat_lock *lock, const struct ksyms *ksyms,
				    char *buf, size_t size)
{
	if (lock->symbol) {
		if (lock->addr == lock->symbol->addr)
			snprintf(buf, size, "%s", lock->symbol->name);
		else
			snprintf(buf, size, "%s+0x%" PRIx64, lock->symbol->name,
				 (uint64_t)(lock->addr - lock->symbol->addr));
	} else if (lock->inferred) {
		snprintf(buf, size, "likely %s (inferred from caller %s%s%s)", lock->inferred->lock,
			 lock->inferred->caller, lock->conflicting_lock ? "; other callers suggest " : "",
			 lock->conflicting_lock ? lock->conflicting_lock : "");
	} else if (!lock->in_kernel_image) {
		snprintf(buf, size, "(dynamic lock)");
	} else {
		snprintf(buf, size, "(static lock, no symbol)");
	}
	return buf;
}

static void print_histogram(FILE *out, const __u64 *hist)
{
	int first = -1, last = -1, i, j;
	__u64 peak = 0;

	for (i = 0; i < LOCKSTAT_HIST_SLOTS; i++) {
		if (!hist[i])
			continue;
		if (first < 0)
			first = i;
		last = i;
		if (hist[i] > peak)
			peak = hist[i];
	}
	if (first < 0)
		return;
	fprintf(out, "      %21s : %-10s distribution\n", "wait (ns)", "count");
	for (i = first; i <= last; i++) {
		int width = (int)(hist[i] * 40 / peak);
		char range[64];

		snprintf(range, sizeof(range), "%" PRIu64 " -> %" PRIu64,
			 i ? (uint64_t)1 << i : 0, ((uint64_t)1 << (i + 1)) - 1);
		fprintf(out, "      %21s : %-10" PRIu64 " |", range, (uint64_t)hist[i]);
		for (j = 0; j < 40; j++)
			fputc(j < width ? '*' : ' ', out);
		fprintf(out, "|\n");
	}
}

static size_t shown(size_t count, int limit)
{
	return limit > 0 && (size_t)limit < count ? (size_t)limit : count;
}

void lockstat_report_print_text(FILE *out, const struct lockstat_report *report,
				const struct ksyms *ksyms,
				const struct lockstat_report_options *options)
{
	char total[32], max[32], avg[32], classes[128], name[512], frame[256];
	size_t l, e;
	int f;

	fprintf(out, "Lock contention over %.2f s (%s): %" PRIu64 " waits, %s total wait, %zu locks\n",
		report->duration_s, report->target, (uint64_t)report->total_count,
		format_ns(report->total_ns, total, sizeof(total)), report->lock_count);
	if (!report->lock_count) {
		fprintf(out, "No contended locks.\n");
	} else {
		fprintf(out, "\n%-4s %-18s %-18s %8s %10s %10s %10s  %s\n", "#", "lock", "class",
			"waits", "total", "max", "avg", "name");
	}

	for (l = 0; l < shown(report->lock_count, options->top_locks); l++) {
		const struct lockstat_lock *lock = &report->locks[l];

		fprintf(out, "%-4zu 0x%016" PRIx64 " %-18s %8" PRIu64 " %10s %10s %10s  %s\n", l + 1,
			(uint64_t)lock->addr, format_classes(lock, classes, sizeof(classes)),
			(uint64_t)lock->count, format_ns(lock->total_ns, total, sizeof(total)),
			format_ns(lock->max_ns, max, sizeof(max)),
			format_ns(lock->total_ns / lock->count, avg, sizeof(avg)),
			format_lock_name(lock, ksyms, name, sizeof(name)));

		for (e = 0; e < shown(lock->entry_count, options->top_stacks); e++) {
			const struct lockstat_entry *entry = lock->entries[e];

			fprintf(out, "%23s %-18s %8" PRIu64 " %10s %10s  ", "",
				lockstat_flags_name(entry->key.flags), (uint64_t)entry->value.count,
				format_ns(entry->value.total_ns, total, sizeof(total)),
				format_ns(entry->value.max_ns, max, sizeof(max)));
			if (entry->caller < 0) {
				fprintf(out, "%s\n", entry->depth ? "(only lock code in the stack)"
								  : "(no stack)");
				continue;
			}
			for (f = entry->caller;
			     f < entry->depth && f < entry->caller + options->text_depth; f++)
				fprintf(out, "%s%s", f > entry->caller ? " <- " : "",
					format_frame(ksyms, entry->ips[f], frame, sizeof(frame)));
			fputc('\n', out);
		}
		if (lock->entry_count > shown(lock->entry_count, options->top_stacks))
			fprintf(out, "%23s (%zu more stacks)\n", "",
				lock->entry_count - shown(lock->entry_count, options->top_stacks));
		if (options->histogram)
			print_histogram(out, lock->hist);
	}
	if (report->lock_count > shown(report->lock_count, options->top_locks))
		fprintf(out, "(%zu more locks; -n 0 shows all)\n",
			report->lock_count - shown(report->lock_count, options->top_locks));

	if (!report->addresses_visible)
		fprintf(out, "\nNote: /proc/kallsyms shows no addresses (kernel.kptr_restrict), so "
			     "stacks and locks cannot be named; run as root or lower kptr_restrict.\n");
	else if (!report->data_symbols)
		fprintf(out, "\nNote: /proc/kallsyms lists no data symbols (kernel built without "
			     "CONFIG_KALLSYMS_ALL). Names marked \"likely\" are inferred from the "
			     "waiting function, not read from the symbol table.\n");
	if (report->filtered_count)
		fprintf(out, "Caller filter left out %" PRIu64 " waits.\n",
			(uint64_t)report->filtered_count);
	if (report->drops[LOCKSTAT_DROP_WAIT_MAP_FULL] || report->drops[LOCKSTAT_DROP_STAT_MAP_FULL])
		fprintf(out, "Warning: %" PRIu64 " waits were not recorded because a BPF map was full.\n",
			(uint64_t)(report->drops[LOCKSTAT_DROP_WAIT_MAP_FULL] +
				   report->drops[LOCKSTAT_DROP_STAT_MAP_FULL]));
	if (report->drops[LOCKSTAT_DROP_NO_STACK])
		fprintf(out, "Warning: %" PRIu64 " waits have no stack (bpf_get_stackid() failed: stack map full or hash collision).\n",
			(uint64_t)report->drops[LOCKSTAT_DROP_NO_STACK]);
	if (report->bpf_stats)
		fprintf(out, "BPF programs: %" PRIu64 " runs, %" PRIu64 " ns per run on average, "
			     "%.3f%% of one CPU over the period.\n", (uint64_t)report->prog_runs,
			(uint64_t)(report->prog_runs ? report->prog_run_ns / report->prog_runs : 0),
			report->duration_s > 0 ?
			report->prog_run_ns / (report->duration_s * 1e9) * 100 : 0.0);
	if (report->recursion_misses)
		fprintf(out, "Warning: the kernel skipped %" PRIu64 " tracepoint runs "
			     "(program already running on that CPU).\n",
			(uint64_t)report->recursion_misses);
}

static json_object *json_u64(__u64 value)
{
	return json_object_new_uint64(value);
}

static json_object *json_hex(__u64 value)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "0x%" PRIx64, (uint64_t)value);
	return json_object_new_string(buf);
}

static json_object *json_histogram(const __u64 *hist)
{
	json_object *array = json_object_new_array();
	int i;

	for (i = 0; array && i < LOCKSTAT_HIST_SLOTS; i++) {
		json_object *bucket;

		if (!hist[i])
			continue;
		bucket = json_object_new_object();
		json_object_object_add(bucket, "min_ns", json_u64(i ? (__u64)1 << i : 0));
		json_object_object_add(bucket, "max_ns", json_u64(((__u64)1 << (i + 1)) - 1));
		json_object_object_add(bucket, "count", json_u64(hist[i]));
		json_object_array_add(array, bucket);
	}
	return array;
}

static json_object *json_entry(const struct lockstat_entry *entry, const struct ksyms *ksyms,
			       const struct lockstat_report_options *options)
{
	json_object *object = json_object_new_object();
	json_object *stack = json_object_new_array();
	char frame[256];
	int f;

	json_object_object_add(object, "class", json_object_new_string(
				       lockstat_flags_name(entry->key.flags)));
	json_object_object_add(object, "flags", json_u64(entry->key.flags));
	json_object_object_add(object, "count", json_u64(entry->value.count));
	json_object_object_add(object, "total_ns", json_u64(entry->value.total_ns));
	json_object_object_add(object, "max_ns", json_u64(entry->value.max_ns));
	json_object_object_add(object, "avg_ns", json_u64(entry->value.total_ns / entry->value.count));
	json_object_object_add(object, "max_tid", json_u64(entry->value.max_tid));
	json_object_object_add(object, "caller", entry->caller < 0 ? NULL :
			       json_object_new_string(format_frame(ksyms, entry->ips[entry->caller],
								   frame, sizeof(frame))));
	for (f = 0; f < entry->depth; f++)
		json_object_array_add(stack, json_object_new_string(
					      format_frame(ksyms, entry->ips[f], frame, sizeof(frame))));
	json_object_object_add(object, "stack", stack);
	if (options->histogram)
		json_object_object_add(object, "histogram", json_histogram(entry->value.hist));
	return object;
}

int lockstat_report_print_json(FILE *out, const struct lockstat_report *report,
			       const struct ksyms *ksyms,
			       const struct lockstat_report_options *options)
{
	json_object *root = json_object_new_object();
	json_object *locks = json_object_new_array();
	json_object *drops = json_object_new_object();
	char classes[128], name[512];
	const char *text;
	size_t l, e;

	if (!root || !locks || !drops) {
		json_object_put(root);
		json_object_put(locks);
		json_object_put(drops);
		return -ENOMEM;
	}
	json_object_object_add(root, "duration_s", json_object_new_double(report->duration_s));
	json_object_object_add(root, "target", json_object_new_string(report->target));
	json_object_object_add(root, "total_count", json_u64(report->total_count));
	json_object_object_add(root, "total_ns", json_u64(report->total_ns));
	json_object_object_add(root, "lock_count", json_u64(report->lock_count));
	json_object_object_add(root, "filtered_count", json_u64(report->filtered_count));
	json_object_object_add(root, "kallsyms_data_symbols",
			       json_object_new_boolean(report->data_symbols));
	json_object_object_add(root, "kallsyms_addresses_visible",
			       json_object_new_boolean(report->addresses_visible));
	json_object_object_add(drops, "wait_map_full",
			       json_u64(report->drops[LOCKSTAT_DROP_WAIT_MAP_FULL]));
	json_object_object_add(drops, "stat_map_full",
			       json_u64(report->drops[LOCKSTAT_DROP_STAT_MAP_FULL]));
	json_object_object_add(drops, "no_stack", json_u64(report->drops[LOCKSTAT_DROP_NO_STACK]));
	json_object_object_add(drops, "recursion_misses", json_u64(report->recursion_misses));
	json_object_object_add(root, "drops", drops);
	if (report->bpf_stats) {
		json_object *stats = json_object_new_object();

		json_object_object_add(stats, "runs", json_u64(report->prog_runs));
		json_object_object_add(stats, "run_ns", json_u64(report->prog_run_ns));
		json_object_object_add(root, "bpf_stats", stats);
	}

	for (l = 0; l < shown(report->lock_count, options->top_locks); l++) {
		const struct lockstat_lock *lock = &report->locks[l];
		json_object *object = json_object_new_object();
		json_object *callers = json_object_new_array();

		json_object_object_add(object, "address", json_hex(lock->addr));
		json_object_object_add(object, "class", json_object_new_string(
					       format_classes(lock, classes, sizeof(classes))));
		json_object_object_add(object, "count", json_u64(lock->count));
		json_object_object_add(object, "total_ns", json_u64(lock->total_ns));
		json_object_object_add(object, "max_ns", json_u64(lock->max_ns));
		json_object_object_add(object, "avg_ns", json_u64(lock->total_ns / lock->count));
		json_object_object_add(object, "max_tid", json_u64(lock->max_tid));
		json_object_object_add(object, "in_kernel_image",
				       json_object_new_boolean(lock->in_kernel_image));
		json_object_object_add(object, "symbol", lock->symbol ?
				       json_object_new_string(format_lock_name(lock, ksyms, name,
									       sizeof(name))) : NULL);
		json_object_object_add(object, "inferred_name", lock->inferred ?
				       json_object_new_string(lock->inferred->lock) : NULL);
		json_object_object_add(object, "inferred_from", lock->inferred ?
				       json_object_new_string(lock->inferred->caller) : NULL);
		json_object_object_add(object, "conflicting_name", lock->conflicting_lock ?
				       json_object_new_string(lock->conflicting_lock) : NULL);
		if (options->histogram)
			json_object_object_add(object, "histogram", json_histogram(lock->hist));
		for (e = 0; e < shown(lock->entry_count, options->top_stacks); e++)
			json_object_array_add(callers, json_entry(lock->entries[e], ksyms, options));
		json_object_object_add(object, "callers", callers);
		json_object_array_add(locks, object);
	}
	json_object_object_add(root, "locks", locks);

	text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
					      JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!text) {
		json_object_put(root);
		return -ENOMEM;
	}
	fprintf(out, "%s\n", text);
	json_object_put(root);
	return 0;
}
