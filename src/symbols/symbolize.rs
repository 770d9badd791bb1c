//! Stacks of slow calls (--syscall-events) as function names, files and
//! lines: kernel frames from kallsyms, user frames from the target's ELF
//! files and their DWARF, else their symbol table (blazesym), in the
//! address space each call was made in (address_space). The files are read
//! once the window has closed, each distinct stack once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;

use blazesym::symbolize::source::{Elf, Kernel, Source};
use blazesym::symbolize::{Input, Sym, Symbolized, Symbolizer};
use serde::{Deserialize, Serialize};

use crate::kernel::records::{
    cut_reason, Cut, KernelStack, SlowCall, UserStack, LEFT_THE_STACK, NO_STACK,
};
use crate::model::offcpu::{LeftWith, StackNames};
use crate::sanitize::sanitize;
use crate::symbols::address_space::{AddressSpaces, FileToRead, NOT_MAPPED};

/// A slow call with its stacks, innermost frame first; calls with the
/// same stack share it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolizedCall {
    pub call: SlowCall,
    pub kernel_stack: Rc<[String]>,
    pub user_stack: Rc<[String]>,
    /// Why the user stack ends before its outermost frame, if it does.
    pub user_stack_cut: Option<&'static str>,
}

/// Frames, and why the walk was cut short if it was.
type Stack = (Rc<[String]>, Option<&'static str>);

/// Names stacks, each distinct one once: kernel stacks by id in the
/// kernel's stack map (read by `stack`), user stacks by their addresses in
/// the address space they were taken in. `symbolizer` keeps the files it
/// has read, from one window to the next. Or, replaying a recording, from
/// the names it kept (`recorded`).
pub struct StackNamer<'a> {
    live: Option<Live<'a>>,
    table: NameTable,
}

/// Where a live namer finds names: the kernel's stack map, kallsyms and
/// modules, the mapped files.
struct Live<'a> {
    symbolizer: &'a Symbolizer,
    stack: &'a dyn Fn(i32) -> Option<Vec<u64>>,
    spaces: &'a mut AddressSpaces,
    modules: Vec<(u64, u64, String)>,
}

/// The names of the stacks of a window, each distinct stack once: what a
/// recording keeps (the files and the stack map may be gone when it is
/// read).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameTable {
    kernel: HashMap<KernelStack, Rc<[String]>>,
    user: HashMap<(u32, u64, Rc<[u64]>), UserNames>,
}

/// A user stack's frames, and why they end early if they do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct UserNames {
    frames: Rc<[String]>,
    #[serde(with = "cut_reason")]
    cut: Cut,
}

impl<'a> StackNamer<'a> {
    pub fn new(
        symbolizer: &'a Symbolizer,
        stack: &'a dyn Fn(i32) -> Option<Vec<u64>>,
        spaces: &'a mut AddressSpaces,
    ) -> Self {
        let live = Live {
            symbolizer,
            stack,
            spaces,
            modules: kernel_modules(),
        };
        StackNamer {
            live: Some(live),
            table: NameTable::default(),
        }
    }

    /// Names as `table` has them, nothing more.
    pub fn recorded(table: NameTable) -> Self {
        StackNamer { live: None, table }
    }

    /// The names given so far.
    pub fn into_table(self) -> NameTable {
        self.table
    }

    /// A kernel stack's frames.
    pub fn kernel(&mut self, kernel_stack: &KernelStack) -> Rc<[String]> {
        if let Some(frames) = self.table.kernel.get(kernel_stack) {
            return Rc::clone(frames);
        }
        let Some(live) = self.live.as_ref() else {
            return not_recorded();
        };
        let (symbolizer, modules) = (live.symbolizer, &live.modules);
        let frames: Rc<[String]> = match kernel_stack {
            KernelStack::Id(id) => {
                frames_of(*id, &live.stack, |addresses| {
                    kernel_frames(symbolizer, modules, addresses)
                })
                .0
            }
            KernelStack::Frames(addresses) if addresses.is_empty() => {
                Rc::from(["[stack not recorded: the stack could not be read]".to_string()])
            }
            KernelStack::Frames(addresses) => kernel_frames(symbolizer, modules, addresses).into(),
        };
        self.table
            .kernel
            .insert(kernel_stack.clone(), Rc::clone(&frames));
        frames
    }

