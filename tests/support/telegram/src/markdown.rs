//! Telegram's MarkdownV2 reading, so a client's escaping mistakes fail here as they fail in production.
//!
//! This follows TDLib's `parse_markdown_v2` (which the Bot API server runs): a backslash escapes any ASCII character;
//! outside code, every one of ``_*[]()~`>#+-=|{}.!`` must be escaped unless it opens or closes an entity (`*bold*`,
//! `_italic_`, `__underline__`, `~strikethrough~`, `||spoiler||`, `` `code` ``, ```` ```pre``` ````,
//! `[text](url)`, `![emoji](tg://emoji?id=…)`); inside code and pre only `` ` `` must be. The refusals carry TDLib's
//! words, which clients match on (teloxide reads `can't parse entities` as `ApiError::CantParseEntities`).
//!
//! Simplified, all on the lenient side so the fake never refuses what Telegram takes: a `>` that starts a line is
//! taken as a block quote marker wherever it appears (expandable quotes, `**>…||`, are not understood and are refused),
//! and URLs are not checked.

/// The characters MarkdownV2 reserves for markup.
const RESERVED: &[u8] = b"_*[]()~`>#+-=|{}.!";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Bold,
    Italic,
    Underline,
    Strikethrough,
    Spoiler,
    Code,
    Pre,
    PreCode,
    TextUrl,
    CustomEmoji,
}

impl Kind {
    /// As TDLib prints the entity type in "Can't find end of … entity".
    fn name(self) -> &'static str {
        match self {
            Kind::Bold => "Bold",
            Kind::Italic => "Italic",
            Kind::Underline => "Underline",
            Kind::Strikethrough => "Strikethrough",
            Kind::Spoiler => "Spoiler",
            Kind::Code => "Code",
            Kind::Pre => "Pre",
            Kind::PreCode => "PreCode",
            Kind::TextUrl => "TextUrl",
            Kind::CustomEmoji => "CustomEmoji",
        }
    }

    fn is_code(self) -> bool {
        matches!(self, Kind::Code | Kind::Pre | Kind::PreCode)
    }
}

/// An entity opened and not yet closed, with the byte offset of its opening mark for the error.
struct Open {
    kind: Kind,
    at: usize,
}

/// The text a MarkdownV2 message shows (markup and escapes removed), or why Telegram refuses it: the part of the
/// description after `Bad Request: can't parse entities: `.
pub(crate) fn parse(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    // TDLib reads past the end as NUL; so does this, which keeps the look-aheads short.
    let at = |i: usize| bytes.get(i).copied().unwrap_or(0);
    let escapable = |b: u8| (1..=126).contains(&b);
    let mut shown: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut open: Vec<Open> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'\\' && escapable(at(i + 1)) {
            shown.push(at(i + 1));
            i += 2;
            continue;
        }
        let in_code = open.last().is_some_and(|o| o.kind.is_code());
        let reserved = if in_code { c == b'`' } else { RESERVED.contains(&c) };
        if !reserved {
            // Bytes of a multi-byte character are never reserved, so they are copied whole.
            shown.push(c);
            i += 1;
            continue;
        }
        if c == b'>' && (i == 0 || bytes[i - 1] == b'\n') {
            // A block quote line: the marker is markup, the line is text.
            i += 1;
            continue;
        }
        let closes = match open.last().map(|o| o.kind) {
            None => false,
            Some(Kind::Bold) => c == b'*',
            Some(Kind::Italic) => c == b'_' && at(i + 1) != b'_',
            Some(Kind::Underline) => c == b'_' && at(i + 1) == b'_',
            Some(Kind::Strikethrough) => c == b'~',
            Some(Kind::Spoiler) => c == b'|' && at(i + 1) == b'|',
            Some(Kind::Code) => c == b'`',
            Some(Kind::Pre | Kind::PreCode) => c == b'`' && at(i + 1) == b'`' && at(i + 2) == b'`',
            Some(Kind::TextUrl | Kind::CustomEmoji) => c == b']',
        };
        let start = i;
        if !closes {
            let kind = match c {
                b'_' if at(i + 1) == b'_' => Kind::Underline,
                b'_' => Kind::Italic,
                b'*' => Kind::Bold,
                b'~' => Kind::Strikethrough,
                b'|' if at(i + 1) == b'|' => Kind::Spoiler,
                b'[' => Kind::TextUrl,
                b'`' if at(i + 1) == b'`' && at(i + 2) == b'`' => Kind::Pre,
                b'`' => Kind::Code,
                b'!' if at(i + 1) == b'[' => Kind::CustomEmoji,
                _ => return Err(reserved_error(c)),
            };
            i += match kind {
                Kind::Underline | Kind::Spoiler | Kind::CustomEmoji => 2,
                Kind::Pre => 3,
                _ => 1,
            };
            let mut kind = kind;
            if kind == Kind::Pre {
                // ```language\n…```: the language tag and the first line break are not part of the text.
                let mut end = i;
                while end < bytes.len() && !at(end).is_ascii_whitespace() && at(end) != b'`' {
                    end += 1;
                }
                if end != i && end < bytes.len() && at(end) != b'`' {
                    kind = Kind::PreCode;
                    i = end;
                }
                if matches!(at(i), b'\n' | b'\r') {
                    i += if matches!(at(i + 1), b'\n' | b'\r') && at(i) != at(i + 1) {
                        2
                    } else {
                        1
                    };
                }
            }
            open.push(Open { kind, at: start });
            continue;
        }
        let closed = open.pop().map(|o| o.kind);
        match closed {
            Some(Kind::Underline | Kind::Spoiler) => i += 2,
            Some(Kind::Pre | Kind::PreCode) => i += 3,
            Some(kind @ (Kind::TextUrl | Kind::CustomEmoji)) => {
                i += 1;
                if at(i) == b'(' {
                    i += 1;
                    let url_start = i;
                    // In the URL only `)` and `\` need escaping.
                    while i < bytes.len() && bytes[i] != b')' {
                        i += if bytes[i] == b'\\' && escapable(at(i + 1)) {
                            2
                        } else {
                            1
                        };
                    }
                    if i >= bytes.len() {
                        return Err(format!("Can't find end of a URL at byte offset {url_start}"));
                    }
                    i += 1;
                } else if kind == Kind::CustomEmoji {
                    return Err("Custom emoji entity must contain a tg://emoji URL".to_owned());
                }
            }
            _ => i += 1,
        }
    }
    if let Some(unclosed) = open.last() {
        return Err(format!(
            "Can't find end of {} entity at byte offset {}",
            unclosed.kind.name(),
            unclosed.at
        ));
    }
    // Only whole characters and ASCII were copied, so this never replaces anything.
    Ok(String::from_utf8_lossy(&shown).into_owned())
}

