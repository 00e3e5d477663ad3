//! The language of a message when its channel does not say (email and Telegram rarely
//! do): detected from the text with whatlang, given as an ISO 639-1 tag like the ones
//! channels send (`th`, `ar`), so one routing condition covers both.

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
/// Letters from which a text counts as long.
const LONG_TEXT: usize = 40;
/// Characters of a text that are looked at.
const SAMPLE_CHARS: usize = 400;

/// Detects languages among those a desk expects (`routing.detect_languages`), or among
/// all whatlang knows. Knowing the candidates makes one-line chat messages more often
/// right: among all languages "Your checkout doesn't work with my screen reader" reads
/// as Dutch.
#[derive(Debug, Clone)]
pub struct LanguageDetector {
    detector: whatlang::Detector,
    /// The ISO 639-1 tags allowed; empty: all.
    allowed: Vec<&'static str>,
}

impl Default for LanguageDetector {
    fn default() -> LanguageDetector {
        LanguageDetector {
            detector: whatlang::Detector::new(),
            allowed: Vec::new(),
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
        Ok(LanguageDetector {
            detector: whatlang::Detector::with_allowlist(langs),
            allowed,
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
        let letters = text.chars().filter(|c| c.is_alphabetic()).take(LONG_TEXT).count();
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
        iso_639_1(info.lang())
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
}