    /// A user stack's frames, taken in address space `space`, and why it
    /// ends early if it does.
    pub fn user(&mut self, space: (u32, u64), user_stack: &UserStack) -> Stack {
        let (addresses, cut) = match user_stack {
            UserStack::NotTaken => return (Rc::from([]), None),
            // The intake unwinds each copy as it arrives.
            UserStack::Copied(_) => {
                return (Rc::from(["[user stack not unwound]".to_string()]), None)
            }
            UserStack::Unwound { addresses, cut } => (addresses, *cut),
        };
        let key = (space.0, space.1, Rc::clone(addresses));
        if let Some(names) = self.table.user.get(&key) {
            return (Rc::clone(&names.frames), names.cut);
        }
        let Some(live) = self.live.as_mut() else {
            return (not_recorded(), None);
        };
        let (frames, left) = user_frames(live.symbolizer, live.spaces, space, addresses);
        let names = UserNames {
            frames: frames.into(),
            cut: left.or(cut),
        };
        let stack = (Rc::clone(&names.frames), names.cut);
        self.table.user.insert(key, names);
        stack
    }

    /// The slow calls with their stacks by name.
    pub fn calls(&mut self, calls: Vec<SlowCall>) -> Vec<SymbolizedCall> {
        calls
            .into_iter()
            .map(|call| {
                let kernel_stack = self.kernel(&KernelStack::Id(call.kernel_stack));
                let (user_stack, user_stack_cut) =
                    self.user((call.pid, call.address_space), &call.user_stack);
                SymbolizedCall {
                    call,
                    kernel_stack,
                    user_stack,
                    user_stack_cut,
                }
            })
            .collect()
    }

    /// Names the stacks threads left their CPUs with (--off-cpu-stacks).
    pub fn offcpu<'s>(&mut self, stacks: impl Iterator<Item = &'s Rc<LeftWith>>) {
        for left in stacks {
            if left.names.get().is_none() {
                let kernel = self.kernel(&left.kernel_stack);
                let (user, user_cut) = self.user(left.space, &left.user_stack);
                let _ = left.names.set(Rc::new(StackNames {
                    kernel,
                    user,
                    user_cut,
                }));
            }
        }
    }
}

/// A stack a recording has no names for (it cannot be, unless the file
/// was made by another version).
fn not_recorded() -> Rc<[String]> {
    Rc::from(["[stack not named in the recording]".to_string()])
}

/// The frames of kernel stack `id`, or why there are none.
fn frames_of(
    id: i32,
    stack: &impl Fn(i32) -> Option<Vec<u64>>,
    symbolize: impl FnOnce(&[u64]) -> Vec<String>,
) -> Stack {
    let frames = match id {
        NO_STACK => Vec::new(),
        id if id < 0 => vec![format!("[stack not recorded: {}]", why_not_recorded(-id))],
        id => match stack(id) {
            Some(addresses) => symbolize(&addresses),
            None => vec!["[stack not found in the stack map]".to_string()],
        },
    };
    (frames.into(), None)
}

/// What bpf_get_stackid()'s error `errno` means here.
fn why_not_recorded(errno: i32) -> String {
    match nix::errno::Errno::from_raw(errno) {
        nix::errno::Errno::EEXIST | nix::errno::Errno::ENOMEM => {
            "the stack map was full or another stack held its slot: raise --stack-trace-size"
                .to_string()
        }
        nix::errno::Errno::EFAULT => "the stack could not be read".to_string(),
        other => other.desc().to_string(),
    }
}

/// The addresses to look up: all but the innermost frame are return
/// addresses, and the call they return from is the byte before.
fn call_sites(addresses: &[u64]) -> Vec<u64> {
    addresses
        .iter()
        .enumerate()
        .map(|(i, &a)| if i == 0 { a } else { a.saturating_sub(1) })
        .collect()
}

