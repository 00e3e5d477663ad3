//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): `webhook-id`,
//! `webhook-timestamp`, and `webhook-signature: v1,<base64 HMAC-SHA256>` over
//! `"{id}.{timestamp}.{body}"`, keyed with the bytes behind a `whsec_<base64>` secret.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// The most `webhook-signature` entries looked at. A sender signs once per key it holds
/// (two while it rotates); more is a request built to make us compute.
pub const MAX_SIGNATURES: usize = 8;

const SECRET_PREFIX: &str = "whsec_";
/// The spec recommends keys of 24 to 64 bytes; shorter ones are guessable.
const SECRET_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

/// A signing key. Its `Debug` never shows the key, so it cannot leak into logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// Parses `whsec_<base64>`; the message says what is wrong without echoing the key.
    pub fn parse(text: &str) -> Result<Secret, String> {
        let encoded = text
            .strip_prefix(SECRET_PREFIX)
            .ok_or_else(|| format!("must start with `{SECRET_PREFIX}` followed by base64"))?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| format!("the part after `{SECRET_PREFIX}` is not valid base64"))?;
        if !SECRET_BYTES.contains(&key.len()) {
            return Err(format!(
                "must decode to {} to {} bytes, got {}",
                SECRET_BYTES.start(),
                SECRET_BYTES.end(),
                key.len()
            ));
        }
        Ok(Secret(key))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC accepts keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The `webhook-signature` header value for one message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = self.mac(id, timestamp, body).finalize().into_bytes();
        format!("v1,{}", STANDARD.encode(tag))
    }

    fn tag(&self, id: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
        self.mac(id, timestamp, body).finalize().into_bytes().into()
    }
}

/// Why a request's signature was refused. Each maps to HTTP 401 with its own code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the `{0}` header is missing or not valid text")]
    MissingHeader(&'static str),
    #[error("the `webhook-timestamp` header is not a Unix time in seconds")]
    InvalidTimestamp,
    #[error("the `webhook-timestamp` is {age_secs} s away from now, more than the {tolerance_secs} s allowed")]
    StaleTimestamp { age_secs: i64, tolerance_secs: i64 },
    #[error("no `v1` signature in `webhook-signature` matches the body")]
    NoMatchingSignature,
    #[error("`webhook-signature` carries more than {MAX_SIGNATURES} signatures")]
    TooManySignatures,
}

impl VerifyError {
    /// A stable machine-readable code for the API's JSON error.
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::MissingHeader(_) => "missing_signature_header",
            VerifyError::InvalidTimestamp | VerifyError::StaleTimestamp { .. } => "invalid_timestamp",
            VerifyError::NoMatchingSignature => "invalid_signature",
            VerifyError::TooManySignatures => "too_many_signatures",
        }
    }
}

/// The verified `webhook-id` and `webhook-timestamp` of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub id: String,
    pub timestamp: i64,
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, VerifyError> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .ok_or(VerifyError::MissingHeader(name))
}

/// A request's signature headers, read and checked before its body is: a request whose
/// headers are missing, stale or overfull is refused without reading a byte more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    id: String,
    timestamp: i64,
    /// The `v1` tags offered; entries of other versions or not 32 bytes of base64 can
    /// never match and are left out.
    tags: Vec<[u8; 32]>,
}

/// Reads `webhook-id`, `webhook-timestamp` (within `tolerance_secs` of now) and
/// `webhook-signature` (at most [`MAX_SIGNATURES`] space-separated entries).
pub fn check_headers(headers: &HeaderMap, now_secs: i64, tolerance_secs: i64) -> Result<SignedHeaders, VerifyError> {
    let id = header(headers, HEADER_ID)?;
    let timestamp: i64 = header(headers, HEADER_TIMESTAMP)?
        .parse()
        .map_err(|_| VerifyError::InvalidTimestamp)?;
    let age_secs = now_secs.saturating_sub(timestamp);
    if age_secs.saturating_abs() > tolerance_secs {
        return Err(VerifyError::StaleTimestamp {
            age_secs,
            tolerance_secs,
        });
    }
    let signatures = header(headers, HEADER_SIGNATURE)?;
    if signatures.split_ascii_whitespace().nth(MAX_SIGNATURES).is_some() {
        return Err(VerifyError::TooManySignatures);
    }
    let tags = signatures
        .split_ascii_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|encoded| STANDARD.decode(encoded).ok())
        .filter_map(|tag| <[u8; 32]>::try_from(tag).ok())
        .collect();
    Ok(SignedHeaders {
        id: id.to_owned(),
        timestamp,
        tags,
    })
}

