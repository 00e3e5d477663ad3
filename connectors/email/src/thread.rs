//! What ties a mail to a conversation: our own Message-IDs, the `[#N]` reference tag in
//! the subject, and the subject with its reply and forward prefixes removed.

/// The Message-ID of a mail Switchboard sent: it names the conversation and the message,
/// so a reply that quotes it in In-Reply-To or References finds its conversation without
/// a lookup table, and a bounce that carries it finds the message that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OurMessageId {
    pub conversation_id: i64,
    pub message_id: i64,
}

const PREFIX: &str = "switchboard.";

impl OurMessageId {
    /// `switchboard.C.M@domain`, without angle brackets (as mail-parser hands ids over).
    pub fn format(self, domain: &str) -> String {
        format!("{PREFIX}{}.{}@{domain}", self.conversation_id, self.message_id)
    }

    /// Recognises an id made by [`OurMessageId::format`] for `domain`; anything else,
    /// including our shape on another domain, is somebody else's.
    pub fn parse(id: &str, domain: &str) -> Option<OurMessageId> {
        let id = id.trim().trim_start_matches('<').trim_end_matches('>');
        let (local, id_domain) = id.rsplit_once('@')?;
        if !id_domain.eq_ignore_ascii_case(domain) {
            return None;
        }
        let (conversation, message) = local.strip_prefix(PREFIX)?.split_once('.')?;
        Some(OurMessageId {
            conversation_id: positive(conversation)?,
            message_id: positive(message)?,
        })
    }
}

fn positive(digits: &str) -> Option<i64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|n| *n > 0)
}

/// The conversation reference a subject carries, `[#42]`: the last one, because a
/// forwarded thread may carry an older tag before ours.
pub fn reference_tag(subject: &str) -> Option<i64> {
    let mut found = None;
    let mut rest = subject;
    while let Some(start) = rest.find("[#") {
        let after = &rest[start + 2..];
        if let Some(end) = after.find(']')
            && let Some(number) = positive(after[..end].trim())
        {
            found = Some(number);
        }
        rest = after;
    }
    found
}

/// Reply and forward prefixes as mail clients write them, in the languages our
/// customers' clients use: `Re`, `Fwd`, German `AW`/`WG`, Scandinavian `SV`/`VS`, Dutch
/// `Antw`, French `TR`, Spanish `RV`, Italian `R`/`I`, Polish `Odp`, Finnish `VL`,
/// Portuguese `ENC`, Turkish `YNT`, Chinese `回复`/`转发`, and the `Re[2]` counters.
const PREFIXES: &[&str] = &[
    "re", "fw", "fwd", "aw", "wg", "sv", "vs", "antw", "doorst", "tr", "rv", "r", "i", "odp", "vl", "enc", "ynt",
    "回复", "回覆", "转发", "轉寄",
];

/// The subject a conversation is known by: reply and forward prefixes, reference tags,
/// list tags (`[support]`) and runs of whitespace removed, case folded. Two mails whose
/// normalized subjects are equal are about the same topic; an edited subject is not.
pub fn normalize_subject(subject: &str) -> String {
    let mut rest = subject.trim();
    loop {
        let before = rest;
        rest = strip_bracket_tag(rest).trim_start();
        rest = strip_prefix(rest).trim_start();
        if rest == before {
            break;
        }
    }
    let without_tags = remove_reference_tags(rest);
    let mut normalized = String::with_capacity(without_tags.len());
    for word in without_tags.split_whitespace() {
        if !normalized.is_empty() {
            normalized.push(' ');
        }
        normalized.push_str(&word.to_lowercase());
    }
    normalized
}

/// One leading `[anything]` (a list tag or our reference tag).
fn strip_bracket_tag(subject: &str) -> &str {
    if let Some(inner) = subject.strip_prefix('[')
        && let Some(end) = inner.find(']')
    {
        return &inner[end + 1..];
    }
    subject
}

/// One leading `Re:`, `AW:`, `Re[2]:`, `Fwd :` (and the full-width colon).
fn strip_prefix(subject: &str) -> &str {
    let end = subject.find([':', '：']).unwrap_or(0);
    if end == 0 || end > 12 {
        return subject;
    }
    let word = subject[..end].trim_end();
    let word = match word.find(['[', '(']) {
        Some(open) if word.ends_with([']', ')']) && positive(&word[open + 1..word.len() - 1]).is_some() => {
            &word[..open]
        }
        _ => word,
    };
    if PREFIXES.iter().any(|prefix| word.eq_ignore_ascii_case(prefix)) {
        let colon_len = subject[end..].chars().next().map_or(1, char::len_utf8);
        return &subject[end + colon_len..];
    }
    subject
}

