//! Real mail from public test suites (tests/fixtures/email, origins in SOURCES.md):
//! every file normalizes without a panic, and what the desk sees of each is right.

use std::path::PathBuf;

use switchboard_connector_email::{Limits, ParsedMail, parse};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/email")
}

fn parsed(name: &str) -> ParsedMail {
    let raw = std::fs::read(fixtures().join(name)).unwrap_or_else(|err| panic!("{name}: {err}"));
    parse(&raw, Limits::default()).unwrap_or_else(|err| panic!("{name}: {err}"))
}

fn attachment_names(mail: &ParsedMail) -> Vec<&str> {
    mail.attachments.iter().map(|a| a.filename.as_str()).collect()
}

#[test]
fn every_fixture_normalizes_without_panicking() {
    let mut count = 0;
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "eml") {
            let raw = std::fs::read(&path).unwrap();
            // A mail with no headers at all is refused with an error, not a panic.
            if let Ok(mail) = parse(&raw, Limits::default()) {
                assert!(!mail.shown_text.contains('\r'), "{}", path.display());
            }
            count += 1;
        }
    }
    assert!(count >= 80, "only {count} fixtures found");
}

/// (file, sender, subject, a piece of the shown text, attachment names)
type Expected = (
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    &'static str,
    &'static [&'static str],
);

const EXPECTED: &[Expected] = &[
    (
        "tln-gmail-reply.eml",
        Some("xxx@gmail.com"),
        Some("Re: Test"),
        "Hello",
        &[],
    ),
    (
        "tln-apple-mail-reply-references.eml",
        Some("adam@tictail.com"),
        Some("Re: Hello there"),
        "Hello",
        &[],
    ),
    (
        "cw-only_html.eml",
        Some("tejaswini@ex.com"),
        Some("test html only mail"),
        "This is html only mail",
        &[],
    ),
    (
        "flk-bilingual-simple.eml",
        Some("hello@example.com"),
        Some("Simple text. How are you? Как ты поживаешь?"),
        "А эта линия по-русски.",
        &[],
    ),
    (
        "flk-iphone-jpeg-attachment.eml",
        Some("someone@somewhere.com"),
        Some("Subject"),
        "Hello",
        &["photo.JPG"],
    ),
    (
        "flk-mailgun-pic-png-attachment.eml",
        Some("hello@example.com"),
        Some("Mailgun rocks!"),
        "Мейлган! Хахах!",
        &["mailgun.png"],
    ),
    (
        "flk-enclosed-forward-attached.eml",
        Some("bob@example.net"),
        Some("Wow"),
        "Hello",
        &["thanks.eml"],
    ),
    (
        "mk-japanese-iso2022jp.eml",
        Some("x@x.com"),
        Some("日本語メールテスト (testing Japanese emails)"),
        "日本語が",
        &[],
    ),
    (
        "rbm-japanese_shift_jis.eml",
        Some("xxxxxxx@docomo.ne.jp"),
        Some("test"),
        "このメールはテスト用のメールです。",
        &[],
    ),
    (
        "rbm-ks_c_5601-1987.eml",
        Some("from@example.com"),
        Some("test"),
        "스티해",
        &[],
    ),
    (
        "rbm-raw_email-euc-kr-q-subject.eml",
        Some("jamis@37signals.com"),
        Some("NOTE: 한국말로 하는 것"),
        "제 이름은 Jamis입니다.",
        &[],
    ),
    (
        "rbm-attachment_nonascii_filename.eml",
        Some("foo@example.com"),
        Some("testing"),
        "This is the first part.",
        &["ciële.txt"],
    ),
    (
        "rbm-attachment_pdf-utf8-raw-subject.eml",
        Some("xxxx@xxxx.com"),
        Some("Another PDF with 🎉 Unicode chars in it 🍿"),
        "Just attaching another PDF",
        &["broken.pdf"],
    ),
    (
        "m4j-russian-headers-koi8r-encoded-filename.eml",
        None,
        Some("A simple subject"),
        "",
        &["Список.doc"],
    ),
    (
        "enm-mime-bad-8bit-filename.eml",
        Some("pavel.bazika@some.domain"),
        Some("Malformed test"),
        "Text part",
        &["管理.doc"],
    ),
    (
        "mp-dovecot-thirdparty-019-windows1252-attachment.eml",
        Some("test@example.com"),
        Some("30 plaintext + (HTML + embedded image) + attachment"),
        "Search for hähä",
        &["kigaaldcbanejcbi.png", "attach2.png"],
    ),
    (
        "nmp-nodemailer-inline-images.eml",
        Some("andris@kreata.ee"),
        Some("Nodemailer is unicode friendly ✔ (1476358788189)"),
        "Hello to myself!",
        &["attachment-1.bin", "image.png", "nyan cat ✔.gif", "notes.txt"],
    ),
    (
        "rbm-rfc6532-utf8_headers.eml",
        Some("jdöe@mächine.example"),
        Some("Säying Hello"),
        "body",
        &[],
    ),
    (
        "tln-outlook-reply-iso8859-1.eml",
        Some("me@example.com"),
        Some("Test"),
        "Hello",
        &[],
    ),
    (
        "mp-rfc-002-fwd-message-rfc822.eml",
        Some("vice-president@whitehouse.gov"),
        Some("[Fwd: Map of Argentina with Description]"),
        "Fire up Air Force One!",
        &["Map of Argentina with Description.eml"],
    ),
];

