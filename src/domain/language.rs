//! The language of a message when its channel does not say (email and Telegram rarely
//! do): detected from the text with whatlang, given as an ISO 639-1 tag like the ones
//! channels send (`th`, `ar`), so one routing condition covers both.
//!
//! A desk names its languages (`routing.detect_languages`); detection chooses among them
//! and says none rather than guess: a text too close to call between two of them
//! (Italian and Spanish), or nearer a neighbour the desk does not list than the one
//! chosen (Portuguese beside Italian, Dutch beside German, Persian beside Arabic), has no
//! language. A wrong language routes and answers worse than none does.

use whatlang::Lang;

/// Texts shorter than this (in letters) say too little to tell close languages apart.
const MIN_CHARS: usize = 12;
/// whatlang's own "reliable" needs long texts; support messages are often one
/// sentence. Its confidence is the margin over the runner-up: on a few words a low one
/// is as often wrong as right ("refund please" reads as Danish at 0.04), while a whole
/// sentence is usually right even at a low margin (a 55-letter English question scored
/// 0.06). So the bar falls as the text grows.
const MIN_CONFIDENCE_SHORT: f64 = 0.15;
const MIN_CONFIDENCE_LONG: f64 = 0.05;
/// Letters from which a text counts as long; a shorter one is a chat line, whose
/// detected language does not override a contact's known one (see [`short_line`]).
const LONG_TEXT: usize = 40;
/// Characters of a text that are looked at.
const SAMPLE_CHARS: usize = 400;

/// Detects languages among those a desk expects (`routing.detect_languages`), or among
/// all whatlang knows. Knowing the candidates makes one-line chat messages more often
/// right: among all languages "Your checkout doesn't work with my screen reader" reads
/// as Dutch.
#[derive(Debug, Clone)]
pub struct LanguageDetector {
    /// Over the desk's languages (all when it names none).
    detector: whatlang::Detector,
    /// The ISO 639-1 tags allowed; empty: all.
    allowed: Vec<&'static str>,
    /// For a desk language with near neighbours the desk does not list: a detector over
    /// it and them, which must agree before the language is taken.
    checks: Vec<(Lang, whatlang::Detector)>,
}

impl Default for LanguageDetector {
    fn default() -> LanguageDetector {
        LanguageDetector {
            detector: whatlang::Detector::new(),
            allowed: Vec::new(),
            checks: Vec::new(),
        }
    }
}

impl LanguageDetector {
    /// `tags`: ISO 639-1 tags (`en`, `th`); an unknown one is returned as the error.
    pub fn only(tags: &[String]) -> Result<LanguageDetector, String> {
        if tags.is_empty() {
            return Ok(LanguageDetector::default());
        }
        let mut langs = Vec::new();
        let mut allowed = Vec::new();
        for tag in tags {
            let tag = tag.trim().to_ascii_lowercase();
            let Some((lang, two)) = Lang::all()
                .iter()
                .find_map(|lang| iso_639_1(*lang).filter(|two| *two == tag).map(|two| (*lang, two)))
            else {
                return Err(tag);
            };
            langs.push(lang);
            allowed.push(two);
        }
        let checks = langs
            .iter()
            .filter_map(|lang| {
                let mut weighed = vec![*lang];
                weighed.extend(neighbours(*lang).iter().filter(|other| !langs.contains(other)));
                (weighed.len() > 1).then(|| (*lang, whatlang::Detector::with_allowlist(weighed)))
            })
            .collect();
        Ok(LanguageDetector {
            detector: whatlang::Detector::with_allowlist(langs),
            allowed,
            checks,
        })
    }

    /// The tags it chooses among; empty for all.
    pub fn allowed(&self) -> &[&'static str] {
        &self.allowed
    }