fn remove_reference_tags(subject: &str) -> String {
    let mut out = String::with_capacity(subject.len());
    let mut rest = subject;
    while let Some(start) = rest.find("[#") {
        let after = &rest[start + 2..];
        match after.find(']') {
            Some(end) if positive(after[..end].trim()).is_some() => {
                out.push_str(&rest[..start]);
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str(&rest[..start + 2]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The subject of our reply: the conversation's subject, one `Re: `, our tag at the end.
pub fn reply_subject(subject: Option<&str>, conversation_id: i64) -> String {
    let base = subject.map(str::trim).unwrap_or_default();
    let mut rest = base;
    loop {
        let before = rest;
        rest = strip_prefix(rest).trim_start();
        if rest == before {
            break;
        }
    }
    let rest = remove_reference_tags(rest);
    let rest = rest.trim();
    if rest.is_empty() {
        format!("Re: your message [#{conversation_id}]")
    } else {
        format!("Re: {rest} [#{conversation_id}]")
    }
}

/// The subject of a status update: the reply subject of the conversation, like an
/// agent's reply, so that clients that thread by subject (and people scanning their
/// inbox) see it in the customer's own thread. The template's subject stands in only
/// when the customer's mail had no subject to answer.
pub fn update_subject(conversation: Option<&str>, template: Option<&str>, conversation_id: i64) -> String {
    let has_topic = conversation.is_some_and(|subject| !normalize_subject(subject).is_empty());
    match template.filter(|subject| !subject.trim().is_empty()) {
        Some(template) if !has_topic => tagged_subject(template, conversation_id),
        _ => reply_subject(conversation, conversation_id),
    }
}

/// A template's subject as written (no `Re: `, the desk chose the words), with our tag
/// at the end unless the template already ends on it.
fn tagged_subject(subject: &str, conversation_id: i64) -> String {
    // A subject is one line: a template that renders a line break must not make a
    // folded or encoded header out of it.
    let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
    // The last tag is the one threading reads, so a tag of ours earlier in the subject
    // (or another conversation's at the end) still needs ours after it.
    if reference_tag(&subject) == Some(conversation_id) {
        subject
    } else {
        format!("{subject} [#{conversation_id}]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_message_ids_round_trip_and_foreign_ones_are_refused() {
        let id = OurMessageId {
            conversation_id: 42,
            message_id: 7,
        };
        let text = id.format("desk.example.com");
        assert_eq!(text, "switchboard.42.7@desk.example.com");
        assert_eq!(OurMessageId::parse(&text, "desk.example.com"), Some(id));
        assert_eq!(OurMessageId::parse(&format!("<{text}>"), "DESK.example.com"), Some(id));
        for foreign in [
            "switchboard.42.7@evil.example.com",
            "switchboard.42@desk.example.com",
            "switchboard.x.7@desk.example.com",
            "switchboard.0.7@desk.example.com",
            "CAKsfaBW4hj0Gek6@mail.gmail.com",
            "",
        ] {
            assert_eq!(OurMessageId::parse(foreign, "desk.example.com"), None, "{foreign}");
        }
    }

    #[test]
    fn the_last_reference_tag_counts() {
        assert_eq!(reference_tag("Re: Refund [#42]"), Some(42));
        assert_eq!(reference_tag("[#7] Fwd: old [#42]"), Some(42));
        assert_eq!(reference_tag("Re: [# 12 ]"), Some(12));
        assert_eq!(reference_tag("Re: price [#abc] and #5"), None);
        assert_eq!(reference_tag("[#0]"), None);
    }

    #[test]
    fn subjects_normalize_across_clients_and_languages() {
        for (subject, normalized) in [
            ("Re: Refund for order 1001", "refund for order 1001"),
            ("RE: RE: Refund for order 1001", "refund for order 1001"),
            ("AW: Re: Refund  for order 1001 [#42]", "refund for order 1001"),
            ("Re[2]: Refund for order 1001", "refund for order 1001"),
            ("Fwd : Refund for order 1001", "refund for order 1001"),
            ("[support] Re: Refund for order 1001", "refund for order 1001"),
            ("SV: Faktura", "faktura"),
            ("回复：退款", "退款"),
            ("Reminder: your invoice", "reminder: your invoice"),
            ("Re:", ""),
        ] {
            assert_eq!(normalize_subject(subject), normalized, "{subject}");
        }
    }

    #[test]
    fn replies_carry_one_re_and_our_tag() {
        assert_eq!(reply_subject(Some("Refund"), 42), "Re: Refund [#42]");
        assert_eq!(reply_subject(Some("Re: AW: Refund [#42]"), 42), "Re: Refund [#42]");
        assert_eq!(reply_subject(None, 3), "Re: your message [#3]");
    }

    #[test]
    fn status_update_subjects_carry_our_tag_once() {
        assert_eq!(
            tagged_subject("Your request is resolved", 42),
            "Your request is resolved [#42]"
        );
        assert_eq!(tagged_subject("Request [#42] resolved", 42), "Request [#42] resolved");
        assert_eq!(tagged_subject("Resolved [# 42 ]", 42), "Resolved [# 42 ]");
        assert_eq!(tagged_subject("Resolved [#7]", 42), "Resolved [#7] [#42]");
        assert_eq!(tagged_subject("  Resolved\r\n  today ", 42), "Resolved today [#42]");
    }

    #[test]
    fn an_update_answers_the_customers_subject_whatever_the_template_says() {
        assert_eq!(
            update_subject(Some("AW: Rechnung 4411"), Some("We received your message"), 7),
            "Re: Rechnung 4411 [#7]"
        );
        assert_eq!(update_subject(Some("Re: Invoice [#7]"), None, 7), "Re: Invoice [#7]");
        assert_eq!(
            update_subject(Some("เรื่องใบแจ้งหนี้"), Some("เราได้รับข้อความของคุณแล้ว #7"), 7),
            "Re: เรื่องใบแจ้งหนี้ [#7]"
        );
    }

    #[test]
    fn without_a_customer_subject_the_templates_words_stand_in() {
        for customer in [None, Some(""), Some("Re: [#7]")] {
            assert_eq!(
                update_subject(customer, Some("We received your message"), 7),
                "We received your message [#7]",
                "{customer:?}"
            );
        }
        assert_eq!(update_subject(None, Some("  "), 7), "Re: your message [#7]");
        assert_eq!(update_subject(None, None, 7), "Re: your message [#7]");
    }
}
