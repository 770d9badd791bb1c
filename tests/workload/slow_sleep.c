/* A workload for kernel-delay's --syscall-events tests: kd_slow_sleep()
 * sleeps 5 ms, N times. Built with frame pointers and debug info, and the
 * system call made from kd_slow_sleep() itself (on x86_64: libc's own
 * wrapper has no frame pointer, and would hide its caller), so that its
 * user stacks name kd_slow_sleep, with file and line, then main. */
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static inline long clock_nanosleep_call(const struct timespec *duration)
{
#if defined(__x86_64__)
	register long rem __asm__("r10") = 0;
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(SYS_clock_nanosleep), "D"(CLOCK_MONOTONIC), "S"(0),
			   "d"(duration), "r"(rem)
			 : "rcx", "r11", "memory");
	return ret;
#else
	return syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, duration, NULL);
#endif
}

__attribute__((noinline)) void kd_slow_sleep(long ms)
{
	struct timespec duration = { .tv_sec = 0, .tv_nsec = ms * 1000000L };

	clock_nanosleep_call(&duration);
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 20;

	for (int i = 0; i < n; i++)
		kd_slow_sleep(5);
	return 0;
}
