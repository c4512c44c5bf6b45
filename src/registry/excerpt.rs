//! What an error body becomes in a message: the registry's `errors[].message`, or a short excerpt
//! of any other body with HTML and terminal control characters removed.

/// The registry's error text: the `errors[].message` of a JSON error body, or the start of a
/// non-JSON body.
pub(super) fn error_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(envelope) = serde_json::from_slice::<Envelope>(body) {
        let text: Vec<String> = envelope
            .errors
            .iter()
            .map(|e| format!("{} {}", e.code, e.message).trim().to_string())
            .collect();
        if !text.is_empty() {
            return text.join("; ");
        }
    }
    excerpt(body)
}

/// At most this many characters of a body go into an error message.
pub(super) const EXCERPT_CHARS: usize = 200;

/// A short excerpt of a body that is not a JSON error document, safe to print on a terminal:
/// the text of an HTML page without its tags, styles and scripts; no control characters, ANSI
/// escape sequences or bidirectional overrides; whitespace collapsed; cut at 200 characters.
pub(super) fn excerpt(body: &[u8]) -> String {
    // Only the start can show; it also keeps the tag stripping cheap on a hostile page.
    let text = String::from_utf8_lossy(&body[..body.len().min(8 * 1024)]);
    let text = if text.trim_start().starts_with('<') {
        strip_markup(&text)
    } else {
        text.into_owned()
    };
    let mut clean = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI sequences (`ESC [ 31 m`): drop up to and including the final letter.
            if chars.clone().next() == Some('[') {
                for next in chars.by_ref().skip(1) {
                    if next.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        let invisible = c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c.is_whitespace() || invisible {
            if !clean.ends_with(' ') {
                clean.push(' ');
            }
        } else {
            clean.push(c);
        }
    }
    let clean = clean.trim();
    if clean.is_empty() {
        return "(empty body)".into();
    }
    let mut cut: String = clean.chars().take(EXCERPT_CHARS).collect();
    if clean.chars().nth(EXCERPT_CHARS).is_some() {
        cut.push('…');
    }
    cut
}

/// The text of an HTML or XML page: tags removed, `<style>` and `<script>` elements dropped.
pub(super) fn strip_markup(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        out.push(' ');
        let tag = &rest[start + 1..];
        let skipped = ["style", "script"].into_iter().find_map(|element| {
            let opens = tag
                .get(..element.len())
                .is_some_and(|name| name.eq_ignore_ascii_case(element));
            opens.then(|| {
                let closing = format!("</{element}");
                let lower = tag.to_ascii_lowercase();
                lower
                    .find(&closing)
                    .map_or("", |end| &tag[end + closing.len()..])
            })
        });
        let after = skipped.unwrap_or(tag);
        match after.find('>') {
            Some(end) => rest = &after[end + 1..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn error_bodies_are_summarised() {
        assert_eq!(
            error_message(br#"{"errors":[{"code":"DENIED","message":"no"}]}"#),
            "DENIED no"
        );
        assert_eq!(error_message(b"<html>\nBad gateway</html>"), "Bad gateway");
        assert_eq!(error_message(b""), "(empty body)");
        assert_eq!(error_message(b"  \n\t "), "(empty body)");
    }

    #[test]
    pub(super) fn html_and_terminal_tricks_are_sanitised() {
        let page = b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title>\n<STYLE>h1 { color: red }</STYLE><script>alert(1)</script></head><body>\x1b[31m<h1>Oops</h1>\r\n<p>try\x07 later\xe2\x80\xae</p></body></html>";
        assert_eq!(error_message(page), "502 Bad Gateway Oops try later");
        let long = format!("<p>{}</p>", "word ".repeat(500));
        let text = error_message(long.as_bytes());
        assert_eq!(text.chars().count(), EXCERPT_CHARS + 1);
        assert!(text.ends_with('…'));
        assert_eq!(error_message(b"plain <text> stays"), "plain <text> stays");
        assert_eq!(error_message(b"<p>unclosed <b"), "unclosed");
    }
}
