//! Meta's webhook authentication: every POST carries `X-Hub-Signature-256:
//! sha256=<hex HMAC-SHA256(app secret, raw body)>`, and subscribing the webhook is a GET
//! handshake (`hub.mode=subscribe`, `hub.verify_token`, `hub.challenge`) answered by
//! echoing the challenge when the verify token matches.

use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// Longest challenge echoed back. Meta's are short digit strings; a long one is a request
/// trying to make us reflect content.
const MAX_CHALLENGE_LEN: usize = 128;

/// Why a POST's signature was refused (HTTP 401 either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the `X-Hub-Signature-256` header is missing")]
    Missing,
    #[error("`X-Hub-Signature-256` is not `sha256=` followed by 64 hex digits")]
    Malformed,
    #[error("`X-Hub-Signature-256` does not match the body for this app's secret")]
    Mismatch,
}

impl SignatureError {
    /// The stable code of the hook's JSON error.
    pub fn code(self) -> &'static str {
        match self {
            SignatureError::Missing => "missing_signature",
            SignatureError::Malformed | SignatureError::Mismatch => "invalid_signature",
        }
    }
}

fn tag(app_secret: &[u8], body: &[u8]) -> [u8; 32] {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(app_secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// The header value Meta would send for `body`: `sha256=<lowercase hex>`.
pub fn sign(app_secret: &[u8], body: &[u8]) -> String {
    let mut value = String::with_capacity(7 + 64);
    value.push_str("sha256=");
    for byte in tag(app_secret, body) {
        value.push(char::from(HEX[usize::from(byte >> 4)]));
        value.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    value
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// The 32-byte tag a header value carries.
fn parse_header(value: &str) -> Result<[u8; 32], SignatureError> {
    let hex = value
        .trim()
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?
        .as_bytes();
    if hex.len() != 64 {
        return Err(SignatureError::Malformed);
    }
    let mut tag = [0u8; 32];
    for (byte, pair) in tag.iter_mut().zip(hex.chunks_exact(2)) {
        let (Some(high), Some(low)) = (hex_digit(pair[0]), hex_digit(pair[1])) else {
            return Err(SignatureError::Malformed);
        };
        *byte = (high << 4) | low;
    }
    Ok(tag)
}

/// Whether the request carries the header at all (checked from the head, before the body
/// is read).
pub fn has_signature(headers: &HeaderMap) -> bool {
    headers.contains_key(SIGNATURE_HEADER)
}

/// Checks the raw body against the header, comparing in constant time.
pub fn verify(app_secret: &[u8], headers: &HeaderMap, body: &[u8]) -> Result<(), SignatureError> {
    let value = headers.get(SIGNATURE_HEADER).ok_or(SignatureError::Missing)?;
    let offered = parse_header(value.to_str().map_err(|_| SignatureError::Malformed)?)?;
    if bool::from(tag(app_secret, body).ct_eq(&offered)) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Why a subscription handshake was refused (HTTP 403, as Meta expects).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("not a subscription request (`hub.mode=subscribe`)")]
    NotSubscribe,
    #[error("`hub.verify_token` does not match this inbox's verify token")]
    WrongToken,
    #[error("`hub.challenge` is missing, empty or too long")]
    BadChallenge,
}

/// Answers the GET handshake: the challenge to echo as text, when the mode is
/// `subscribe` and the verify token matches (compared in constant time).
pub fn handshake(query: Option<&str>, verify_token: &[u8]) -> Result<String, HandshakeError> {
    let (mut mode, mut token, mut challenge) = (None, None, None);
    for pair in query.unwrap_or_default().split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match percent_decode(name).as_str() {
            "hub.mode" => &mut mode,
            "hub.verify_token" => &mut token,
            "hub.challenge" => &mut challenge,
            _ => continue,
        };
        // A repeated parameter is not a request Meta makes; the first one counts.
        if slot.is_none() {
            *slot = Some(percent_decode(value));
        }
    }
    if mode.as_deref() != Some("subscribe") {
        return Err(HandshakeError::NotSubscribe);
    }
    let token = token.ok_or(HandshakeError::WrongToken)?;
    // `ct_eq` on slices of different lengths is false without comparing: the length of
    // the verify token is not the secret part.
    if !bool::from(token.as_bytes().ct_eq(verify_token)) {
        return Err(HandshakeError::WrongToken);
    }
    match challenge {
        Some(challenge)
            if !challenge.is_empty()
                && challenge.len() <= MAX_CHALLENGE_LEN
                && challenge.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(challenge)
        }
        _ => Err(HandshakeError::BadChallenge),
    }
}

/// Decodes one `application/x-www-form-urlencoded` component (`+` is a space); a broken
/// escape is kept as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' => {
                match (
                    bytes.get(index + 1).copied().and_then(hex_digit),
                    bytes.get(index + 2).copied().and_then(hex_digit),
                ) {
                    (Some(high), Some(low)) => {
                        out.push((high << 4) | low);
                        index += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"app secret";
    const BODY: &[u8] = br#"{"object":"whatsapp_business_account","entry":[]}"#;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(SIGNATURE_HEADER, value.parse().unwrap());
        headers
    }

    #[test]
    fn accepts_the_signature_meta_computes() {
        let signature = sign(SECRET, BODY);
        assert!(signature.starts_with("sha256=") && signature.len() == 71);
        assert_eq!(verify(SECRET, &headers(&signature), BODY), Ok(()));
        // Hex digits in either case are the same tag.
        let upper = format!("sha256={}", signature["sha256=".len()..].to_uppercase());
        assert_eq!(verify(SECRET, &headers(&upper), BODY), Ok(()));
    }

    #[test]
    fn matches_a_known_hmac_sha256() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn refuses_a_wrong_body_or_secret() {
        let signature = sign(SECRET, BODY);
        assert_eq!(
            verify(SECRET, &headers(&signature), b"{}"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"other secret", &headers(&signature), BODY),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn refuses_a_missing_or_malformed_signature() {
        assert_eq!(verify(SECRET, &HeaderMap::new(), BODY), Err(SignatureError::Missing));
        assert!(!has_signature(&HeaderMap::new()));
        let hex = &sign(SECRET, BODY)["sha256=".len()..];
        for bad in [
            hex.to_owned(),
            format!("sha1={hex}"),
            format!("sha256={}", &hex[..62]),
            format!("sha256={hex}00"),
            format!("sha256={}zz", &hex[..62]),
            "sha256=".to_owned(),
        ] {
            assert_eq!(
                verify(SECRET, &headers(&bad), BODY),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        assert_eq!(SignatureError::Missing.code(), "missing_signature");
        assert_eq!(SignatureError::Malformed.code(), "invalid_signature");
    }

    #[test]
    fn echoes_the_challenge_when_the_verify_token_matches() {
        let query = "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhock";
        assert_eq!(handshake(Some(query), b"meatyhamhock"), Ok("1158201444".into()));
        let encoded = "hub.verify_token=a%20b%2Bc&hub.mode=subscribe&hub.challenge=42";
        assert_eq!(handshake(Some(encoded), b"a b+c"), Ok("42".into()));
    }

    #[test]
    fn refuses_any_other_handshake() {
        let token = b"meatyhamhock".as_slice();
        let cases = [
            (None, HandshakeError::NotSubscribe),
            (
                Some("hub.mode=unsubscribe&hub.verify_token=meatyhamhock&hub.challenge=1"),
                HandshakeError::NotSubscribe,
            ),
            (
                Some("hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1"),
                HandshakeError::WrongToken,
            ),
            (
                Some("hub.mode=subscribe&hub.verify_token=meatyhamhoc&hub.challenge=1"),
                HandshakeError::WrongToken,
            ),
            (Some("hub.mode=subscribe&hub.challenge=1"), HandshakeError::WrongToken),
            (
                Some("hub.mode=subscribe&hub.verify_token=meatyhamhock"),
                HandshakeError::BadChallenge,
            ),
            (
                Some("hub.mode=subscribe&hub.verify_token=meatyhamhock&hub.challenge=%3Cscript%3E%20x"),
                HandshakeError::BadChallenge,
            ),
        ];
        for (query, expected) in cases {
            assert_eq!(handshake(query, token), Err(expected), "{query:?}");
        }
    }

    #[test]
    fn decodes_form_components_and_keeps_broken_escapes() {
        assert_eq!(percent_decode("a+b%21"), "a b!");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