#[test]
fn senders_subjects_texts_and_attachment_names_are_extracted() {
    for (file, sender, subject, text, attachments) in EXPECTED {
        let mail = parsed(file);
        assert_eq!(
            mail.from.as_ref().map(|from| from.address.as_str()),
            *sender,
            "{file}: sender"
        );
        assert_eq!(mail.subject.as_deref(), *subject, "{file}: subject");
        assert!(
            mail.shown_text.contains(text),
            "{file}: shown text {:?}",
            mail.shown_text
        );
        assert_eq!(attachment_names(&mail), *attachments, "{file}: attachments");
        assert!(mail.automated.is_none(), "{file}: {:?}", mail.automated);
    }
}

#[test]
fn quoted_history_is_cut_from_the_shown_text_and_kept_in_the_full_text() {
    for file in [
        "tln-gmail-reply.eml",
        "tln-apple-mail-reply-references.eml",
        "tln-outlook-reply-iso8859-1.eml",
    ] {
        let mail = parsed(file);
        assert_eq!(mail.shown_text, "Hello", "{file}");
        assert!(mail.text.len() > mail.shown_text.len(), "{file}: the full body is kept");
    }
    let signed = parsed("flk-mailgun-pic-png-attachment.eml");
    assert_eq!(signed.shown_text, "Мейлган! Хахах!");
    assert!(signed.text.contains("Regards,\nAlex"));
}

#[test]
fn html_only_mail_is_read_as_text_and_its_html_kept() {
    let mail = parsed("cw-only_html.eml");
    assert_eq!(mail.text, "This is html only mail");
    assert!(mail.html.as_deref().is_some_and(|html| html.contains('<')));
    let inline = parsed("mp-dovecot-thirdparty-016-html-embedded-image.eml");
    assert_eq!(inline.shown_text, "Search for höhö");
    let image = &inline.attachments[0];
    assert_eq!(
        (image.content_type.as_str(), image.content_id.is_some()),
        ("image/png", true)
    );
}

#[test]
fn threading_headers_are_read() {
    let reply = parsed("tln-apple-mail-reply-references.eml");
    assert_eq!(
        reply.message_id.as_deref(),
        Some("68001B29-8EA4-444C-A894-0537D2CA5208@tictail.com")
    );
    assert_eq!(
        reply.in_reply_to,
        ["CABzQGhkMXDxUt_tSVQcg=43aniUhtsVfCZVzu-PG0kwS_uzqMw@mail.gmail.com"]
    );
    assert_eq!(reply.references, reply.in_reply_to);
    let several = parsed("cw-multiple_in_reply_to-truncated.eml");
    assert_eq!(several.in_reply_to.len(), 2);
}

