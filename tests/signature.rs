//! Every rule of the `X-Retell-Signature` check, pinned with its exact outcome.
//!
//! Shared fixtures: `KEY = "test-api-key"`, `NOW = 1_700_000_000_000`,
//! `SDK_BODY` the body of the official SDKs' tests, `SDK_DIGEST` its digest
//! and `SDK_HEADER` the full header value.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use retell_webhooks::{
    DEFAULT_TOLERANCE, KeyError, MAX_SIGNATURE_LEN, Malformed, SIGNATURE_HEADER, Signature,
    Verifier, VerifyError, sign, unix_ms, verify,
};
use sha2::{Digest as _, Sha256};

const KEY: &str = "test-api-key";
const NOW: u64 = 1_700_000_000_000;
const SDK_BODY: &[u8] = br#"{"event":"call_ended"}"#;
const SDK_DIGEST: &str = "07024cabe7dd8f6d1c6e4a8324ca92c812e6ad4a7ee506c04f7e462e3321823e";
const SDK_HEADER: &str =
    "v=1700000000000,d=07024cabe7dd8f6d1c6e4a8324ca92c812e6ad4a7ee506c04f7e462e3321823e";

/// Bodies that only byte-exact signing gets right, with their digests (all
/// with `KEY` and `v=1700000000000`): raw UTF-8 (an inverted question mark,
/// an emoji, U+2028, CJK), pretty-printed JSON, the digits `10` (the MAC input
/// of body `1` with timestamp `01700000000000`), no bytes at all, and a byte
/// that is not UTF-8.
const UNICODE_BODY: &[u8] = b"{\"event\":\"call_ended\",\"call\":{\"call_id\":\"c1\",\"transcript\":\"Agent: \xc2\xbfSe\xc3\xb1or? \xf0\x9f\x98\x80 \xe2\x80\xa8 \xe6\x97\xa5\xe6\x9c\xac\"}}";
const UNICODE_DIGEST: &str = "7d28158c7c0529f0af877394f5d65fbddd976a80339bd39605852c36f5ba2622";
const PRETTY_BODY: &[u8] =
    b"{\n  \"event\" : \"call_started\",\n  \"call\" : { \"call_id\" : \"c1\" }\n}\n";
const PRETTY_DIGEST: &str = "93bf74cdcd6c30d2725bb5e3534bcbee9edfc01bc19aa527e91a9481871e6467";
const DIGITS_BODY: &[u8] = b"10";
const DIGITS_DIGEST: &str = "17da0fe8ac6f84da45e7f206e20ee8742cadcd408f61fe0e63657535991d3e49";
const EMPTY_BODY: &[u8] = b"";
const EMPTY_DIGEST: &str = "3c2757e9ff3f06dc2b4957bb8f8018c615ab2e0c6f522e1de8537bf316688224";
const NOT_UTF8_BODY: &[u8] = b"{\"event\":\"call_ended\",\"x\":\"\xff\"}";
const NOT_UTF8_DIGEST: &str = "b89b21e05a42e0776c2532a76198a98dc8d9bd14fedabd9bc0479069a1278b66";

fn verifier() -> Verifier {
    Verifier::new(KEY).unwrap()
}

/// Verifies `header` over `body` with `KEY` at `NOW`.
fn check(body: &[u8], header: &str) -> Result<(), VerifyError> {
    verifier().verify_at(body, header, NOW)
}

fn check_sdk_body(header: &str) -> Result<(), VerifyError> {
    check(SDK_BODY, header)
}

fn malformed(why: Malformed) -> Result<(), VerifyError> {
    Err(VerifyError::Malformed(why))
}

