//! --folded: each thread's time off its CPU by stacks (--off-cpu-stacks)
//! as the collapsed stacks of Brendan Gregg's flame graph tools, one line
//! per stack, outermost frame first, the value in nanoseconds:
//! `process-PID;thread-TID;[state];user frames...;kernel frames... NS`.
//! Frames are function names alone (offsets, files and lines would keep
//! apart what a flame graph merges); the windows of a run add up.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};

use super::Report;

/// Collapsed stacks and their nanoseconds, of all windows so far.
#[derive(Debug, Default)]
pub struct FoldedStacks {
    ns: BTreeMap<String, u64>,
}

impl FoldedStacks {
    /// Adds the off-CPU stacks of `report`'s threads.
    pub fn add(&mut self, report: &Report) {
        let processes: HashMap<u32, &str> = report
            .processes
            .iter()
            .map(|process| (process.pid, process.comm.as_str()))
            .collect();
        for index in 0..report.threads.len() {
            let row = report.threads.row(index);
            let Some(stacks) = row.offcpu_stacks.as_deref() else {
                continue;
            };
            let process = match row.pid {
                Some(pid) => format!("{}-{pid}", frame(processes.get(&pid).unwrap_or(&"?"))),
                None => "?".to_string(),
            };
            let thread = format!("{}-{}", frame(&row.comm), row.tid);
            for stack in stacks.iter().filter(|stack| stack.ns > 0) {
                let mut line = format!("{process};{thread};[{}]", stack.state);
                for shown in stack.user.iter().rev().chain(stack.kernel.iter().rev()) {
                    line.push(';');
                    line.push_str(&frame(function_of(shown)));
                }
                *self.ns.entry(line).or_default() += stack.ns;
            }
        }
    }

    /// The lines, each with its value.
    pub fn lines(&self) -> impl Iterator<Item = String> + '_ {
        self.ns.iter().map(|(stack, ns)| format!("{stack} {ns}"))
    }

    pub fn write(&self, out: &mut dyn Write) -> io::Result<()> {
        for line in self.lines() {
            writeln!(out, "{line}")?;
        }
        Ok(())
    }
}

/// The function of a frame as the report shows it (`name+0xoff (file:line)
/// [module]`); for an address no symbol names, the module in brackets; a
/// note (`[...]`) as it is.
pub fn function_of(shown: &str) -> &str {
    if shown.starts_with('[') {
        return shown;
    }
    let (code, module) = match shown.rfind(" [") {
        Some(at) if shown.ends_with(']') => (&shown[..at], &shown[at + 1..]),
        _ => (shown, "[unknown]"),
    };
    let code = match code.rfind(" (") {
        Some(at) if code.ends_with(')') => &code[..at],
        _ => code,
    };
    let is_hex = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit());
    if code.strip_prefix("0x").is_some_and(is_hex) {
        return module;
    }
    match code.rfind("+0x") {
        Some(at) if is_hex(&code[at + 3..]) && at > 0 => &code[..at],
        _ => code,
    }
}

/// `text` as one frame: `;` separates frames.
fn frame(text: &str) -> String {
    text.replace(';', ":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_become_their_function() {
        for (shown, function) in [
            ("anon_pipe_read+0x393 [kernel]", "anon_pipe_read"),
            ("nf_hook_slow+0x4a [nf_tables]", "nf_hook_slow"),
            (
                "kd_pipe_reader+0x13 (pipe_wait.c:12) [/tmp/pipe_wait]",
                "kd_pipe_reader",
            ),
            (
                "<alloc::vec::Vec<T> as Drop>::drop+0x1c [/usr/bin/app]",
                "<alloc::vec::Vec<T> as Drop>::drop",
            ),
            (
                "(anonymous namespace)::f(int)+0x3 (a.cc:3) [/usr/bin/b]",
                "(anonymous namespace)::f(int)",
            ),
            ("0x7f12a0 [/usr/lib/libc.so.6]", "[/usr/lib/libc.so.6]"),
            ("0xffffffff8100 [kernel]", "[kernel]"),
            (
                "[off the CPU when the window opened: where is not known]",
                "[off the CPU when the window opened: where is not known]",
            ),
        ] {
            assert_eq!(function_of(shown), function, "{shown}");
        }
        assert_eq!(frame("f<[u8; 4]>"), "f<[u8: 4]>");
    }
}
