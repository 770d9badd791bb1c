//! A file that replaces another once it is complete, and leaves nothing
//! behind otherwise, at any moment: an anonymous file (O_TMPFILE) in the
//! destination's directory, given a name only when it is put in place.
//! Where the file system has no O_TMPFILE, a hidden named file is used,
//! removed on every way out but a kill (SIGKILL).

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, renameat, AtFlags, OFlag, AT_FDCWD};
use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow};
use nix::sys::stat::Mode;
use nix::unistd::{linkat, unlinkat, UnlinkatFlags};

/// As a new file would be, less the umask.
const NEW_FILE_MODE: Mode = Mode::from_bits_truncate(0o666);

#[derive(Debug)]
pub struct Replacement {
    /// The directory, held from the start: the report goes where the
    /// destination was named, even if the path is changed meanwhile.
    dir: OwnedFd,
    name: PathBuf,
    file: File,
    /// The fallback's name, in `dir`, while it has one.
    named: Option<PathBuf>,
}

impl Replacement {
    /// An empty file to become `path` (in `dir`, its directory).
    pub fn create(dir: &Path, name: &Path) -> io::Result<Self> {
        let dir = openat(
            AT_FDCWD,
            dir,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let flags = OFlag::O_WRONLY | OFlag::O_CLOEXEC;
        let (file, named) = match openat(&dir, ".", flags | OFlag::O_TMPFILE, NEW_FILE_MODE) {
            Ok(fd) => (fd, None),
            Err(Errno::EOPNOTSUPP | Errno::EISDIR | Errno::EINVAL) => {
                let temp = temp_name(name);
                let fd = openat(
                    &dir,
                    &temp,
                    flags | OFlag::O_CREAT | OFlag::O_EXCL,
                    NEW_FILE_MODE,
                )?;
                (fd, Some(temp))
            }
            Err(err) => return Err(err.into()),
        };
        Ok(Replacement {
            dir,
            name: name.to_path_buf(),
            file: File::from(file),
            named,
        })
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    /// Puts the file in place of the destination, atomically. The
    /// anonymous file is linked under a temporary name first (a link
    /// cannot replace a file), with signals blocked so that none ends the
    /// process between the two steps.
    pub fn commit(mut self) -> io::Result<()> {
        let blocked = SigSet::all();
        let mut previous = SigSet::empty();
        pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&blocked), Some(&mut previous))?;
        let placed = self.put_in_place();
        pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&previous), None)?;
        placed
    }

    fn put_in_place(&mut self) -> io::Result<()> {
        let temp = match self.named.take() {
            Some(temp) => temp,
            None => {
                let temp = temp_name(&self.name);
                let fd = format!("/proc/self/fd/{}", self.file.as_raw_fd());
                linkat(
                    AT_FDCWD,
                    fd.as_str(),
                    &self.dir,
                    &temp,
                    AtFlags::AT_SYMLINK_FOLLOW,
                )?;
                temp
            }
        };
        renameat(&self.dir, &temp, &self.dir, &self.name).inspect_err(|_| {
            let _ = unlinkat(&self.dir, &temp, UnlinkatFlags::NoRemoveDir);
        })?;
        Ok(())
    }
}

impl Drop for Replacement {
    /// Not committed: the fallback's named file goes (the anonymous one
    /// goes with its descriptor).
    fn drop(&mut self) {
        if let Some(temp) = self.named.take() {
            let _ = unlinkat(self.dir.as_fd(), &temp, UnlinkatFlags::NoRemoveDir);
        }
    }
}

/// A hidden name beside `name`, this process's.
fn temp_name(name: &Path) -> PathBuf {
    PathBuf::from(format!(
        ".{}.{}.kernel-delay",
        name.to_string_lossy(),
        std::process::id()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    /// How many names `dir` holds, hidden ones too.
    fn names_in(dir: &Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    #[test]
    fn nothing_is_seen_until_it_is_committed_and_nothing_is_left_if_not() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("r.json"), "OLD").unwrap();
        let replacement = Replacement::create(dir.path(), Path::new("r.json")).unwrap();
        writeln!(replacement.file(), "NEW").unwrap();
        assert_eq!(names_in(dir.path()), 1, "anonymous until committed");
        drop(replacement); // a failed run
        assert_eq!(names_in(dir.path()), 1);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("r.json")).unwrap(),
            "OLD"
        );

        let replacement = Replacement::create(dir.path(), Path::new("r.json")).unwrap();
        write!(replacement.file(), "NEW").unwrap();
        replacement.commit().unwrap();
        assert_eq!(names_in(dir.path()), 1);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("r.json")).unwrap(),
            "NEW"
        );
        let mode = std::fs::metadata(dir.path().join("r.json"))
            .unwrap()
            .permissions()
            .mode();
        let umask = nix::sys::stat::umask(Mode::empty());
        nix::sys::stat::umask(umask);
        assert_eq!(
            mode & 0o777,
            0o666 & !umask.bits(),
            "as a new file would be"
        );
    }
}