fn header(ts: &str, digest: &str) -> String {
    format!("v={ts},d={digest}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

// ---------------------------------------------------------------------------
// Published vectors
// ---------------------------------------------------------------------------

#[test]
fn json_vectors_sign_and_verify() {
    let text = fs::read_to_string(fixture("signature-vectors.json")).unwrap();
    let vectors: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(vectors.len(), 4);
    for v in &vectors {
        let name = v["name"].as_str().unwrap();
        let key = v["api_key"].as_str().unwrap();
        let ts = v["timestamp_ms"].as_u64().unwrap();
        let expected = v["expected_header"].as_str().unwrap();
        let body = match v.get("body_file").and_then(|f| f.as_str()) {
            Some(file) => fs::read(fixture(file)).unwrap(),
            None => v["body"].as_str().unwrap().as_bytes().to_vec(),
        };
        // The body bytes are exactly the ones the vector was computed over.
        assert_eq!(
            body.len() as u64,
            v["body_len_bytes"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            hex(&Sha256::digest(&body)),
            v["body_sha256"].as_str().unwrap(),
            "{name}"
        );
        let mut input = body.clone();
        input.extend_from_slice(ts.to_string().as_bytes());
        assert_eq!(
            hex(&Sha256::digest(&input)),
            v["hmac_input_sha256"].as_str().unwrap(),
            "{name}"
        );
        if let Some(inline) = v.get("body").and_then(|b| b.as_str()) {
            assert_eq!(inline.as_bytes(), body.as_slice(), "{name}");
        }

        assert_eq!(sign(&body, key, ts), expected, "{name}");
        let verifier = Verifier::new(key).unwrap();
        assert_eq!(verifier.verify_at(&body, expected, ts), Ok(()), "{name}");
        assert_eq!(
            verifier.verify_at(&body, expected.as_bytes(), ts + 300_000),
            Ok(()),
            "{name}"
        );
        let parsed: Signature = expected.parse().unwrap();
        assert_eq!(parsed.timestamp_ms(), ts, "{name}");
        assert_eq!(
            verifier.verify_at(&body, expected, ts - 300_000),
            Ok(()),
            "{name}"
        );
        // The same vector with another key fails.
        let other = Verifier::new("key_other").unwrap();
        assert_eq!(
            other.verify_at(&body, expected, ts),
            Err(VerifyError::Mismatch),
            "{name}"
        );
    }
}

#[test]
fn known_digests_of_unusual_bodies() {
    assert_eq!(UNICODE_BODY.len(), 94);
    for (body, digest) in [
        (UNICODE_BODY, UNICODE_DIGEST),
        (PRETTY_BODY, PRETTY_DIGEST),
        (DIGITS_BODY, DIGITS_DIGEST),
        (EMPTY_BODY, EMPTY_DIGEST),
        (NOT_UTF8_BODY, NOT_UTF8_DIGEST),
    ] {
        let expected = header("1700000000000", digest);
        assert_eq!(sign(body, KEY, NOW), expected);
        assert_eq!(check(body, &expected), Ok(()));
    }
}

#[test]
fn sign_output_shape() {
    let h = sign(SDK_BODY, KEY, NOW);
    assert_eq!(h, SDK_HEADER);
    assert_eq!(h.len(), 82);
    assert_eq!(sign(b"", KEY, 0), sign(b"", KEY, 0));
    assert!(sign(b"", KEY, 0).starts_with("v=0,d="));
    assert!(sign(b"", KEY, u64::MAX).starts_with("v=18446744073709551615,d="));
    assert_eq!(SIGNATURE_HEADER, "x-retell-signature");
    assert_eq!(MAX_SIGNATURE_LEN, 128);
}

// ---------------------------------------------------------------------------
// Header parsing
// ---------------------------------------------------------------------------

#[test]
fn the_sdk_header_verifies() {
    assert_eq!(check_sdk_body(SDK_HEADER), Ok(()));
}

#[test]
fn an_empty_or_blank_header_is_a_missing_signature() {
    assert_eq!(check_sdk_body(""), Err(VerifyError::MissingSignature));
    assert_eq!(check_sdk_body("   \t "), Err(VerifyError::MissingSignature));
    assert_eq!(
        verifier().verify_at(SDK_BODY, b"", NOW),
        Err(VerifyError::MissingSignature)
    );
}

#[test]
fn two_signatures_merged_with_a_comma_are_refused() {
    let merged = format!("{SDK_HEADER}, {SDK_HEADER}");
    assert_eq!(
        check_sdk_body(&merged),
        Err(VerifyError::SignatureTooLong { len: 166 })
    );
    let merged = format!("{SDK_HEADER},{SDK_HEADER}");
    assert_eq!(
        check_sdk_body(&merged),
        Err(VerifyError::SignatureTooLong { len: 165 })
    );
    // Short enough to pass the length cap, the extra value is still refused.
    let merged = format!("{SDK_HEADER},v=1");
    assert_eq!(
        check_sdk_body(&merged),
        malformed(Malformed::DigestLength { len: 68 })
    );
}

#[test]
fn the_sdk_malformed_header_cases() {
    assert_eq!(
        check_sdk_body("v=1700000000000"),
        malformed(Malformed::MissingDigest)
    );
    assert_eq!(
        check_sdk_body(&format!("d={SDK_DIGEST},v=1700000000000")),
        malformed(Malformed::MissingTimestamp)
    );
    assert_eq!(
        check_sdk_body(&format!("{SDK_HEADER},extra=value")),
        malformed(Malformed::DigestLength { len: 76 })
    );
    assert_eq!(
        check_sdk_body("v=1700000000000,"),
        malformed(Malformed::MissingDigest)
    );
    assert_eq!(
        check_sdk_body("v=1700000000000,d"),
        malformed(Malformed::MissingDigest)
    );
    assert_eq!(
        check_sdk_body(&format!("v=1700000000000;d={SDK_DIGEST}")),
        malformed(Malformed::MissingDigest)
    );
    assert_eq!(check_sdk_body("v="), malformed(Malformed::MissingDigest));
    assert_eq!(check_sdk_body("v"), malformed(Malformed::MissingTimestamp));
}

#[test]
fn text_before_or_after_the_signature_is_refused() {
    assert_eq!(
        check_sdk_body(&format!("prefix-{SDK_HEADER}")),
        malformed(Malformed::MissingTimestamp)
    );
    assert_eq!(
        check_sdk_body(&format!("{SDK_HEADER}-suffix")),
        malformed(Malformed::DigestLength { len: 71 })
    );
    assert_eq!(
        check_sdk_body(&format!("xv=1700000000000,d={SDK_DIGEST}")),
        malformed(Malformed::MissingTimestamp)
    );
    assert_eq!(
        check_sdk_body(&format!("{SDK_HEADER}0")),
        malformed(Malformed::DigestLength { len: 65 })
    );
}

#[test]
fn outer_spaces_and_tabs_are_trimmed() {
    assert_eq!(check_sdk_body(&format!("  {SDK_HEADER}\t")), Ok(()));
    assert_eq!(check_sdk_body(&format!("\t \t{SDK_HEADER}   ")), Ok(()));
    // The length cap applies after trimming.
    let padded = format!("{}{SDK_HEADER}{}", " ".repeat(500), "\t".repeat(500));
    assert_eq!(check_sdk_body(&padded), Ok(()));
}

#[test]
fn inner_whitespace_and_line_breaks_are_refused() {
    assert_eq!(
        check_sdk_body(&format!("v=1700000000000, d={SDK_DIGEST}")),
        malformed(Malformed::MissingDigest)
    );
    assert_eq!(
        check_sdk_body(&format!("v = 1700000000000,d={SDK_DIGEST}")),
        malformed(Malformed::MissingTimestamp)
    );
    assert_eq!(
        check_sdk_body(&format!("v= 1700000000000,d={SDK_DIGEST}")),
        malformed(Malformed::TimestampNotDigits)
    );
    assert_eq!(
        check_sdk_body(&format!("v=1700000000000 ,d={SDK_DIGEST}")),
        malformed(Malformed::TimestampNotDigits)
    );
    assert_eq!(
        check_sdk_body(&format!("v=1700000000000,d= {SDK_DIGEST}")),
        malformed(Malformed::DigestLength { len: 65 })
    );
    assert_eq!(
        check_sdk_body(&format!("{SDK_HEADER}\n")),
        malformed(Malformed::DigestLength { len: 65 })
    );
    assert_eq!(
        check_sdk_body(&format!("{SDK_HEADER}\r\n")),
        malformed(Malformed::DigestLength { len: 66 })
    );
    assert_eq!(
        check_sdk_body(&format!("\r\n{SDK_HEADER}")),
        malformed(Malformed::MissingTimestamp)
    );
    assert_eq!(
        check_sdk_body(&format!("v=1700000000000,\r\nd={SDK_DIGEST}")),
        malformed(Malformed::MissingDigest)
    );
    assert_eq!(
        check_sdk_body(&format!("v=1700000000000\r\n,d={SDK_DIGEST}")),
        malformed(Malformed::TimestampNotDigits)
    );
    // A space inside the digest keeps the length at 64 but is not hex.
    let mut spaced = SDK_DIGEST.to_owned();
    spaced.replace_range(10..11, " ");
    assert_eq!(
        check_sdk_body(&header("1700000000000", &spaced)),
        malformed(Malformed::DigestNotHex)
    );
    // Other whitespace is not trimmed at the edges either.
    assert_eq!(
        check_sdk_body(&format!("\u{a0}{SDK_HEADER}")),
        malformed(Malformed::MissingTimestamp)
    );
    assert_eq!(
        check_sdk_body(&format!("\x0b{SDK_HEADER}")),
        malformed(Malformed::MissingTimestamp)
    );
}

#[test]
fn upper_and_mixed_case_hex_digests_are_accepted() {
    assert_eq!(
        check_sdk_body(&header("1700000000000", &SDK_DIGEST.to_ascii_uppercase())),
        Ok(())
    );
    let mixed: String = SDK_DIGEST
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 0 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect();
    assert_eq!(check_sdk_body(&header("1700000000000", &mixed)), Ok(()));
}

#[test]
fn a_digest_of_any_length_but_64_is_refused() {
    for (len, expected) in [
        (0, malformed(Malformed::DigestLength { len: 0 })),
        (2, malformed(Malformed::DigestLength { len: 2 })),
        (62, malformed(Malformed::DigestLength { len: 62 })),
        (63, malformed(Malformed::DigestLength { len: 63 })),
        (65, malformed(Malformed::DigestLength { len: 65 })),
        // 2 + 13 + 3 + 128 = 146 bytes: over the length cap before any hex work.
        (128, Err(VerifyError::SignatureTooLong { len: 146 })),
    ] {
        let digest: String = SDK_DIGEST.chars().cycle().take(len).collect();
        assert_eq!(
            check_sdk_body(&header("1700000000000", &digest)),
            expected,
            "{len}"
        );
    }
    // The longest digest that still fits under the cap is refused by length.
    let digest: String = SDK_DIGEST.chars().cycle().take(110).collect();
    assert_eq!(
        check_sdk_body(&header("1700000000000", &digest)),
        malformed(Malformed::DigestLength { len: 110 })
    );
    // A prefix of the right digest never matches.
    assert_eq!(
        check_sdk_body(&header("1700000000000", &SDK_DIGEST[..32])),
        malformed(Malformed::DigestLength { len: 32 })
    );
}

#[test]
fn a_digest_that_is_not_hex_is_refused() {
    assert_eq!(
        check_sdk_body(&header("1700000000000", &"g".repeat(64))),
        malformed(Malformed::DigestNotHex)
    );
    assert_eq!(
        check_sdk_body(&header("1700000000000", &format!("0x{SDK_DIGEST}"))),
        malformed(Malformed::DigestLength { len: 66 })
    );
    assert_eq!(
        check_sdk_body(&header("1700000000000", &format!("0x{}", &SDK_DIGEST[2..]))),
        malformed(Malformed::DigestNotHex)
    );
    assert_eq!(
        check_sdk_body("v=1700000000000,d=not-hex"),
        malformed(Malformed::DigestLength { len: 7 })
    );
    // Non-ASCII inside a 64-byte digest (2-byte char keeps the byte length at 64).
    let mut digest = SDK_DIGEST[..62].to_owned();
    digest.push('é');
    assert_eq!(
        check_sdk_body(&header("1700000000000", &digest)),
        malformed(Malformed::DigestNotHex)
    );
}

#[test]
fn a_timestamp_with_a_sign_a_leading_zero_or_decimals_is_refused() {
    let cases = [
        ("-1700000000000", Malformed::TimestampNotDigits),
        ("+1700000000000", Malformed::TimestampNotDigits),
        ("01700000000000", Malformed::TimestampLeadingZero),
        ("00", Malformed::TimestampLeadingZero),
        ("1.7e12", Malformed::TimestampNotDigits),
        ("1700000000000.0", Malformed::TimestampNotDigits),
        ("1_700_000_000_000", Malformed::TimestampNotDigits),
        ("0x194", Malformed::TimestampLeadingZero),
        ("", Malformed::EmptyTimestamp),
    ];
    for (ts, why) in cases {
        assert_eq!(
            check_sdk_body(&header(ts, SDK_DIGEST)),
            malformed(why),
            "{ts:?}"
        );
    }
    // A single `0` is canonical: it parses, then fails the window.
    assert!(matches!(
        check_sdk_body(&header("0", SDK_DIGEST)),
        Err(VerifyError::TooOld {
            looks_like_seconds: true,
            ..
        })
    ));
}

#[test]
fn non_ascii_digits_are_not_digits() {
    for ts in [
        "١٧٠٠٠٠٠٠٠٠٠٠٠",                // Arabic-Indic
        "۱۷۰۰۰۰۰۰۰۰۰۰۰",                // Extended Arabic-Indic
        "１７００００００００００００", // fullwidth
        "१७००००००००००००",               // Devanagari
        "17000000000０٠",
    ] {
        assert_eq!(
            check_sdk_body(&header(ts, SDK_DIGEST)),
            malformed(Malformed::TimestampNotDigits),
            "{ts}"
        );
    }
}

#[test]
fn timestamps_of_over_16_digits_are_refused() {
    assert_eq!(
        check_sdk_body(&header("18446744073709551615", SDK_DIGEST)),
        malformed(Malformed::TimestampTooLong { digits: 20 })
    );
    assert_eq!(
        check_sdk_body(&header("18446744073709551616", SDK_DIGEST)),
        malformed(Malformed::TimestampTooLong { digits: 20 })
    );
    assert_eq!(
        check_sdk_body(&header("9223372036854775808", SDK_DIGEST)),
        malformed(Malformed::TimestampTooLong { digits: 19 })
    );
    assert_eq!(
        check_sdk_body(&header("999999999999999999999999", SDK_DIGEST)),
        malformed(Malformed::TimestampTooLong { digits: 24 })
    );
    assert_eq!(
        check_sdk_body(&header("17000000000000", SDK_DIGEST)),
        Err(VerifyError::TooNew {
            skew_ms: 15_300_000_000_000,
            tolerance_ms: 300_000
        })
    );
    assert_eq!(
        check_sdk_body(&header(&"9".repeat(17), SDK_DIGEST)),
        malformed(Malformed::TimestampTooLong { digits: 17 })
    );
    // 16 digits is the most accepted; it parses and fails the window.
    assert!(matches!(
        check_sdk_body(&header(&"9".repeat(16), SDK_DIGEST)),
        Err(VerifyError::TooNew { .. })
    ));
    let nines = "9".repeat(1000);
    assert_eq!(
        check_sdk_body(&header(&nines, SDK_DIGEST)),
        Err(VerifyError::SignatureTooLong { len: 1069 })
    );
    assert_eq!(
        check_sdk_body(&format!("v={nines}")),
        Err(VerifyError::SignatureTooLong { len: 1002 })
    );
}

#[test]
fn raw_non_ascii_header_bytes_are_refused() {
    let v = verifier();
    let mut raw = b"v=17000000000".to_vec();
    raw.extend_from_slice(b"\xc3\xa9,d=");
    raw.extend_from_slice(SDK_DIGEST.as_bytes());
    assert_eq!(
        v.verify_at(SDK_BODY, &raw, NOW),
        malformed(Malformed::TimestampNotDigits)
    );
    let mut raw = SDK_HEADER.as_bytes().to_vec();
    raw.truncate(raw.len() - 2);
    raw.extend_from_slice(b"\xc3\xa9");
    assert_eq!(
        v.verify_at(SDK_BODY, &raw, NOW),
        malformed(Malformed::DigestNotHex)
    );
    // Invalid UTF-8 is just bytes outside the grammar.
    let mut raw = SDK_HEADER.as_bytes().to_vec();
    raw[20] = 0xff;
    assert_eq!(
        v.verify_at(SDK_BODY, &raw, NOW),
        malformed(Malformed::DigestNotHex)
    );
    assert_eq!(
        v.verify_at(SDK_BODY, b"\xffv=1", NOW),
        malformed(Malformed::MissingTimestamp)
    );
    assert_eq!(
        Signature::parse_bytes(b"v=1\x00,d=").err(),
        Some(VerifyError::Malformed(Malformed::TimestampNotDigits))
    );
}

#[test]
fn long_headers_are_refused_by_length_first() {
    let long = format!("{SDK_HEADER}{}", "a".repeat(8 * 1024 - SDK_HEADER.len()));
    assert_eq!(long.len(), 8192);
    assert_eq!(
        check_sdk_body(&long),
        Err(VerifyError::SignatureTooLong { len: 8192 })
    );
    // Garbage that would fail every other rule is still reported by length first.
    let garbage = "\u{1F600}".repeat(2048);
    assert_eq!(
        check_sdk_body(&garbage),
        Err(VerifyError::SignatureTooLong { len: 8192 })
    );
    // Exactly at the cap is parsed; one more byte is not.
    let at_cap = format!("v=1,d={}", "0".repeat(MAX_SIGNATURE_LEN - 6));
    assert_eq!(
        check_sdk_body(&at_cap),
        malformed(Malformed::DigestLength { len: 122 })
    );
    let over = format!("v=1,d={}", "0".repeat(MAX_SIGNATURE_LEN - 5));
    assert_eq!(
        check_sdk_body(&over),
        Err(VerifyError::SignatureTooLong { len: 129 })
    );
}

#[test]
fn upper_case_v_and_d_are_refused() {
    assert_eq!(
        check_sdk_body(&format!("V=1700000000000,D={SDK_DIGEST}")),
        malformed(Malformed::MissingTimestamp)
    );
    assert_eq!(
        check_sdk_body(&format!("V=1700000000000,d={SDK_DIGEST}")),
        malformed(Malformed::MissingTimestamp)
    );
    assert_eq!(
        check_sdk_body(&format!("v=1700000000000,D={SDK_DIGEST}")),
        malformed(Malformed::MissingDigest)
    );
}

#[test]
fn signature_parse_api() {
    let sig: Signature = SDK_HEADER.parse().unwrap();
    assert_eq!(sig.timestamp_ms(), NOW);
    assert_eq!(Signature::parse(SDK_HEADER).unwrap().timestamp_ms(), NOW);
    assert_eq!(
        Signature::parse_bytes(SDK_HEADER.as_bytes())
            .unwrap()
            .timestamp_ms(),
        NOW
    );
    assert_eq!(
        "v=1".parse::<Signature>().err(),
        Some(VerifyError::Malformed(Malformed::MissingDigest))
    );
    let clone = sig.clone();
    assert!(verifier().digest_matches(SDK_BODY, &clone));
}

// ---------------------------------------------------------------------------
// Cryptographic check
// ---------------------------------------------------------------------------

#[test]
fn the_sdk_vector_signs_and_verifies() {
    assert_eq!(check_sdk_body(SDK_HEADER), Ok(()));
    assert_eq!(sign(SDK_BODY, KEY, NOW), SDK_HEADER);
}

#[test]
fn a_byte_added_to_the_body_is_a_mismatch() {
    assert_eq!(
        check(br#"{"event":"call_ended"} "#, SDK_HEADER),
        Err(VerifyError::Mismatch)
    );
    assert_eq!(
        check(b"{\"event\":\"call_ended\"}\n", SDK_HEADER),
        Err(VerifyError::Mismatch)
    );
    assert_eq!(check(b"", SDK_HEADER), Err(VerifyError::Mismatch));
}

#[test]
fn another_key_is_a_mismatch() {
    let v = Verifier::new("wrong-api-key").unwrap();
    assert_eq!(
        v.verify_at(SDK_BODY, SDK_HEADER, NOW),
        Err(VerifyError::Mismatch)
    );
    // Keys differing only in case are different keys.
    let v = Verifier::new("TEST-API-KEY").unwrap();
    assert_eq!(
        v.verify_at(SDK_BODY, SDK_HEADER, NOW),
        Err(VerifyError::Mismatch)
    );
}

#[test]
fn every_single_hex_digit_change_is_a_mismatch() {
    let v = verifier();
    let mut cases = 0;
    for pos in 0..64 {
        let original = u8::from_str_radix(&SDK_DIGEST[pos..=pos], 16).unwrap();
        for value in (0u8..16).filter(|&x| x != original) {
            let mut digest = SDK_DIGEST.to_owned();
            digest.replace_range(pos..=pos, &format!("{value:x}"));
            assert_eq!(
                v.verify_at(SDK_BODY, header("1700000000000", &digest), NOW),
                Err(VerifyError::Mismatch),
                "position {pos}, digit {value:x}"
            );
            cases += 1;
        }
    }
    assert_eq!(cases, 64 * 15);
}

/// Escapes every non-ASCII character as `\uXXXX` (surrogate pairs above the
/// BMP), the way Python's `json.dumps` does by default.
fn ascii_escape(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

#[test]
fn the_raw_bytes_are_verified_not_a_re_encoding() {
    let sig = header("1700000000000", UNICODE_DIGEST);
    assert_eq!(check(UNICODE_BODY, &sig), Ok(()));
    let escaped = ascii_escape(std::str::from_utf8(UNICODE_BODY).unwrap());
    assert!(escaped.is_ascii());
    assert!(escaped.contains("\\u00bf") && escaped.contains("\\ud83d\\ude00"));
    // Same JSON value, different bytes: must fail.
    let reparsed: serde_json::Value = serde_json::from_str(&escaped).unwrap();
    let original: serde_json::Value = serde_json::from_slice(UNICODE_BODY).unwrap();
    assert_eq!(reparsed, original);
    assert_eq!(check(escaped.as_bytes(), &sig), Err(VerifyError::Mismatch));
    // Re-serializing the parsed value also changes the bytes (key order).
    let reserialized = serde_json::to_vec(&original).unwrap();
    assert_ne!(reserialized.as_slice(), UNICODE_BODY);
    assert_eq!(check(&reserialized, &sig), Err(VerifyError::Mismatch));
}

#[test]
fn pretty_printed_bodies_are_not_normalized() {
    let sig = header("1700000000000", PRETTY_DIGEST);
    assert_eq!(check(PRETTY_BODY, &sig), Ok(()));
    let compact = br#"{"event":"call_started","call":{"call_id":"c1"}}"#;
    assert_eq!(check(compact, &sig), Err(VerifyError::Mismatch));
    assert_eq!(
        check(&PRETTY_BODY[..PRETTY_BODY.len() - 1], &sig),
        Err(VerifyError::Mismatch)
    );
}

#[test]
fn invalid_utf8_and_empty_bodies_verify() {
    assert_eq!(
        check(NOT_UTF8_BODY, &header("1700000000000", NOT_UTF8_DIGEST)),
        Ok(())
    );
    assert_eq!(
        check(EMPTY_BODY, &header("1700000000000", EMPTY_DIGEST)),
        Ok(())
    );
    assert_eq!(
        check(b" ", &header("1700000000000", EMPTY_DIGEST)),
        Err(VerifyError::Mismatch)
    );
}

#[test]
fn empty_or_padded_keys_are_refused_at_construction() {
    assert_eq!(Verifier::new("").unwrap_err(), KeyError::Empty { index: 0 });
    for key in [
        "   ",
        "test-api-key\n",
        " test-api-key",
        "test-api-key\t",
        "\r\ntest-api-key",
        "test-api-key\u{a0}",
    ] {
        assert_eq!(
            Verifier::new(key).unwrap_err(),
            KeyError::Whitespace { index: 0 },
            "{key:?}"
        );
    }
    assert_eq!(
        Verifier::with_keys(Vec::<String>::new()).unwrap_err(),
        KeyError::NoKeys
    );
    assert_eq!(
        Verifier::with_keys(["ok", "also-ok", ""]).unwrap_err(),
        KeyError::Empty { index: 2 }
    );
    assert_eq!(
        Verifier::with_keys(["ok", " bad"]).unwrap_err(),
        KeyError::Whitespace { index: 1 }
    );
    // Inner spaces are part of the key.
    assert!(Verifier::new("key with spaces").is_ok());
    // The one-shot function maps a bad key to its own variant.
    assert_eq!(
        verify(SDK_BODY, "", SDK_HEADER),
        Err(VerifyError::InvalidKey)
    );
    assert_eq!(
        verify(SDK_BODY, " x", SDK_HEADER),
        Err(VerifyError::InvalidKey)
    );
}

#[test]
fn any_configured_key_verifies() {
    let v = Verifier::with_keys(["key_old", "key_new"]).unwrap();
    assert_eq!(v.key_count(), 2);
    assert_eq!(
        v.verify_at(SDK_BODY, sign(SDK_BODY, "key_old", NOW), NOW),
        Ok(())
    );
    assert_eq!(
        v.verify_at(SDK_BODY, sign(SDK_BODY, "key_new", NOW), NOW),
        Ok(())
    );
    assert_eq!(
        v.verify_at(SDK_BODY, sign(SDK_BODY, "key_other", NOW), NOW),
        Err(VerifyError::Mismatch)
    );
    // Owned strings work as well, and the order of keys does not matter.
    let v = Verifier::with_keys(vec![String::from("key_new"), String::from("key_old")]).unwrap();
    assert_eq!(
        v.verify_at(SDK_BODY, sign(SDK_BODY, "key_old", NOW), NOW),
        Ok(())
    );
    // Long keys (over the 64-byte SHA-256 block) are hashed first, as in RFC 2104.
    let long = "k".repeat(200);
    let v = Verifier::with_keys([KEY, long.as_str()]).unwrap();
    assert_eq!(
        v.verify_at(SDK_BODY, sign(SDK_BODY, &long, NOW), NOW),
        Ok(())
    );
    assert_eq!(v.verify_at(SDK_BODY, SDK_HEADER, NOW), Ok(()));
}

#[test]
fn digits_cannot_move_between_body_and_timestamp() {
    // "1" ‖ "01700000000000" is the same MAC input as "10" ‖ "1700000000000".
    assert_eq!(
        check(DIGITS_BODY, &header("1700000000000", DIGITS_DIGEST)),
        Ok(())
    );
    assert_eq!(
        check(b"1", &header("01700000000000", DIGITS_DIGEST)),
        malformed(Malformed::TimestampLeadingZero)
    );
    // Shifting the other way needs `v=170000000000`, which the window refuses.
    assert!(matches!(
        check(b"100", &header("170000000000", DIGITS_DIGEST)),
        Err(VerifyError::TooOld { .. })
    ));
}

#[test]
fn a_plain_sha256_is_a_mismatch() {
    let mut input = KEY.as_bytes().to_vec();
    input.extend_from_slice(SDK_BODY);
    input.extend_from_slice(b"1700000000000");
    let plain = hex(&Sha256::digest(&input));
    assert_eq!(
        check_sdk_body(&header("1700000000000", &plain)),
        Err(VerifyError::Mismatch)
    );
    let mut input = SDK_BODY.to_vec();
    input.extend_from_slice(b"1700000000000");
    let unkeyed = hex(&Sha256::digest(&input));
    assert_eq!(
        check_sdk_body(&header("1700000000000", &unkeyed)),
        Err(VerifyError::Mismatch)
    );
}

#[test]
fn digest_matches_ignores_window() {
    let v = verifier();
    let sig: Signature = SDK_HEADER.parse().unwrap();
    assert!(v.digest_matches(SDK_BODY, &sig));
    assert!(!v.digest_matches(b"other", &sig));
    assert!(matches!(
        v.verify_at(SDK_BODY, SDK_HEADER, NOW + 10_000_000),
        Err(VerifyError::TooOld { .. })
    ));
}

// ---------------------------------------------------------------------------
// Timestamp window
// ---------------------------------------------------------------------------

fn at(ts: u64) -> Result<(), VerifyError> {
    verifier().verify_at(SDK_BODY, sign(SDK_BODY, KEY, ts), NOW)
}

#[test]
fn a_signature_made_now_verifies() {
    assert_eq!(at(NOW), Ok(()));
}

#[test]
fn five_minutes_old_is_the_oldest_accepted() {
    assert_eq!(at(NOW - 300_000), Ok(()));
    assert_eq!(
        at(NOW - 300_001),
        Err(VerifyError::TooOld {
            skew_ms: 300_001,
            tolerance_ms: 300_000,
            looks_like_seconds: false
        })
    );
}

#[test]
fn five_minutes_ahead_is_the_furthest_accepted() {
    assert_eq!(at(NOW + 300_000), Ok(()));
    assert_eq!(
        at(NOW + 300_001),
        Err(VerifyError::TooNew {
            skew_ms: 300_001,
            tolerance_ms: 300_000
        })
    );
}

#[test]
fn sdk_window_cases_move_now() {
    // The SDK suites move "now" rather than the signature.
    let v = verifier();
    assert_eq!(v.verify_at(SDK_BODY, SDK_HEADER, NOW + 300_000), Ok(()));
    assert_eq!(v.verify_at(SDK_BODY, SDK_HEADER, NOW - 300_000), Ok(()));
    assert_eq!(
        v.verify_at(SDK_BODY, SDK_HEADER, NOW + 300_001),
        Err(VerifyError::TooOld {
            skew_ms: 300_001,
            tolerance_ms: 300_000,
            looks_like_seconds: false
        })
    );
    assert_eq!(
        v.verify_at(SDK_BODY, SDK_HEADER, NOW - 300_001),
        Err(VerifyError::TooNew {
            skew_ms: 300_001,
            tolerance_ms: 300_000
        })
    );
}

#[test]
fn window_checked_before_digest() {
    // A stale request with a wrong digest reports the window, not the digest.
    let wrong = header("1700000000000", &"0".repeat(64));
    assert!(matches!(
        verifier().verify_at(SDK_BODY, &wrong, NOW + 300_001),
        Err(VerifyError::TooOld { .. })
    ));
    assert_eq!(
        verifier().verify_at(SDK_BODY, &wrong, NOW),
        Err(VerifyError::Mismatch)
    );
}

#[test]
fn a_timestamp_in_seconds_gets_a_hint() {
    let err = at(1_700_000_000).unwrap_err();
    assert_eq!(
        err,
        VerifyError::TooOld {
            skew_ms: NOW - 1_700_000_000,
            tolerance_ms: 300_000,
            looks_like_seconds: true
        }
    );
    assert!(err.to_string().contains("looks like seconds"));
    // 11 digits still gets the hint; 12 does not.
    assert!(matches!(
        at(99_999_999_999),
        Err(VerifyError::TooOld {
            looks_like_seconds: true,
            ..
        })
    ));
    let err = at(100_000_000_000).unwrap_err();
    assert!(matches!(
        err,
        VerifyError::TooOld {
            looks_like_seconds: false,
            ..
        }
    ));
    assert!(!err.to_string().contains("seconds"));
}

#[test]
fn zero_tolerance_accepts_only_the_same_millisecond() {
    let v = verifier().with_tolerance(Duration::ZERO);
    assert_eq!(v.tolerance(), Duration::ZERO);
    assert_eq!(v.verify_at(SDK_BODY, SDK_HEADER, NOW), Ok(()));
    assert_eq!(
        v.verify_at(SDK_BODY, SDK_HEADER, NOW - 1),
        Err(VerifyError::TooNew {
            skew_ms: 1,
            tolerance_ms: 0
        })
    );
    assert_eq!(
        v.verify_at(SDK_BODY, SDK_HEADER, NOW + 1),
        Err(VerifyError::TooOld {
            skew_ms: 1,
            tolerance_ms: 0,
            looks_like_seconds: false
        })
    );
    assert_eq!(
        v.verify_at(SDK_BODY, sign(SDK_BODY, KEY, NOW + 1), NOW),
        Err(VerifyError::TooNew {
            skew_ms: 1,
            tolerance_ms: 0
        })
    );
}

#[test]
fn the_default_tolerance_is_five_minutes() {
    assert_eq!(DEFAULT_TOLERANCE, Duration::from_millis(300_000));
    assert_eq!(verifier().tolerance(), Duration::from_millis(300_000));
    let custom = verifier().with_tolerance(Duration::from_secs(60));
    assert_eq!(custom.tolerance(), Duration::from_millis(60_000));
    assert_eq!(
        custom.verify_at(SDK_BODY, sign(SDK_BODY, KEY, NOW - 60_001), NOW),
        Err(VerifyError::TooOld {
            skew_ms: 60_001,
            tolerance_ms: 60_000,
            looks_like_seconds: false
        })
    );
    // Sub-millisecond parts are truncated; huge windows saturate.
    let fine = verifier().with_tolerance(Duration::from_micros(1_999));
    assert_eq!(fine.tolerance(), Duration::from_millis(1));
    let huge = verifier().with_tolerance(Duration::MAX);
    assert_eq!(huge.tolerance(), Duration::from_millis(u64::MAX));
    assert_eq!(
        huge.verify_at(SDK_BODY, sign(SDK_BODY, KEY, 0), u64::MAX),
        Ok(())
    );
}

#[test]
fn a_clock_before_the_epoch_is_an_error() {
    assert_eq!(
        unix_ms(UNIX_EPOCH - Duration::from_millis(1)),
        Err(VerifyError::Clock)
    );
    assert_eq!(unix_ms(UNIX_EPOCH), Ok(0));
    assert_eq!(unix_ms(UNIX_EPOCH + Duration::from_millis(NOW)), Ok(NOW));
    // The system clock reads a time after 2020.
    assert!(unix_ms(SystemTime::now()).unwrap() > 1_577_836_800_000);
}

#[test]
fn a_replay_inside_the_window_passes_the_verifier() {
    let v = verifier();
    assert_eq!(v.verify_at(SDK_BODY, SDK_HEADER, NOW), Ok(()));
    assert_eq!(v.verify_at(SDK_BODY, SDK_HEADER, NOW + 1_000), Ok(()));
}

#[test]
fn window_extremes_do_not_overflow() {
    let v = verifier();
    for now in [0, 1, u64::MAX - 1, u64::MAX] {
        assert!(matches!(
            v.verify_at(SDK_BODY, SDK_HEADER, now),
            Err(VerifyError::TooOld { .. } | VerifyError::TooNew { .. })
        ));
    }
    let max16 = sign(SDK_BODY, KEY, 9_999_999_999_999_999);
    assert_eq!(v.verify_at(SDK_BODY, &max16, 9_999_999_999_999_999), Ok(()));
    assert_eq!(
        v.verify_at(SDK_BODY, &max16, u64::MAX),
        Err(VerifyError::TooOld {
            skew_ms: u64::MAX - 9_999_999_999_999_999,
            tolerance_ms: 300_000,
            looks_like_seconds: false
        })
    );
}

#[test]
fn system_clock_paths() {
    // The system clock is years past these timestamps: both fail on the window.
    assert!(matches!(
        verify(SDK_BODY, KEY, SDK_HEADER),
        Err(VerifyError::TooOld { .. })
    ));
    assert!(matches!(
        verifier().verify(SDK_BODY, SDK_HEADER),
        Err(VerifyError::TooOld { .. })
    ));
    // Parse errors come before the clock.
    assert_eq!(
        verify(SDK_BODY, KEY, ""),
        Err(VerifyError::MissingSignature)
    );
}

// ---------------------------------------------------------------------------
// Secrets never show up in Debug or Display
// ---------------------------------------------------------------------------

/// Strings that must never appear in any rendering.
fn secrets() -> Vec<String> {
    let sdk_body = String::from_utf8(SDK_BODY.to_vec()).unwrap();
    vec![
        KEY.to_owned(),
        SDK_DIGEST.to_owned(),
        SDK_DIGEST.to_ascii_uppercase(),
        SDK_DIGEST[..16].to_owned(),
        SDK_DIGEST[48..].to_owned(),
        sdk_body,
        "call_ended".to_owned(),
    ]
}

fn assert_clean(what: &str, text: &str) {
    for secret in secrets() {
        assert!(!text.contains(&secret), "{what} leaks {secret:?}: {text}");
    }
}

#[test]
fn verifier_debug_redacts_the_keys() {
    for v in [
        verifier(),
        Verifier::with_keys([KEY, "test-api-key-2"]).unwrap(),
        verifier().with_tolerance(Duration::ZERO),
    ] {
        let debug = format!("{v:?}");
        assert!(debug.contains("[REDACTED"), "{debug}");
        assert_clean("Verifier Debug", &debug);
        let pretty = format!("{v:#?}");
        assert_clean("Verifier pretty Debug", &pretty);
    }
}

#[test]
fn a_signature_never_prints_its_digest() {
    for text in [
        SDK_HEADER.to_owned(),
        header("1700000000000", &SDK_DIGEST.to_ascii_uppercase()),
    ] {
        let sig: Signature = text.parse().unwrap();
        for rendered in [format!("{sig:?}"), format!("{sig:#?}"), sig.to_string()] {
            assert!(rendered.contains("1700000000000"), "{rendered}");
            assert!(rendered.contains("[REDACTED]"), "{rendered}");
            assert_clean("Signature", &rendered);
        }
    }
}

#[test]
fn no_error_variant_prints_a_secret() {
    // The supplied digest of the mismatch case; it must not show up either.
    let supplied = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
    let v = verifier();
    let mut errors: Vec<VerifyError> = vec![
        v.verify_at(SDK_BODY, "", NOW).unwrap_err(),
        VerifyError::DuplicateSignature,
        v.verify_at(SDK_BODY, format!("{SDK_HEADER}{}", "0".repeat(200)), NOW)
            .unwrap_err(),
        v.verify_at(SDK_BODY, header("1700000000000", supplied), NOW)
            .unwrap_err(),
        v.verify_at(SDK_BODY, SDK_HEADER, NOW + 400_000)
            .unwrap_err(),
        v.verify_at(SDK_BODY, SDK_HEADER, NOW - 400_000)
            .unwrap_err(),
        v.verify_at(SDK_BODY, sign(SDK_BODY, KEY, 1_700_000_000), NOW)
            .unwrap_err(),
        unix_ms(UNIX_EPOCH - Duration::from_secs(1)).unwrap_err(),
        verify(SDK_BODY, " test-api-key", SDK_HEADER).unwrap_err(),
    ];
    for bad in [
        format!("d={SDK_DIGEST}"),
        format!("v=,d={SDK_DIGEST}"),
        format!("v=1x,d={SDK_DIGEST}"),
        format!("v=01,d={SDK_DIGEST}"),
        format!("v=12345678901234567,d={SDK_DIGEST}"),
        "v=1".to_owned(),
        format!("v=1,d={}", &SDK_DIGEST[..63]),
        format!("v=1,d={}z", &SDK_DIGEST[..63]),
    ] {
        errors.push(v.verify_at(SDK_BODY, &bad, NOW).unwrap_err());
    }
    // One of each variant (and every `Malformed` kind) is covered.
    assert!(errors.contains(&VerifyError::Mismatch));
    assert!(errors.contains(&VerifyError::Clock));
    assert!(errors.contains(&VerifyError::InvalidKey));
    assert!(errors.contains(&VerifyError::MissingSignature));
    assert!(
        errors
            .iter()
            .any(|e| matches!(e, VerifyError::SignatureTooLong { .. }))
    );
    assert!(
        errors
            .iter()
            .any(|e| matches!(e, VerifyError::TooNew { .. }))
    );
    assert!(errors.iter().any(|e| matches!(
        e,
        VerifyError::TooOld {
            looks_like_seconds: true,
            ..
        }
    )));
    assert!(errors.iter().any(|e| matches!(
        e,
        VerifyError::TooOld {
            looks_like_seconds: false,
            ..
        }
    )));
    let kinds: Vec<Malformed> = errors
        .iter()
        .filter_map(|e| match e {
            VerifyError::Malformed(m) => Some(*m),
            _ => None,
        })
        .collect();
    assert_eq!(kinds.len(), 8);

    for err in &errors {
        for rendered in [format!("{err:?}"), format!("{err:#?}"), err.to_string()] {
            assert_clean("VerifyError", &rendered);
            assert!(!rendered.contains(supplied), "{rendered}");
            assert!(!rendered.contains(&supplied[..16]), "{rendered}");
        }
    }
    for m in &kinds {
        assert_clean("Malformed", &format!("{m:?}"));
        assert_clean("Malformed", &m.to_string());
    }

    let key_errors = [
        Verifier::with_keys(Vec::<&str>::new()).unwrap_err(),
        Verifier::new("").unwrap_err(),
        Verifier::new("test-api-key\n").unwrap_err(),
    ];
    for err in &key_errors {
        for rendered in [format!("{err:?}"), err.to_string()] {
            assert_clean("KeyError", &rendered);
        }
    }
}

#[test]
fn error_messages_guide_the_fix() {
    assert!(VerifyError::Mismatch.to_string().contains("webhook badge"));
    assert!(
        VerifyError::Mismatch
            .to_string()
            .contains("raw request body")
    );
    assert!(
        check_sdk_body("v=1")
            .unwrap_err()
            .to_string()
            .contains("v=<unix ms>,d=<64 hex>")
    );
    assert!(
        at(NOW + 300_001)
            .unwrap_err()
            .to_string()
            .contains("future")
    );
    assert!(at(NOW - 300_001).unwrap_err().to_string().contains("past"));
}
