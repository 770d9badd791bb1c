/* A workload for kernel-delay's --syscall-events tests: kd_slow_sleep()
 * sleeps 5 ms through libc's nanosleep(), N times, as a real program
 * does: libc's wrapper sets up no frame pointer, and the tests build this
 * both with frame pointers and without any (-fomit-frame-pointer), so
 * that only an unwinder that reads the call frame information finds
 * kd_slow_sleep, with file and line, then main. With DEPTH, each sleep is
 * made DEPTH calls of kd_deep() down, each taking 256 bytes of stack. */
#include <stdlib.h>
#include <time.h>

__attribute__((noinline)) void kd_slow_sleep(long ms)
{
	/* On the stack: the call cannot become a tail call. */
	struct timespec duration = { .tv_sec = 0, .tv_nsec = ms * 1000000L };

	nanosleep(&duration, NULL);
}

__attribute__((noinline)) void kd_deep(int depth)
{
	volatile char frame[256];

	frame[0] = (char)depth;
	if (depth > 0)
		kd_deep(depth - 1);
	else
		kd_slow_sleep(5);
	frame[1] = frame[0];
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 20;
	int depth = argc > 2 ? atoi(argv[2]) : 0;

	for (int i = 0; i < n; i++) {
		if (depth > 0)
			kd_deep(depth);
		else
			kd_slow_sleep(5);
	}
	return 0;
}
