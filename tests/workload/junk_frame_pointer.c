/* A workload for kernel-delay's --syscall-events tests: N sleeps of 5 ms
 * made while the frame-pointer register holds what a function built
 * without frame pointers leaves there, here a pointer to data whose
 * "return address" is text (MODE "text", as in memcached from Debian) or
 * a data address (MODE "data"). A frame-pointer walk reads junk after the
 * first frame. x86_64 only (the register and the system call by hand). */
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>

static unsigned long fake_frame[2];

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 5;
	struct timespec duration = { .tv_sec = 0, .tv_nsec = 5000000L };

	/* "hollow text" as a saved frame pointer, then the return address */
	fake_frame[0] = 0x7478657420776f6cUL;
	if (argc > 2 && strcmp(argv[2], "data") == 0)
		fake_frame[1] = (unsigned long)&fake_frame[0];
	else
		fake_frame[1] = 0x74697728206c6c6fUL;
	for (int i = 0; i < n; i++) {
		long ret;

		__asm__ volatile("mov %%rbp, %%r12\n\t"
				 "mov %[frame], %%rbp\n\t"
				 "syscall\n\t"
				 "mov %%r12, %%rbp"
				 : "=a"(ret)
				 : "a"(SYS_nanosleep), "D"(&duration), "S"(0), [frame] "r"(fake_frame)
				 : "rcx", "r11", "r12", "memory");
	}
	return 0;
}
