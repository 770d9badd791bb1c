//! User stacks unwound from the copies the programs take (as perf's
//! `--call-graph dwarf` and samply do): each frame's caller found with the
//! call frame information of the code's ELF file (.eh_frame, or
//! .debug_frame where that holds more), by frame pointer where a function
//! has none (framehop).
//! So frames of functions built without frame pointers (libc's system
//! call wrappers, most distributions' binaries) are all there. Done as the
//! copies arrive, in the address space each was taken in: a copy is large,
//! its frames are not.

use std::cell::Cell;
use std::collections::HashMap;
use std::fs::File;
use std::ops::Range;
use std::path::Path;
use std::rc::Rc;

use framehop::{ExplicitModuleSectionInfo, Module, Unwinder};
use object::elf::PF_X;
use object::{Object, ObjectSection, ObjectSegment, ReadCache, SegmentFlags};

use crate::kernel::records::{StackCopy, UserStack, COPY_ENDED, LEFT_THE_STACK, TOO_DEEP};
use crate::symbols::address_space::{AddressSpaces, FileId, FileToRead, Mapping};

#[cfg(target_arch = "aarch64")]
use framehop::aarch64::{
    CacheAarch64 as Cache, UnwindRegsAarch64, UnwinderAarch64 as ArchUnwinder,
};
#[cfg(not(target_arch = "aarch64"))]
use framehop::x86_64::{CacheX86_64 as Cache, UnwindRegsX86_64, UnwinderX86_64 as ArchUnwinder};

/// Frames of a stack at most (as the kernel's stack map keeps).
const MAX_FRAMES: usize = 127;
/// Files whose unwind information is kept, and address spaces whose
/// unwinders are: past either, all are dropped and read again as needed.
const MAX_FILES: usize = 1024;
const MAX_SPACES: usize = 4096;
/// The page size ELF segments are aligned to, at least.
const PAGE: u64 = 4096;

/// A segment the loader maps: its bytes in the file, and the address they
/// are at in the file's own address space.
struct Segment {
    offset: u64,
    size: u64,
    vaddr: u64,
}

/// What the unwinder needs of one ELF file: its loadable segments, to
/// place it, and its call frame information.
struct UnwindInfo {
    /// The PT_LOAD segments of code.
    code_segments: Vec<Segment>,
    text_svma: Option<Range<u64>>,
    got_svma: Option<Range<u64>>,
    eh_frame: Option<(Range<u64>, Rc<[u8]>)>,
    eh_frame_hdr: Option<(Range<u64>, Rc<[u8]>)>,
    debug_frame: Option<Rc<[u8]>>,
}

impl UnwindInfo {
    /// Reads the headers and the frame sections only, not the whole file.
    fn read(path: &Path) -> Option<UnwindInfo> {
        let cache = ReadCache::new(File::open(path).ok()?);
        let elf = object::File::parse(&cache).ok()?;
        let svma = |name: &str| -> Option<Range<u64>> {
            let section = elf.section_by_name(name)?;
            Some(section.address()..section.address() + section.size())
        };
        // .debug_frame may be compressed (zlib or zstd).
        let section = |name: &str| -> Option<(Range<u64>, Rc<[u8]>)> {
            let data = elf.section_by_name(name)?.uncompressed_data().ok()?;
            Some((svma(name)?, Rc::from(data)))
        };
        // The unwinder reads one of the two. Code built without
        // asynchronous unwind tables has its functions in .debug_frame and
        // only the C runtime's in .eh_frame: the larger one is taken.
        let (mut eh_frame, mut eh_frame_hdr) = (section(".eh_frame"), section(".eh_frame_hdr"));
        let debug_frame = section(".debug_frame").map(|(_, data)| data);
        let eh_frame_len = eh_frame.as_ref().map_or(0, |(_, data)| data.len());
        if debug_frame
            .as_ref()
            .is_some_and(|data| data.len() > eh_frame_len)
        {
            (eh_frame, eh_frame_hdr) = (None, None);
        }
        Some(UnwindInfo {
            code_segments: elf
                .segments()
                .filter(|segment| {
                    matches!(segment.flags(), SegmentFlags::Elf { p_flags } if p_flags & PF_X != 0)
                })
                .map(|segment| {
                    let (offset, size) = segment.file_range();
                    Segment {
                        offset,
                        size,
                        vaddr: segment.address(),
                    }
                })
                .collect(),
            // Their addresses only: .text is most of the file.
            text_svma: svma(".text"),
            got_svma: svma(".got"),
            eh_frame,
            eh_frame_hdr,
            debug_frame,
        })
    }

