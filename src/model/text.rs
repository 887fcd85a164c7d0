//! Text from outside (subjects, SANs, server banners, API error bodies, file names) made safe
//! for a terminal: control characters and bidirectional overrides never reach the screen.

use std::borrow::Cow;

/// True for characters that must not reach a terminal: C0 and C1 controls, DEL, and the
/// Unicode bidirectional embedding, override and isolate controls (which reorder what
/// follows them on screen).
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The text with every unsafe character replaced: line breaks and tabs by a space, the
/// others by U+FFFD. Borrows when there is nothing to replace.
pub fn clean(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| match c {
                '\n' | '\r' | '\t' => ' ',
                c if is_unsafe(c) => '\u{FFFD}',
                c => c,
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_overrides_are_replaced_and_clean_text_is_borrowed() {
        assert!(matches!(clean("api.example.com"), Cow::Borrowed(_)));
        assert_eq!(
            clean("evil\u{1b}]52;c;aGk=\u{7}\u{1b}[2J.com"),
            "evil\u{FFFD}]52;c;aGk=\u{FFFD}\u{FFFD}[2J.com"
        );
        assert_eq!(clean("a\r\nb\tc"), "a  b c");
        assert_eq!(clean("x\u{202E}moc.y"), "x\u{FFFD}moc.y");
        assert_eq!(clean("\u{9b}31m"), "\u{FFFD}31m", "C1 CSI");
        assert_eq!(clean("日本語 ✔"), "日本語 ✔");
    }
}