#[test]
fn auto_replies_and_lists_are_marked_automated() {
    // (file, reason, whether it is an automatic reply rather than other machine mail)
    for (file, reason, auto_reply) in [
        ("ssm-rfc3834-01-auto-replied.eml", "Auto-Submitted: auto-replied", true),
        // Outlook's: only X-Auto-Response-Suppress and "Automatic reply:" say so.
        (
            "ssm-rfc3834-04-automatic-reply-windows1252.eml",
            "X-Auto-Response-Suppress: all",
            true,
        ),
        (
            "ssm-rfc3834-06-precedence-bulk-autoresponse.eml",
            "Auto-Submitted: auto-replied",
            true,
        ),
        (
            "mp-dovecot-thirdparty-014-yahoo-alternative.eml",
            "Precedence: list",
            false,
        ),
        ("rbm-bad_date_header.eml", "Precedence: junk", false),
        (
            "cw-non_utf_encoded_mail-arabic-autoreply.eml",
            "Auto-Submitted: auto-replied",
            true,
        ),
        (
            "flk-complaint-yahoo-arf.eml",
            "multipart/report (feedback-report)",
            false,
        ),
        (
            "flk-disposition-notification.eml",
            "multipart/report (disposition-notification)",
            false,
        ),
    ] {
        let automated = parsed(file)
            .automated
            .unwrap_or_else(|| panic!("{file}: not automated"));
        assert_eq!(automated.reason, reason, "{file}");
        assert_eq!(automated.auto_reply, auto_reply, "{file}");
        assert!(parsed(file).bounce.is_none(), "{file}");
    }
}

#[test]
fn the_envelope_sender_is_read_from_the_topmost_return_path() {
    // A vacation notice relayed with its envelope sender kept.
    assert_eq!(
        parsed("ssm-rfc3834-01-auto-replied.eml").return_path.as_deref(),
        Some("nyaan@neko.example.org")
    );
    // The null sender of auto-replies and bounces names nobody.
    assert_eq!(
        parsed("ssm-rfc3834-04-automatic-reply-windows1252.eml").return_path,
        None
    );
}

#[test]
fn bounces_name_the_failed_recipient_and_the_mail_that_bounced() {
    for (file, recipient, status, original) in [
        (
            "flk-bounce-mailbox-full.eml",
            Some("user@aol.com"),
            Some("5.2.2"),
            Some("4E326A95.3010907@example.com"),
        ),
        (
            "flk-bounce-office365.eml",
            Some("noname@example.com"),
            Some("5.1.10"),
            Some("20171013111011.20866.254C2F3A4D7AA526@ninomail.com"),
        ),
        (
            "nmp-delivery-status.eml",
            Some("xxxx@xxxx.com"),
            Some("5.1.1"),
            Some("xxxxx@email.amazonses.com"),
        ),
        (
            "ssm-lhost-postfix-01-dsn-crlf.eml",
            Some("r@p351355.pool.example.ne.jp"),
            Some("5.1.1"),
            None,
        ),
        (
            "ssm-rhost-apple-01-cr-line-endings.eml",
            Some("kijitora@example.jp"),
            Some("5.1.6"),
            Some("c15e793e1c6acf9fbc39d1547bbd98b4@example.com"),
        ),
        ("flk-bounce-gmail-invalid-address.eml", None, None, None),
        (
            "cw-bounced_gmail-dsn-2025.eml",
            None,
            None,
            Some("conversation/93775311-9416-4428-964b-862001f8a8b2/messages/27855337@gmail.com"),
        ),
    ] {
        let mail = parsed(file);
        let bounce = mail.bounce.unwrap_or_else(|| panic!("{file}: not a bounce"));
        assert!(bounce.permanent, "{file}");
        assert_eq!(bounce.recipients.first().map(String::as_str), recipient, "{file}");
        assert_eq!(bounce.status.as_deref(), status, "{file}");
        assert_eq!(
            bounce.original_message_ids.first().map(String::as_str),
            original,
            "{file}"
        );
        assert!(mail.automated.is_some(), "{file}: a bounce is never answered");
    }
    let multi = parsed("rbm-multi_address_bounce1.eml").bounce.unwrap();
    assert_eq!(multi.recipients.len(), 5);
    let warning = parsed("rbm-dsn-delay-warning-part-without-content-type.eml")
        .bounce
        .unwrap();
    assert!(!warning.permanent, "a delay warning is not a failure");
}

#[test]
fn attachments_past_the_limit_are_listed_not_kept() {
    let raw = std::fs::read(fixtures().join("mp-dovecot-thirdparty-019-windows1252-attachment.eml")).unwrap();
    let mail = parse(
        &raw,
        Limits {
            max_attachment_bytes: 300,
        },
    )
    .unwrap();
    assert_eq!(attachment_names(&mail), ["kigaaldcbanejcbi.png"]);
    assert_eq!(mail.dropped_attachments, [("attach2.png".to_owned(), 158)]);
}

#[test]
fn a_mail_without_headers_is_refused_clearly() {
    let raw = std::fs::read(fixtures().join("m4j-malformed-header-starts-body.eml")).unwrap();
    assert!(parse(&raw, Limits::default()).is_err());
    assert!(parse(b"", Limits::default()).is_err());
}
