//! Makes untrusted text from the target (thread names) safe to print: a
//! thread can name itself with terminal escape sequences or bidi overrides.

/// Decodes `raw` (up to its first NUL) and escapes everything that is not a
/// printable character: invalid UTF-8 and ASCII controls as `\xNN`, other
/// control and format characters as `\u{NNNN}`, and the backslash itself.
pub fn sanitize(raw: &[u8]) -> String {
    let raw = raw.split(|&b| b == 0).next().unwrap_or_default();
    let mut out = String::with_capacity(raw.len());
    for chunk in raw.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_char(&mut out, c);
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

fn push_char(out: &mut String, c: char) {
    if c == '\\' {
        out.push_str("\\\\");
    } else if c.is_ascii_control() {
        out.push_str(&format!("\\x{:02x}", c as u32));
    } else if c.is_control() || is_format_char(c) {
        out.push_str(&format!("\\u{{{:04x}}}", c as u32));
    } else {
        out.push(c);
    }
}

/// Invisible characters that change how the rest of a line is shown
/// (bidi controls, zero-width joiners, byte order mark).
fn is_format_char(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn plain_names_are_unchanged() {
        assert_eq!(sanitize(b"worker-1"), "worker-1");
        assert_eq!(sanitize("tâche".as_bytes()), "tâche");
    }

    #[test]
    fn stops_at_nul() {
        assert_eq!(sanitize(b"java\0\0\0garbage"), "java");
    }

    #[test]
    fn escapes_terminal_controls() {
        assert_eq!(sanitize(b"\x1b[31mred\x07"), "\\x1b[31mred\\x07");
        assert_eq!(sanitize(b"a\nb\tc\x7f"), "a\\x0ab\\x09c\\x7f");
    }

    #[test]
    fn escapes_c1_controls_and_bidi_overrides() {
        assert_eq!(sanitize("a\u{9b}b".as_bytes()), "a\\u{009b}b");
        assert_eq!(sanitize("x\u{202e}y".as_bytes()), "x\\u{202e}y");
    }

    #[test]
    fn escapes_invalid_utf8_and_backslash() {
        assert_eq!(sanitize(b"ab\xff\xfecd"), "ab\\xff\\xfecd");
        assert_eq!(sanitize(b"a\\x41"), "a\\\\x41");
    }
}
