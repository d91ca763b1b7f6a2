// noamx runs a command with AMX permission refused: a seccomp filter makes
// arch_prctl(ARCH_REQ_XCOMP_PERM) fail with EPERM in it and its children,
// so ONNX Runtime's MLAS (and anything else that asks Linux for the AMX
// tile state before using it) falls back to its AVX-512/VNNI kernels. On
// an AMX Xeon this stands in for a CPU without AMX (issue 18: the best
// formulation there); everything else, arch_prctl's other codes included,
// is allowed. Linux x86-64 only.
//
//	cc -O2 -o /tmp/noamx bench/noamx/noamx.c
//	/tmp/noamx go run ./bench/linear ...
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
	if (argc < 2) { fprintf(stderr, "usage: noamx CMD [ARGS...]\n"); return 2; }
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_arch_prctl, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x1023, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) {
		perror("noamx: seccomp"); return 1;
	}
	execvp(argv[1], argv + 1);
	perror("noamx: exec");
	return 1;
}