/// `function+0xoff [kernel]`, `[module]` for a module's.
fn kernel_frames(
    symbolizer: &Symbolizer,
    modules: &[(u64, u64, String)],
    addresses: &[u64],
) -> Vec<String> {
    let sites = call_sites(addresses);
    let source = Source::Kernel(Kernel::default());
    let symbols = symbolizer
        .symbolize(&source, Input::AbsAddr(&sites))
        .unwrap_or_default();
    let name = |i: usize| match symbols.get(i) {
        Some(Symbolized::Sym(sym)) => Some(sym.name.as_ref()),
        _ => None,
    };
    // The innermost frames are the BPF program that took the stack.
    let tracer_frames = (0..addresses.len())
        .take_while(|&i| name(i).is_some_and(is_tracer_frame))
        .count();
    addresses
        .iter()
        .enumerate()
        .skip(tracer_frames)
        .map(|(i, &address)| {
            let module = modules
                .iter()
                .find(|(base, size, _)| (*base..base + size).contains(&address))
                .map_or("kernel", |(_, _, name)| name.as_str());
            match symbols.get(i) {
                Some(Symbolized::Sym(sym)) => format!(
                    "{}+{:#x} [{module}]",
                    sanitize(sym.name.as_bytes()),
                    sym.offset + usize::from(i > 0)
                ),
                _ => format!("{address:#x} [{module}]"),
            }
        })
        .collect()
}

/// Frames of the BPF program and of the tracepoint that ran it.
fn is_tracer_frame(name: &str) -> bool {
    [
        "bpf_prog_",
        "bpf_trace_run",
        "__bpf_trace_",
        "__traceiter_",
        "bpf_get_stackid",
    ]
    .iter()
    .any(|prefix| name.starts_with(prefix))
}

/// `function+0xoff (file:line) [path]`; a frame with no symbol shows its
/// address and the mapping it falls in. A return address outside the
/// process's code means a frame-pointer step of the walk read something
/// else (a function with neither call frame information nor a frame
/// pointer): the frames stop there, and the stack says why.
fn user_frames(
    symbolizer: &Symbolizer,
    spaces: &mut AddressSpaces,
    (pid, id): (u32, u64),
    addresses: &[u64],
) -> (Vec<String>, Option<&'static str>) {
    let mut frames = Vec::with_capacity(addresses.len());
    for (i, (&address, site)) in addresses.iter().zip(call_sites(addresses)).enumerate() {
        let mapping = match spaces.mapping(pid, id, site) {
            Ok(mapping) if i > 0 && !mapping.executable => return (frames, Some(LEFT_THE_STACK)),
            Ok(mapping) => mapping.clone(),
            Err(NOT_MAPPED) if i > 0 => return (frames, Some(LEFT_THE_STACK)),
            Err(why) => {
                frames.push(format!("{address:#x} [{why}]"));
                continue;
            }
        };
        let shown = if mapping.name.is_empty() {
            "anonymous".to_string()
        } else {
            sanitize(mapping.name.as_bytes())
        };
        let offset = site - mapping.start + mapping.offset;
        let symbol = match spaces.file_of(pid, &mapping) {
            FileToRead::Path(file) => symbol_at(symbolizer, file, offset),
            FileToRead::Not(why) => {
                frames.push(format!("{address:#x} [{shown}: {why}]"));
                continue;
            }
            FileToRead::Nothing => None,
        };
        frames.push(match symbol {
            Some(sym) => {
                let line = sym
                    .code_info
                    .as_ref()
                    .map(|code| {
                        let file = sanitize(code.file.as_encoded_bytes());
                        match code.line {
                            Some(line) => format!(" ({file}:{line})"),
                            None => format!(" ({file})"),
                        }
                    })
                    .unwrap_or_default();
                format!(
                    "{}+{:#x}{line} [{shown}]",
                    sanitize(sym.name.as_bytes()),
                    sym.offset + usize::from(i > 0)
                )
            }
            None => format!("{address:#x} [{shown}]"),
        });
    }
    (frames, None)
}

