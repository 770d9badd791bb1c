/* A workload for kernel-delay's --off-cpu-stacks tests: kd_pipe_reader()
 * reads an empty pipe through libc's read() and waits there until it is
 * killed: a thread asleep since long before any window opens. */
#include <stdio.h>
#include <unistd.h>

__attribute__((noinline)) ssize_t kd_pipe_reader(int fd)
{
	/* On the stack: the call cannot become a tail call. */
	char byte;

	return read(fd, &byte, 1);
}

int main(void)
{
	int fds[2];

	if (pipe(fds)) {
		perror("pipe");
		return 1;
	}
	printf("reading\n");
	fflush(stdout);
	return kd_pipe_reader(fds[0]) < 0;
}
