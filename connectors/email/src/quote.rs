//! The part of a reply the customer wrote: quoted history and signatures cut off, so a
//! conversation shows each thing once. The full body is kept beside it; this only
//! decides what is shown.

/// The verbs of lines that introduce the quoted original, by client and language
/// (Gmail: `On Mon, Apr 2, 2012 at 6:26 PM, Megan <m@x> wrote:`; Thunderbird in German:
/// `Am 03.02.26 um 10:15 schrieb Support:`).
const ATTRIBUTION_VERBS: &[&str] = &[
    "wrote",
    "writes",
    "schrieb",
    "a écrit",
    "escribió",
    "scrisse",
    "skrev",
    "schreef",
    "napisał",
    "написал",
    "escreveu",
    "kirjoitti",
    "yazdı",
    "のメッセージ",
    "写道",
    "寫道",
];

/// Whole lines that start the original in Outlook-style clients and forwards.
const SEPARATORS: &[&str] = &[
    "-----original message-----",
    "----- original message -----",
    "-----ursprüngliche nachricht-----",
    "-----message d'origine-----",
    "-----mensaje original-----",
    "---------- forwarded message ---------",
    "________________________________",
];

/// Outlook's header block of the quoted original: `From:` followed within a few lines by
/// `Sent:`/`Date:` (or their German and French names).
const OUTLOOK_FROM: &[&str] = &["from:", "von:", "de :", "de:"];
const OUTLOOK_SENT: &[&str] = &["sent:", "date:", "gesendet:", "envoyé :", "envoyé:", "enviado:"];

/// What the customer wrote in `text`: everything before the first quoted history or
/// signature. Falls back to the whole text when cutting would leave nothing (a mail
/// that is only a forward, or a top-quote with the answer below).
pub fn shown_text(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let cut = first_cut(&lines).unwrap_or(lines.len());
    let shown = lines[..cut].join("\n");
    let shown = shown.trim();
    if shown.is_empty() {
        text.trim().to_owned()
    } else {
        shown.to_owned()
    }
}

fn first_cut(lines: &[&str]) -> Option<usize> {
    for (index, line) in lines.iter().enumerate() {
        let trimmed = line.trim();
        let lower = trimmed.to_lowercase();
        // The signature separator is exactly "-- " (RFC 3676); "--" alone is common too.
        if *line == "-- " || trimmed == "--" {
            return Some(index);
        }
        if SEPARATORS.iter().any(|separator| lower.starts_with(separator)) {
            return Some(index);
        }
        if is_attribution(lines, index) {
            return Some(index);
        }
        if OUTLOOK_FROM.iter().any(|from| lower.starts_with(from))
            && lines[index + 1..].iter().take(4).any(|next| {
                OUTLOOK_SENT
                    .iter()
                    .any(|sent| next.trim().to_lowercase().starts_with(sent))
            })
        {
            return Some(index);
        }
        // A block of quoted lines that runs to the end (or to a signature) is history;
        // quoted lines with answers between them (inline replies) stay.
        if trimmed.starts_with('>') && rest_is_quote(&lines[index..]) {
            return Some(index);
        }
    }
    None
}

/// An attribution line ("On <date>, <name> <address> wrote:"), possibly wrapped over
/// two lines by the client. It must open like one and carry a date or an address, so
/// "On the other hand, as I wrote:" stays text.
fn is_attribution(lines: &[&str], index: usize) -> bool {
    let line = lines[index].trim().trim_start_matches('>').trim();
    let lower = line.to_lowercase();
    let opens = ["on ", "am ", "le ", "el ", "il ", "op ", "den ", "em ", "w dniu", "в "]
        .iter()
        .any(|start| lower.starts_with(start))
        || line.chars().next().is_some_and(|c| c.is_ascii_digit());
    if !opens {
        return false;
    }
    let says_wrote = |text: &str| {
        let lower = text.to_lowercase();
        lower.ends_with([':', '：']) && ATTRIBUTION_VERBS.iter().any(|verb| lower.contains(verb))
    };
    let attribution = |text: &str| says_wrote(text) && (text.contains('@') || text.chars().any(|c| c.is_ascii_digit()));
    if attribution(line) {
        return true;
    }
    // Without date or address, the quote right below it is what makes it one.
    let rest = &lines[index + 1..];
    if says_wrote(line) && rest.iter().any(|next| next.trim().starts_with('>')) && rest_is_quote(rest) {
        return true;
    }
    lines
        .get(index + 1)
        .map(|next| format!("{line} {}", next.trim()))
        .is_some_and(|joined| joined.len() < 250 && attribution(&joined))
}

fn rest_is_quote(lines: &[&str]) -> bool {
    lines.iter().all(|line| {
        let trimmed = line.trim();
        trimmed.is_empty() || trimmed.starts_with('>')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gmail_and_apple_attributions_cut_the_history() {
        let gmail = "Hello\n\nOn Mon, Apr 2, 2012 at 6:26 PM, Megan One <xxx@gmail.com> wrote:\n\n> Hi\n";
        assert_eq!(shown_text(gmail), "Hello");
        let apple = "Hello\n> On 22 Aug 2015, at 19:21, Adam Renberg <tgwizard@gmail.com> wrote:\n>\n> Hi there!\n";
        assert_eq!(shown_text(apple), "Hello");
        let wrapped =
            "Thanks!\n\nOn Tue, Feb 3, 2026 at 10:15 AM Support Desk <\nsupport@example.com> wrote:\n> Your ticket\n";
        assert_eq!(shown_text(wrapped), "Thanks!");
        let thunderbird = "Danke!\n\nAm 03.02.26 um 10:15 schrieb Support Desk:\n> Ihr Ticket\n";
        assert_eq!(shown_text(thunderbird), "Danke!");
        let german = "Danke!\n\nAm Di., 3. Feb. 2026 um 10:15 Uhr schrieb Support <s@example.com>:\n> alt\n";
        assert_eq!(shown_text(german), "Danke!");
    }

    #[test]
    fn outlook_headers_and_separators_cut_the_history() {
        let outlook = "Thanks, that works.\n\nFrom: Support <support@example.com>\nSent: Tuesday, 3 February 2026 10:15\nTo: Ada\nSubject: RE: Refund\n\nOld text";
        assert_eq!(shown_text(outlook), "Thanks, that works.");
        let original = "See below.\n-----Original Message-----\nFrom: x";
        assert_eq!(shown_text(original), "See below.");
    }

    #[test]
    fn signatures_are_cut_and_inline_answers_kept() {
        assert_eq!(
            shown_text("Yes please.\n-- \nAda Lovelace\nAnalytical Engines Ltd"),
            "Yes please."
        );
        let inline = "> Which order?\n1001\n> Which colour?\nBlue\n";
        assert_eq!(shown_text(inline), inline.trim());
    }

    #[test]
    fn a_mail_that_is_all_quote_keeps_its_text() {
        let forward = "---------- Forwarded message ---------\nFrom: shop\nYour order shipped";
        assert_eq!(shown_text(forward), forward);
    }

    #[test]
    fn a_short_attribution_above_a_closing_quote_is_cut() {
        let text = "Thank you.\n\nOn Tue, Support wrote:\n> We refunded it.\n";
        assert_eq!(shown_text(text), "Thank you.");
    }

    #[test]
    fn a_sentence_ending_in_wrote_is_not_an_attribution() {
        let text = "This is what my colleague wrote:\nthe invoice is wrong.";
        assert_eq!(shown_text(text), text);
    }
}
