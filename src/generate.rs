//! `--generate man|bash|zsh|fish`: the man page and the shell completions,
//! made from the command line's own definition so that they never drift
//! from it; `make install` puts them where man and the shells look.

use std::io::{self, Write};

use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::Man;
use roff::{bold, italic, roman, Roff};

use crate::cli::{Cli, Generated, EXAMPLES};

const NAME: &str = "kernel-delay";

/// Writes `what` to `out`.
pub fn write(what: Generated, out: &mut dyn Write) -> io::Result<()> {
    let mut command = Cli::command();
    let shell = match what {
        Generated::Man => return man_page(out),
        Generated::Bash => Shell::Bash,
        Generated::Zsh => Shell::Zsh,
        Generated::Fish => Shell::Fish,
    };
    clap_complete::generate(shell, &mut command, NAME, out);
    Ok(())
}

/// clap's sections (name, synopsis, description, options), then what a
/// man page has besides: examples, exit status, requirements, see also.
fn man_page(out: &mut dyn Write) -> io::Result<()> {
    let man = Man::new(Cli::command())
        .section("8")
        .manual("System Administration");
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    let mut page = Roff::new();
    page.control("SH", ["EXAMPLES"]);
    for (command, what) in EXAMPLES {
        page.control("TP", [])
            .text([bold(command)])
            .text([roman(what)]);
    }
    page.control("SH", ["EXIT STATUS"]);
    for (status, meaning) in EXIT_STATUS {
        page.control("TP", [])
            .text([bold(status)])
            .text([roman(meaning)]);
    }
    page.control("SH", ["REQUIREMENTS"]).text([roman(
        "Linux 5.8 or later built with BTF (CONFIG_DEBUG_INFO_BTF=y: \
             /sys/kernel/btf/vmlinux), run as root or with CAP_BPF and CAP_PERFMON \
             (CAP_SYS_NICE for the reader's real-time priority, CAP_SYS_PTRACE to read \
             the calls threads are in when the window opens). kernel-delay runs in \
             the host's PID namespace.",
    )]);
    page.control("SH", ["SEE ALSO"]).text([
        bold("bpftrace"),
        roman("(8), "),
        bold("perf-sched"),
        roman("(1), "),
        bold("perf-trace"),
        roman("(1), "),
        bold("strace"),
        roman("(1), "),
        bold("proc"),
        roman("(5) ("),
        italic("/proc/PID/task/TID/schedstat"),
        roman(")"),
    ]);
    page.to_writer(out)?;
    man.render_version_section(out)
}

/// (status, meaning), for the man page.
const EXIT_STATUS: [(&str, &str); 5] = [
    ("0", "The report was written."),
    (
        "1",
        "kernel-delay failed; a line on standard error says why (the report of \
         what was measured until then is written first, when tracing had begun).",
    ),
    ("2", "The command line is not valid."),
    (
        "141",
        "The reader of standard output went away (as SIGPIPE would end it).",
    ),
    (
        "other",
        "With a command after --: the command's own exit status (128 + N when \
         signal N ended it).",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn generated(what: Generated) -> String {
        let mut out = Vec::new();
        write(what, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_man_page_has_every_option_and_the_sections_of_a_man_page() {
        let page = generated(Generated::Man);
        assert!(page.contains("\n.TH kernel-delay 8 "), "{page}");
        for section in [
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "OPTIONS",
            "EXAMPLES",
            "\"EXIT STATUS\"",
            "REQUIREMENTS",
            "\"SEE ALSO\"",
            "VERSION",
        ] {
            assert!(page.contains(&format!(".SH {section}\n")), "{section}");
        }
        for arg in Cli::command().get_arguments() {
            if let Some(long) = arg.get_long() {
                let long = long.replace('-', "\\-");
                assert!(page.contains(&format!("\\-\\-{long}")), "--{long}");
            }
        }
    }

    #[test]
    fn completions_for_each_shell_name_the_options() {
        for shell in [Generated::Bash, Generated::Zsh, Generated::Fish] {
            let script = generated(shell);
            assert!(script.contains("kernel-delay"), "{shell:?}");
            assert!(script.contains("start-trigger"), "{shell:?}");
        }
    }
}
