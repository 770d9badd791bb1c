//! libbpf's own error codes (4000 and up, libbpf.h's enum libbpf_errno)
//! reach us as OS errors, which the standard library can only print with
//! the C library's words for an unknown code: glibc's "Unknown error 4001
//! (os error 4001)", musl's (the static binary's) "No error information
//! (os error 4001)". Here they get libbpf's words.

/// libbpf's words for LIBBPF_ERRNO__LIBELF (4000) onwards, in order.
const WORDS: [&str; 14] = [
    "something is wrong in libelf",
    "not a valid ELF or BPF object file",
    "incorrect or no 'version' section",
    "endian mismatch",
    "internal error in libbpf",
    "relocation failed",
    "loading a program failed for an unknown reason",
    "the kernel's verifier refused a program",
    "a program is too big",
    "incorrect kernel version",
    "the kernel does not support this program type",
    "wrong pid in a netlink message",
    "invalid netlink sequence",
    "netlink parsing error",
];
const FIRST: u32 = 4000;

/// What comes before the code: glibc's strerror() names it ("Unknown error
/// N", then the standard library's " (os error N)" or not); musl's does not,
/// and only the standard library's " (os error N)" gives it.
const GLIBC: &str = "Unknown error ";
const MUSL: &str = "No error information (os error ";

/// `message` with every unknown error of a libbpf code, as glibc or musl
/// names it, in words ("..., libbpf error N").
pub fn in_words(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some((at, before)) = [GLIBC, MUSL]
        .into_iter()
        .filter_map(|before| Some((rest.find(before)?, before)))
        .min()
    {
        out.push_str(&rest[..at]);
        let tail = &rest[at + before.len()..];
        let digits = tail.len() - tail.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let code = tail[..digits].parse::<u32>().ok();
        let words = code.and_then(|code| WORDS.get(code.checked_sub(FIRST)? as usize));
        // A libbpf code, and the text after the phrase: glibc's may go on
        // with the standard library's " (os error N)", musl's is closed.
        let known = code.zip(words).and_then(|(code, words)| {
            let next = &tail[digits..];
            let after = if before == GLIBC {
                let os_error = format!(" (os error {code})");
                next.strip_prefix(os_error.as_str()).unwrap_or(next)
            } else {
                next.strip_prefix(')')?
            };
            Some((code, words, after))
        });
        match known {
            Some((code, words, after)) => {
                out.push_str(&format!("{words} (libbpf error {code})"));
                rest = after;
            }
            None => {
                out.push_str(before);
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libbpf_codes_in_words() {
        assert_eq!(
            in_words("failed to attach uprobe: Unknown error 4001 (os error 4001)"),
            "failed to attach uprobe: not a valid ELF or BPF object file (libbpf error 4001)"
        );
        assert_eq!(
            in_words(
                "a: No error information (os error 4007); b: No error information (os error 4013)"
            ),
            "a: the kernel's verifier refused a program (libbpf error 4007); \
             b: netlink parsing error (libbpf error 4013)"
        );
        assert_eq!(
            in_words("a: Unknown error 4007 (os error 4007); b: Unknown error 4013"),
            "a: the kernel's verifier refused a program (libbpf error 4007); \
             b: netlink parsing error (libbpf error 4013)"
        );
    }

    #[test]
    fn other_text_is_left_alone() {
        for text in [
            "No such file or directory (os error 2)",
            "Unknown error 3999 (os error 3999)",
            "Unknown error 4014 (os error 4014)",
            "Unknown error x",
            "Unknown error ",
            "No error information (os error 3999)",
            "No error information (os error 4001",
            "No error information (os error x)",
            "No error information",
        ] {
            assert_eq!(in_words(text), text);
        }
        let io = std::io::Error::from_raw_os_error(4001).to_string();
        assert_eq!(
            in_words(&io),
            "not a valid ELF or BPF object file (libbpf error 4001)"
        );
    }
}