    /// Where the file's addresses land in the process when `mapping` (of
    /// code) maps it: the load bias of a PIE or a library, 0 for an
    /// executable that is not position-independent. The mapping starts at
    /// the page that holds the start of its segment, which may hold the end
    /// of the segment before too (as lld lays files out).
    fn load_bias(&self, mapping: &Mapping) -> Option<u64> {
        let page = |offset: u64| offset & !(PAGE - 1);
        let segment = self.code_segments.iter().find(|segment| {
            (page(segment.offset)..segment.offset + segment.size).contains(&mapping.offset)
        })?;
        // The segment's file offset and address agree modulo the page.
        let svma = (segment.vaddr + mapping.offset).wrapping_sub(segment.offset);
        Some(mapping.start.wrapping_sub(svma))
    }

    /// The module `mapping` (of code) makes of this file.
    fn module(&self, mapping: &Mapping) -> Option<Module<Rc<[u8]>>> {
        let bias = self.load_bias(mapping)?;
        let info = ExplicitModuleSectionInfo {
            base_svma: 0,
            text_svma: self.text_svma.clone(),
            got_svma: self.got_svma.clone(),
            eh_frame_svma: self.eh_frame.as_ref().map(|(svma, _)| svma.clone()),
            eh_frame: self.eh_frame.as_ref().map(|(_, data)| Rc::clone(data)),
            eh_frame_hdr_svma: self.eh_frame_hdr.as_ref().map(|(svma, _)| svma.clone()),
            eh_frame_hdr: self.eh_frame_hdr.as_ref().map(|(_, data)| Rc::clone(data)),
            debug_frame: self.debug_frame.clone(),
            ..ExplicitModuleSectionInfo::default()
        };
        Some(Module::new(
            mapping.name.clone(),
            mapping.start..mapping.end,
            bias,
            info,
        ))
    }
}

/// The unwinder of one address space, and the mappings of code it has a
/// module for (by start address).
struct SpaceUnwinder {
    unwinder: ArchUnwinder<Rc<[u8]>>,
    code: Vec<u64>,
}

pub struct Unwinders {
    /// The bytes each copy was asked to hold: a walk that reads past a
    /// full copy ran out of it.
    copy_bytes: usize,
    files: HashMap<FileId, Option<Rc<UnwindInfo>>>,
    spaces: HashMap<(u32, u64), SpaceUnwinder>,
    cache: Cache,
}

impl Unwinders {
    pub fn new(copy_bytes: usize) -> Self {
        Unwinders {
            copy_bytes,
            files: HashMap::new(),
            spaces: HashMap::new(),
            cache: Cache::new(),
        }
    }

    /// The frames of `copy`, taken in address space `id` of `pid` (noted
    /// in `spaces` already).
    pub fn unwind(
        &mut self,
        spaces: &mut AddressSpaces,
        (pid, id): (u32, u64),
        copy: &StackCopy,
    ) -> UserStack {
        // Built again when the call was made in code mapped since (a
        // library loaded later: finding it reads the map again).
        let current = spaces.mapping(pid, id, copy.ip).map(|m| m.start).ok();
        let known = self.spaces.get(&(pid, id)).is_some_and(|space| {
            current.is_none_or(|start| space.code.binary_search(&start).is_ok())
        });
        if !known {
            if self.spaces.len() >= MAX_SPACES {
                self.spaces.clear();
            }
            let space = self.unwinder(spaces, pid, id);
            self.spaces.insert((pid, id), space);
        }
        let unwinder = &self.spaces[&(pid, id)].unwinder;
        let missed = Cell::new(None);
        let mut read_stack = |address: u64| {
            let word = address
                .checked_sub(copy.start)
                .and_then(|offset| usize::try_from(offset).ok())
                .and_then(|offset| copy.bytes.get(offset..offset.checked_add(8)?))
                .map(|bytes| u64::from_ne_bytes(bytes.try_into().expect("8 bytes")));
            if word.is_none() {
                missed.set(Some(address));
            }
            word.ok_or(())
        };
        let mut frames =
            unwinder.iter_frames(copy.ip, regs(copy), &mut self.cache, &mut read_stack);
        let mut addresses = Vec::new();
        let cut = loop {
            match frames.next() {
                Ok(Some(frame)) if addresses.len() < MAX_FRAMES => addresses.push(frame.address()),
                Ok(Some(_)) => break Some(TOO_DEEP),
                Ok(None) => break None,
                Err(_) => break Some(self.why_stopped(copy, missed.get())),
            }
        };
        UserStack::Unwound {
            addresses: addresses.into(),
            cut,
        }
    }