/// The symbol at `offset` of ELF file `file`: from its DWARF (file and
/// line too), else, where that is missing or cannot be read, from its
/// symbol table.
fn symbol_at(symbolizer: &Symbolizer, file: PathBuf, offset: u64) -> Option<Sym<'static>> {
    let lookup = |debug_syms: bool| {
        let mut elf = Elf::new(&file);
        elf.debug_syms = debug_syms;
        match symbolizer
            .symbolize_single(&Source::Elf(elf), Input::FileOffset(offset))
            .ok()?
        {
            Symbolized::Sym(sym) if !is_mapping_symbol(&sym.name) => Some(sym.into_owned()),
            _ => None,
        }
    };
    lookup(true).or_else(|| lookup(false))
}

/// An Arm ELF mapping symbol (`$x`, `$d.12`...): it marks where code or
/// data starts, and names no function.
fn is_mapping_symbol(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next() == Some('$')
        && matches!(chars.next(), Some('x' | 'd' | 'a' | 't'))
        && matches!(chars.next(), None | Some('.'))
}

/// (base, size, name) of each kernel module, from /proc/modules.
fn kernel_modules() -> Vec<(u64, u64, String)> {
    let text = std::fs::read_to_string("/proc/modules").unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let size = fields.get(1)?.parse().ok()?;
            let base = u64::from_str_radix(fields.get(5)?.trim_start_matches("0x"), 16).ok()?;
            Some((base, size, fields[0].to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tracers_own_frames_are_left_out() {
        assert!(is_tracer_frame("bpf_prog_3aef7913da4e79a7_sched_switch"));
        assert!(is_tracer_frame("bpf_trace_run4"));
        assert!(!is_tracer_frame("__schedule"));
    }

    #[test]
    fn arm_mapping_symbols_name_no_function() {
        for name in ["$x", "$d", "$x.12", "$t"] {
            assert!(is_mapping_symbol(name), "{name}");
        }
        for name in ["$xor", "start", "$", "x$"] {
            assert!(!is_mapping_symbol(name), "{name}");
        }
    }

    #[test]
    fn return_addresses_are_looked_up_at_their_call() {
        assert_eq!(call_sites(&[100, 200, 300]), vec![100, 199, 299]);
    }

    #[test]
    fn this_process_is_symbolized() {
        let mut spaces = AddressSpaces::new(Box::new(|_| Some(1)));
        let pid = std::process::id();
        spaces.note(pid, 1);
        let here = this_process_is_symbolized as fn() as usize as u64;
        let (frames, cut) = user_frames(&Symbolizer::new(), &mut spaces, (pid, 1), &[here]);
        assert!(
            frames[0].contains("this_process_is_symbolized+0x0"),
            "{frames:?}"
        );
        assert_eq!(cut, None);
        let (gone, _) = user_frames(&Symbolizer::new(), &mut spaces, (u32::MAX, 1), &[here]);
        assert_eq!(
            gone,
            [format!(
                "{here:#x} [the process exited or exec'd before its memory map was read]"
            )]
        );
    }

    #[test]
    fn a_walk_that_leaves_the_code_is_cut_there() {
        let mut spaces = AddressSpaces::new(Box::new(|_| Some(1)));
        let pid = std::process::id();
        spaces.note(pid, 1);
        let here = a_walk_that_leaves_the_code_is_cut_there as fn() as usize as u64;
        let heap = Box::new(0u64);
        let data = std::ptr::from_ref(heap.as_ref()) as u64;
        // A return address in data, then ASCII text: neither is code.
        for junk in [data + 1, 0x7469_7728_206c_6c6f] {
            let (frames, cut) = user_frames(
                &Symbolizer::new(),
                &mut spaces,
                (pid, 1),
                &[here, here + 1, junk, here],
            );
            assert_eq!(frames.len(), 2, "{frames:?}");
            assert_eq!(cut, Some(LEFT_THE_STACK));
        }
    }

    #[test]
    fn unrecorded_stacks_say_why() {
        let none = |_: i32| None;
        let nothing = |_: &[u64]| Vec::new();
        assert!(frames_of(NO_STACK, &none, nothing).0.is_empty());
        assert_eq!(
            *frames_of(-17, &none, nothing).0,
            ["[stack not recorded: the stack map was full or another stack held its slot: raise --stack-trace-size]"]
        );
        assert_eq!(
            *frames_of(3, &none, nothing).0,
            ["[stack not found in the stack map]"]
        );
    }
}
