//! Makes untrusted text from the target (thread names) safe to print: a
//! thread can name itself with terminal escape sequences, bidi overrides
//! or line separators.

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Decodes `raw` (up to its first NUL) and escapes everything that is not a
/// printable character: invalid UTF-8 and ASCII controls as `\xNN`; other
/// controls (Cc), format characters (Cf), line and paragraph separators
/// (Zl, Zp) and unassigned code points (Cn, which a newer terminal may
/// treat as any of those) as `\u{NNNN}`; and the backslash itself.
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
    } else if is_unprintable(c) {
        out.push_str(&format!("\\u{{{:04x}}}", c as u32));
    } else {
        out.push(c);
    }
}

fn is_unprintable(c: char) -> bool {
    matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
            | GeneralCategory::Unassigned
    )
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
    fn escapes_every_format_character_and_separator() {
        // Arabic letter mark, line and paragraph separators, a tag
        // character, soft hyphen, an unassigned code point.
        for (c, escaped) in [
            ('\u{061c}', "\\u{061c}"),
            ('\u{2028}', "\\u{2028}"),
            ('\u{2029}', "\\u{2029}"),
            ('\u{e0041}', "\\u{e0041}"),
            ('\u{00ad}', "\\u{00ad}"),
            ('\u{0378}', "\\u{0378}"),
        ] {
            let name = format!("a{c}b");
            assert_eq!(sanitize(name.as_bytes()), format!("a{escaped}b"));
        }
        // Printable text of any script stays.
        assert_eq!(sanitize("日本語 ميزان".as_bytes()), "日本語 ميزان");
    }

    #[test]
    fn escapes_invalid_utf8_and_backslash() {
        assert_eq!(sanitize(b"ab\xff\xfecd"), "ab\\xff\\xfecd");
        assert_eq!(sanitize(b"a\\x41"), "a\\\\x41");
    }
}