    /// A read past the end of a full copy ran out of it; any other walk
    /// that stopped left the stack.
    fn why_stopped(&self, copy: &StackCopy, missed: Option<u64>) -> &'static str {
        let end = copy.start + copy.bytes.len() as u64;
        match missed {
            Some(address) if address >= end && copy.bytes.len() >= self.copy_bytes => COPY_ENDED,
            _ => LEFT_THE_STACK,
        }
    }

    /// An unwinder with a module for each mapping of code in the address
    /// space (none when its map could not be read: frame pointers only).
    fn unwinder(&mut self, spaces: &AddressSpaces, pid: u32, id: u64) -> SpaceUnwinder {
        let mut unwinder = ArchUnwinder::new();
        let code: Vec<Mapping> = spaces
            .maps(pid, id)
            .into_iter()
            .flatten()
            .filter(|mapping| mapping.executable)
            .cloned()
            .collect();
        for mapping in &code {
            let FileToRead::Path(path) = spaces.file_of(pid, mapping) else {
                continue;
            };
            if self.files.len() >= MAX_FILES {
                self.files.clear();
            }
            let info = self
                .files
                .entry(mapping.file)
                .or_insert_with(|| UnwindInfo::read(&path).map(Rc::new));
            if let Some(module) = info.as_ref().and_then(|info| info.module(mapping)) {
                unwinder.add_module(module);
            }
        }
        SpaceUnwinder {
            unwinder,
            code: code.iter().map(|mapping| mapping.start).collect(),
        }
    }
}

#[cfg(not(target_arch = "aarch64"))]
fn regs(copy: &StackCopy) -> UnwindRegsX86_64 {
    UnwindRegsX86_64::new(copy.ip, copy.sp, copy.fp)
}

#[cfg(target_arch = "aarch64")]
fn regs(copy: &StackCopy) -> UnwindRegsAarch64 {
    UnwindRegsAarch64::new(copy.lr, copy.sp, copy.fp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbols::address_space::FileId;

    fn code(start: u64, offset: u64) -> Mapping {
        Mapping {
            start,
            end: start + 0x70000,
            offset,
            name: "/bin/x".to_string(),
            executable: true,
            file: FileId { dev: 1, ino: 2 },
        }
    }

    fn info(segments: Vec<Segment>) -> UnwindInfo {
        UnwindInfo {
            code_segments: segments,
            text_svma: None,
            got_svma: None,
            eh_frame: None,
            eh_frame_hdr: None,
            debug_frame: None,
        }
    }

    #[test]
    fn a_segment_that_starts_inside_a_page_is_placed_by_its_own_offset() {
        // lld: the code's file offset and address differ by a page, and
        // its first page holds the end of the read-only segment.
        let pie = info(vec![Segment {
            offset: 0x2b1e0,
            size: 0x6f7b0,
            vaddr: 0x2c1e0,
        }]);
        let start = 0x55e3_ce02_c000;
        assert_eq!(pie.load_bias(&code(start, 0x2b000)), Some(start - 0x2c000));
    }

    #[test]
    fn an_executable_at_its_own_addresses_has_no_bias() {
        let fixed = info(vec![Segment {
            offset: 0x1000,
            size: 0x5000,
            vaddr: 0x401000,
        }]);
        assert_eq!(fixed.load_bias(&code(0x401000, 0x1000)), Some(0));
        assert_eq!(fixed.load_bias(&code(0x401000, 0x9000)), None);
    }
}