    /// The language `text` is written in, when the detector is confident of it.
    pub fn detect(&self, text: &str) -> Option<&'static str> {
        // The opening of a long mail tells its language as well as the whole, and the
        // cost grows with the length.
        let text = match text.char_indices().nth(SAMPLE_CHARS) {
            Some((end, _)) => &text[..end],
            None => text,
        };
        let letters = letters(text);
        if letters < MIN_CHARS {
            return None;
        }
        let info = self.detector.detect(text)?;
        // One candidate is always "certain": that says nothing about the text.
        if self.allowed.len() == 1 && !info.is_reliable() && info.confidence() < MIN_CONFIDENCE_SHORT {
            return None;
        }
        // A wrong language routes worse than none does.
        let bar = if letters >= LONG_TEXT {
            MIN_CONFIDENCE_LONG
        } else {
            MIN_CONFIDENCE_SHORT
        };
        if !info.is_reliable() && info.confidence() < bar {
            return None;
        }
        // Nearer a neighbour the desk does not speak (Portuguese for an Italian desk,
        // Dutch for a German one) than the language chosen: none.
        if let Some((_, check)) = self.checks.iter().find(|(lang, _)| *lang == info.lang())
            && check.detect(text).map(|near| near.lang()) != Some(info.lang())
        {
            return None;
        }
        iso_639_1(info.lang())
    }
}

/// Whether two language tags name the same language: their primary subtags, case aside
/// (`pt` and `pt-BR`, `it` and `it_IT`). An empty tag names none.
pub fn same_language(one: &str, other: &str) -> bool {
    fn primary(tag: &str) -> &str {
        tag.split(['-', '_']).next().unwrap_or_default()
    }
    let one = primary(one);
    !one.is_empty() && one.eq_ignore_ascii_case(primary(other))
}

/// Whether `text` is a chat line too short for its detected language to replace a
/// contact's known one ("ok grazie mille" from an Italian customer stays Italian).
pub fn short_line(text: &str) -> bool {
    letters(text) < LONG_TEXT
}

/// Letters in `text`, counted up to [`LONG_TEXT`].
fn letters(text: &str) -> usize {
    text.chars().filter(|c| c.is_alphabetic()).take(LONG_TEXT).count()
}

/// Languages whatlang mistakes for `lang` on a line or two. A text a desk's detector
/// takes for `lang` is weighed against those the desk does not list, so that an Italian
/// desk does not call Portuguese Italian, nor a German one Dutch German. Catalan is not
/// among Spanish's and Italian's: whatlang takes many a Spanish line for Catalan, and a
/// Catalan customer reads Spanish.
fn neighbours(lang: Lang) -> &'static [Lang] {
    use Lang::*;
    match lang {
        Ita => &[Spa, Por, Fra, Ron],
        Spa => &[Por, Ita, Fra],
        Por => &[Spa, Ita, Cat],
        Fra => &[Ita, Spa, Cat],
        Cat => &[Spa, Fra, Ita],
        Ron => &[Ita, Spa],
        Deu => &[Nld, Afr, Dan, Swe, Nob],
        Nld => &[Deu, Afr],
        Dan => &[Nob, Swe],
        Nob => &[Dan, Swe],
        Swe => &[Nob, Dan],
        Ara => &[Pes, Urd],
        Pes => &[Ara, Urd],
        Urd => &[Ara, Pes],
        Rus => &[Ukr, Bel, Bul],
        Ukr => &[Rus, Bel],
        Ces => &[Slk],
        Slk => &[Ces],
        Hrv => &[Srp, Slv],
        Srp => &[Hrv, Mkd],
        _ => &[],
    }
}

/// [`LanguageDetector::detect`] among all languages.
pub fn detect(text: &str) -> Option<&'static str> {
    LanguageDetector::default().detect(text)
}