impl SignedHeaders {
    /// Checks the body against every secret the inbox accepts (the current one and any
    /// still honoured during a rotation): one HMAC per secret, whatever the number of
    /// tags, each tag compared in constant time. One match is enough.
    pub fn verify(self, secrets: &[Secret], body: &[u8]) -> Result<Verified, VerifyError> {
        if self.tags.is_empty() {
            return Err(VerifyError::NoMatchingSignature);
        }
        let matched = secrets.iter().any(|secret| {
            let expected = secret.tag(&self.id, self.timestamp, body);
            self.tags
                .iter()
                .fold(subtle::Choice::from(0), |any, tag| any | expected.ct_eq(tag))
                .into()
        });
        if matched {
            Ok(Verified {
                id: self.id,
                timestamp: self.timestamp,
            })
        } else {
            Err(VerifyError::NoMatchingSignature)
        }
    }
}

/// [`check_headers`] then [`SignedHeaders::verify`], for a request already read whole.
pub fn verify(
    secrets: &[Secret],
    headers: &HeaderMap,
    body: &[u8],
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<Verified, VerifyError> {
    check_headers(headers, now_secs, tolerance_secs)?.verify(secrets, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec's own test vector, copied into tests/fixtures/webhook with its source.
    const VECTOR: &str = include_str!("../../../tests/fixtures/webhook/standardwebhooks-signature-test-vector.json");

    struct Vector {
        secret: Secret,
        id: String,
        timestamp: i64,
        body: Vec<u8>,
        signature: String,
    }

    fn vector() -> Vector {
        let json: serde_json::Value = serde_json::from_str(VECTOR).unwrap();
        let headers = &json["headers"];
        Vector {
            secret: Secret::parse(json["secret"].as_str().unwrap()).unwrap(),
            id: headers["webhook-id"].as_str().unwrap().to_owned(),
            timestamp: headers["webhook-timestamp"].as_str().unwrap().parse().unwrap(),
            body: json["body"].as_str().unwrap().as_bytes().to_vec(),
            signature: headers["webhook-signature"].as_str().unwrap().to_owned(),
        }
    }

    fn headers(id: &str, timestamp: i64, signature: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_ID, id.parse().unwrap());
        headers.insert(HEADER_TIMESTAMP, timestamp.to_string().parse().unwrap());
        headers.insert(HEADER_SIGNATURE, signature.parse().unwrap());
        headers
    }

    fn other_secret() -> Secret {
        Secret::parse(&format!("whsec_{}", STANDARD.encode([7u8; 32]))).unwrap()
    }

    #[test]
    fn signs_the_spec_test_vector() {
        let v = vector();
        assert_eq!(v.secret.sign(&v.id, v.timestamp, &v.body), v.signature);
    }

    #[test]
    fn verifies_the_spec_test_vector_within_tolerance() {
        let v = vector();
        let verified = verify(
            std::slice::from_ref(&v.secret),
            &headers(&v.id, v.timestamp, &v.signature),
            &v.body,
            v.timestamp + 299,
            300,
        );
        assert_eq!(
            verified,
            Ok(Verified {
                id: v.id,
                timestamp: v.timestamp
            })
        );
    }

    #[test]
    fn refuses_a_timestamp_outside_tolerance_in_either_direction() {
        let v = vector();
        let h = headers(&v.id, v.timestamp, &v.signature);
        for now in [v.timestamp + 301, v.timestamp - 301] {
            let err = verify(std::slice::from_ref(&v.secret), &h, &v.body, now, 300).unwrap_err();
            assert!(matches!(err, VerifyError::StaleTimestamp { .. }), "{err:?}");
        }
    }

    #[test]
    fn refuses_a_changed_body_id_or_secret() {
        let v = vector();
        let good = headers(&v.id, v.timestamp, &v.signature);
        let now = v.timestamp;
        assert_eq!(
            verify(std::slice::from_ref(&v.secret), &good, b"{\"test\": 1}", now, 300),
            Err(VerifyError::NoMatchingSignature)
        );
        let other_id = headers("msg_other", v.timestamp, &v.signature);
        assert_eq!(
            verify(std::slice::from_ref(&v.secret), &other_id, &v.body, now, 300),
            Err(VerifyError::NoMatchingSignature)
        );
        assert_eq!(
            verify(&[other_secret()], &good, &v.body, now, 300),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn accepts_any_of_several_signatures_and_any_configured_secret() {
        let v = vector();
        let several = format!("v1,{} v2,abc {}", STANDARD.encode([0u8; 32]), v.signature);
        let h = headers(&v.id, v.timestamp, &several);
        assert!(verify(std::slice::from_ref(&v.secret), &h, &v.body, v.timestamp, 300).is_ok());
        // The inbox's previous secret still works while it is listed.
        let only_vector = headers(&v.id, v.timestamp, &v.signature);
        assert!(
            verify(
                &[other_secret(), v.secret.clone()],
                &only_vector,
                &v.body,
                v.timestamp,
                300
            )
            .is_ok()
        );
    }

    #[test]
    fn refuses_more_signatures_than_a_sender_uses_before_any_hmac() {
        let v = vector();
        let many = [v.signature.as_str(); MAX_SIGNATURES + 1].join(" ");
        let h = headers(&v.id, v.timestamp, &many);
        assert_eq!(check_headers(&h, v.timestamp, 300), Err(VerifyError::TooManySignatures));
        let enough = [v.signature.as_str(); MAX_SIGNATURES].join(" ");
        let h = headers(&v.id, v.timestamp, &enough);
        assert!(verify(std::slice::from_ref(&v.secret), &h, &v.body, v.timestamp, 300).is_ok());
    }

    #[test]
    fn tags_of_the_wrong_length_or_version_never_match() {
        let v = vector();
        let tag = v.signature.strip_prefix("v1,").unwrap();
        let short = format!("v1,{}", STANDARD.encode([0u8; 16]));
        for signature in [short, format!("v2,{tag}"), format!("v1a,{tag}"), "v1,".to_owned()] {
            let h = headers(&v.id, v.timestamp, &signature);
            assert_eq!(
                verify(std::slice::from_ref(&v.secret), &h, &v.body, v.timestamp, 300),
                Err(VerifyError::NoMatchingSignature),
                "{signature}"
            );
        }
    }

    #[test]
    fn names_the_missing_header() {
        let v = vector();
        let mut h = headers(&v.id, v.timestamp, &v.signature);
        h.remove(HEADER_SIGNATURE);
        assert_eq!(
            verify(&[v.secret], &h, &v.body, v.timestamp, 300),
            Err(VerifyError::MissingHeader(HEADER_SIGNATURE))
        );
    }

    #[test]
    fn rejects_malformed_secrets_without_echoing_them() {
        assert!(
            Secret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
                .unwrap_err()
                .contains("whsec_")
        );
        assert!(Secret::parse("whsec_***").unwrap_err().contains("base64"));
        let short = Secret::parse(&format!("whsec_{}", STANDARD.encode([1u8; 8]))).unwrap_err();
        assert!(short.contains("24 to 64 bytes"), "{short}");
        assert_eq!(format!("{:?}", other_secret()), "Secret(..)");
    }
}