fn reserved_error(c: u8) -> String {
    format!(
        "Character '{}' is reserved and must be escaped with the preceding '\\'",
        char::from(c)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_text_and_well_formed_entities_parse_to_what_the_chat_shows() {
        let cases = [
            ("Ticket \\#42 is *open*\\.", "Ticket #42 is open."),
            ("_italic_ __under__ ~gone~ ||secret||", "italic under gone secret"),
            ("*bold _italic inside_ bold*", "bold italic inside bold"),
            ("`a.b(c)` and ```rust\nlet x = 1;```", "a.b(c) and let x = 1;"),
            (
                "see [the order](https://shop.example/o/1?a=b\\)c) now",
                "see the order now",
            ),
            (">quoted line\nnext", "quoted line\nnext"),
            ("Grüße 😀 \\\\ done", "Grüße 😀 \\ done"),
            // A backslash escapes only what follows it; at the end, or before a non-ASCII character, it is text.
            ("ends in \\", "ends in \\"),
            ("\\é", "\\é"),
        ];
        for (markdown, shown) in cases {
            assert_eq!(parse(markdown).as_deref(), Ok(shown), "{markdown}");
        }
    }

    #[test]
    fn unescaped_reserved_characters_are_refused_with_telegrams_words() {
        assert_eq!(
            parse("Your request was received."),
            Err("Character '.' is reserved and must be escaped with the preceding '\\'".to_owned())
        );
        for (markdown, character) in [("#42", '#'), ("a-b", '-'), ("1+1=2", '+'), ("x|y", '|'), ("a > b", '>')] {
            let error = parse(markdown).unwrap_err();
            assert!(
                error.starts_with(&format!("Character '{character}' is reserved")),
                "{markdown}: {error}"
            );
        }
    }

    #[test]
    fn unclosed_entities_and_urls_are_refused() {
        assert_eq!(
            parse("ok *bold"),
            Err("Can't find end of Bold entity at byte offset 3".to_owned())
        );
        // `__` is always underline, as Telegram documents: the last `_` opens another italic.
        assert_eq!(
            parse("_a __b_"),
            Err("Can't find end of Italic entity at byte offset 6".to_owned())
        );
        assert_eq!(
            parse("[x](http://a"),
            Err("Can't find end of a URL at byte offset 4".to_owned())
        );
        assert!(parse("![👍]").unwrap_err().starts_with("Custom emoji entity"));
        assert_eq!(
            parse("```\ncode"),
            Err("Can't find end of Pre entity at byte offset 0".to_owned())
        );
    }
}