/// whatlang names languages in ISO 639-3; channels and config use the two-letter tags.
fn iso_639_1(lang: Lang) -> Option<&'static str> {
    let three = lang.code();
    const TABLE: &[(&str, &str)] = &[
        ("afr", "af"),
        ("aka", "ak"),
        ("amh", "am"),
        ("ara", "ar"),
        ("aze", "az"),
        ("bel", "be"),
        ("ben", "bn"),
        ("bul", "bg"),
        ("cat", "ca"),
        ("ces", "cs"),
        ("cmn", "zh"),
        ("dan", "da"),
        ("deu", "de"),
        ("ell", "el"),
        ("eng", "en"),
        ("epo", "eo"),
        ("est", "et"),
        ("fin", "fi"),
        ("fra", "fr"),
        ("guj", "gu"),
        ("heb", "he"),
        ("hin", "hi"),
        ("hrv", "hr"),
        ("hun", "hu"),
        ("hye", "hy"),
        ("ind", "id"),
        ("ita", "it"),
        ("jav", "jv"),
        ("jpn", "ja"),
        ("kan", "kn"),
        ("kat", "ka"),
        ("khm", "km"),
        ("kor", "ko"),
        ("lat", "la"),
        ("lav", "lv"),
        ("lit", "lt"),
        ("mal", "ml"),
        ("mar", "mr"),
        ("mkd", "mk"),
        ("mya", "my"),
        ("nep", "ne"),
        ("nld", "nl"),
        ("nob", "nb"),
        ("ori", "or"),
        ("pan", "pa"),
        ("pes", "fa"),
        ("pol", "pl"),
        ("por", "pt"),
        ("ron", "ro"),
        ("rus", "ru"),
        ("sin", "si"),
        ("slk", "sk"),
        ("slv", "sl"),
        ("sna", "sn"),
        ("spa", "es"),
        ("srp", "sr"),
        ("swe", "sv"),
        ("tam", "ta"),
        ("tel", "te"),
        ("tgl", "tl"),
        ("tha", "th"),
        ("tuk", "tk"),
        ("tur", "tr"),
        ("ukr", "uk"),
        ("urd", "ur"),
        ("uzb", "uz"),
        ("vie", "vi"),
        ("yid", "yi"),
        ("zul", "zu"),
    ];
    TABLE.iter().find(|(code, _)| *code == three).map(|(_, two)| *two)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_thai_arabic_english_and_german() {
        assert_eq!(detect("สวัสดีครับ ผมต้องการขอคืนเงินค่าสินค้าที่สั่งไปเมื่อวาน"), Some("th"));
        assert_eq!(
            detect("مرحبا، أريد استرداد المبلغ الذي دفعته مرتين هذا الشهر"),
            Some("ar")
        );
        assert_eq!(
            detect("Hello, I was charged twice for my order last week, please help"),
            Some("en")
        );
        assert_eq!(
            detect("Guten Tag, meine Rechnung ist leider falsch, bitte prüfen Sie das"),
            Some("de")
        );
        assert_eq!(
            detect("Good morning, could you tell me when your shop opens on Sundays?"),
            Some("en")
        );
    }

    #[test]
    fn short_texts_get_no_guess() {
        assert_eq!(detect("ok thx"), None);
        assert_eq!(detect("refund please, thanks"), None);
        assert_eq!(detect("12345 67890 !!!"), None);
    }

    #[test]
    fn a_desks_languages_make_short_lines_reliable() {
        let desk = LanguageDetector::only(&["en".into(), "de".into(), "th".into(), "ar".into()]).unwrap();
        // Among all languages this reads as Dutch; among the desk's, as English.
        assert_eq!(detect("Your checkout doesn't work with my screen reader"), Some("nl"));
        assert_eq!(
            desk.detect("Your checkout doesn't work with my screen reader"),
            Some("en")
        );
        // Still unsure (German by a small margin): no language rather than a wrong one.
        assert_eq!(desk.detect("yo can u check my order?? its been a week"), None);
        assert_eq!(desk.detect("ขอบคุณมากครับ บริการดีมากเลย"), Some("th"));
        assert_eq!(desk.allowed(), ["en", "de", "th", "ar"]);
        assert_eq!(LanguageDetector::only(&["xx".into()]).unwrap_err(), "xx");
    }

    #[test]
    fn every_whatlang_language_has_a_two_letter_tag() {
        for lang in Lang::all() {
            assert!(iso_639_1(*lang).is_some(), "{lang:?}");
        }
    }

    #[test]
    fn a_short_line_is_under_forty_letters() {
        assert!(short_line("ok grazie mille, a presto!"));
        assert!(!short_line("Buongiorno, il mio pacco non è mai arrivato a casa"));
    }

    #[test]
    fn a_neighbour_outside_the_desk_or_a_close_call_gets_none() {
        let desk = LanguageDetector::only(&["en".into(), "de".into(), "es".into(), "it".into()]).unwrap();
        assert_eq!(
            desk.detect("Il mio pacco non è ancora arrivato, potete controllare?"),
            Some("it")
        );
        assert_eq!(
            desk.detect("Mi paquete todavía no ha llegado, ¿pueden revisarlo?"),
            Some("es")
        );
        // Portuguese and Dutch are not the desk's: not Spanish or Italian, not German.
        assert_eq!(desk.detect("Minha encomenda ainda não chegou, podem verificar?"), None);
        assert_eq!(
            desk.detect("Mijn pakket is nog steeds niet aangekomen, kunt u kijken?"),
            None
        );
    }

    /// The labelled messages of `tests/fixtures/language/messages.tsv` (written for the
    /// project): the tag, a tab, the text.
    const LABELLED: &str = include_str!("../../tests/fixtures/language/messages.tsv");

    /// Per language, what detection among the shipped desk's languages made of its
    /// messages.
    #[derive(Default)]
    struct Row {
        messages: usize,
        right: usize,
        wrong: usize,
        none: usize,
        /// Messages of other languages taken for this one.
        taken: usize,
    }

    /// Prints the table in BENCHMARKS.md ("Language detection on short support
    /// messages"): `cargo test --lib detection_table -- --nocapture`. It holds the floor
    /// the table shows, so detection cannot get worse unnoticed.
    #[test]
    fn detection_table_on_labelled_support_messages() {
        let shipped = crate::config::parse_toml(include_str!("../../config/switchboard.toml")).unwrap();
        let languages = shipped.routing.detect_languages;
        let desk = LanguageDetector::only(&languages).unwrap();
        let mut rows: std::collections::BTreeMap<&str, Row> = std::collections::BTreeMap::new();
        let mut mistakes = Vec::new();
        for line in LABELLED
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
        {
            let (label, text) = line.split_once('\t').expect("a tag, a tab and the text");
            let found = desk.detect(text);
            let row = rows.entry(label).or_default();
            row.messages += 1;
            match found {
                None => row.none += 1,
                Some(tag) if tag == label => row.right += 1,
                Some(tag) => {
                    row.wrong += 1;
                    mistakes.push(format!("{label} taken for {tag}: {text}"));
                    rows.entry(tag).or_default().taken += 1;
                }
            }
        }
        let in_desk = |label: &str| languages.iter().any(|tag| tag == label);
        println!("desk: {}", languages.join(", "));
        println!("| language | messages | right | wrong | none | precision |");
        println!("|---|---:|---:|---:|---:|---:|");
        let mut total = Row::default();
        for tag in &languages {
            let row = &rows[tag.as_str()];
            let precision = row.right as f64 / (row.right + row.taken).max(1) as f64;
            println!(
                "| {tag} | {} | {} | {} | {} ({:.0} %) | {:.1} % |",
                row.messages,
                row.right,
                row.wrong,
                row.none,
                100.0 * row.none as f64 / row.messages as f64,
                100.0 * precision
            );
            total.messages += row.messages;
            total.right += row.right;
            total.wrong += row.wrong;
            total.none += row.none;
            total.taken += row.taken;
            assert!(
                precision >= 0.97,
                "{tag}: precision {precision:.3}\n{}",
                mistakes.join("\n")
            );
            assert!(
                row.right * 10 >= row.messages * 7,
                "{tag}: {} of {} right",
                row.right,
                row.messages
            );
        }
        let detected = total.right + total.wrong;
        println!(
            "| all six | {} | {} | {} | {} ({:.0} %) | {:.1} % |",
            total.messages,
            total.right,
            total.wrong,
            total.none,
            100.0 * total.none as f64 / total.messages as f64,
            100.0 * total.right as f64 / detected.max(1) as f64
        );
        let mut outside = Row::default();
        let mut names = Vec::new();
        for (tag, row) in rows.iter().filter(|(tag, _)| !in_desk(tag)) {
            names.push(*tag);
            outside.messages += row.messages;
            outside.none += row.none;
            outside.wrong += row.wrong;
        }
        println!(
            "| outside the desk ({}) | {} | – | {} | {} ({:.0} %) | – |",
            names.join(", "),
            outside.messages,
            outside.wrong,
            outside.none,
            100.0 * outside.none as f64 / outside.messages.max(1) as f64
        );
        for mistake in &mistakes {
            println!("  {mistake}");
        }
        assert!(
            total.messages >= 300,
            "{} labelled messages in the desk's languages",
            total.messages
        );
        assert!(
            outside.none * 10 >= outside.messages * 8,
            "{} of {} outside the desk got none",
            outside.none,
            outside.messages
        );
    }
}
