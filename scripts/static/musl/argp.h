/*
 * argp.h for `make static`: declarations only, no code.
 *
 * The musl build compiles libelf from the elfutils sources bundled in
 * libbpf-sys. Before libelf it builds elfutils' helper library lib/, and two
 * files there include <argp.h>, a glibc extension that musl does not have:
 * lib/color.c (the --color option of elfutils' command-line tools) and
 * lib/printversion.c (their --version text). libelf never calls into
 * either, so they only have to compile: the types and constants they name
 * are declared here (with glibc's field order) and nothing is defined.
 * Should anything that kernel-delay links ever need argp, the link fails
 * with an undefined symbol; it cannot silently misbehave.
 *
 * The autoconf cache variables set by scripts/static/cargo.sh
 * (ac_cv_search_argp_parse and friends) tell elfutils' configure not to
 * look for an argp *library*, which only its tools would link.
 */
#ifndef KERNEL_DELAY_ARGP_STUB_H
#define KERNEL_DELAY_ARGP_STUB_H

#include <errno.h>
#include <stdio.h>

typedef int error_t;

struct argp;

struct argp_state {
	const struct argp *root_argp;
	int argc;
	char **argv;
	int next;
	unsigned flags;
	unsigned arg_num;
	int quoted;
	void *input;
	void **child_inputs;
	void *hook;
	char *name;
	FILE *err_stream;
	FILE *out_stream;
	void *pstate;
};

struct argp_option {
	const char *name;
	int key;
	const char *arg;
	int flags;
	const char *doc;
	int group;
};

typedef error_t (*argp_parser_t)(int key, char *arg, struct argp_state *state);

struct argp_child;

struct argp {
	const struct argp_option *options;
	argp_parser_t parser;
	const char *args_doc;
	const char *doc;
	const struct argp_child *children;
	char *(*help_filter)(int key, const char *text, void *input);
	const char *argp_domain;
};

#define OPTION_ARG_OPTIONAL 0x1
#define ARGP_ERR_UNKNOWN E2BIG
#define ARGP_HELP_SEE 0x10

void argp_help(const struct argp *argp, FILE *stream, unsigned flags, char *name);

#endif
