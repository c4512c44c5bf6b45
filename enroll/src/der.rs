//! Just enough DER to read back what the stub stores and receives: X.509 validity, SANs and the
//! public key of a certificate, the certificates inside a PKCS#7 certs-only message, and PEM.
//!
//! It does not verify signatures or chains, and accepts only definite-length DER (what every CA
//! sends). Writing DER (CSRs) is rcgen's job.

use std::net::IpAddr;

/// Why bytes are not the DER or PEM the stub expected.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Ran past the end, a bad length, or an unexpected tag.
    #[error("malformed DER: {0}")]
    Malformed(&'static str),
    /// A PKCS#7 message that is not signedData.
    #[error("PKCS#7 content is not signedData")]
    NotSignedData,
    /// A time that is not UTCTime/GeneralizedTime `YYMMDDHHMMSSZ`.
    #[error("unsupported time format in certificate")]
    Time,
    /// Not PEM, or bad base64 inside.
    #[error("malformed PEM: {0}")]
    Pem(&'static str),
}

/// One TLV: tag byte and content.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tlv<'a> {
    pub(crate) tag: u8,
    pub(crate) content: &'a [u8],
    /// The whole encoding, header included.
    pub(crate) raw: &'a [u8],
}

/// A cursor over consecutive TLVs.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next TLV, whatever its tag.
    pub(crate) fn any(&mut self) -> Result<Tlv<'a>, Error> {
        let bytes = self.rest;
        let (&tag, after_tag) = bytes.split_first().ok_or(Error::Malformed("truncated"))?;
        if tag & 0x1f == 0x1f {
            return Err(Error::Malformed("multi-byte tags are not used in X.509"));
        }
        let (&first, after_len) = after_tag
            .split_first()
            .ok_or(Error::Malformed("truncated"))?;
        let (length, header) = if first < 0x80 {
            (usize::from(first), 2)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 {
                return Err(Error::Malformed("indefinite or huge length"));
            }
            let length_bytes = after_len
                .get(..count)
                .ok_or(Error::Malformed("truncated"))?;
            let length = length_bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (length, 2 + count)
        };
        let end = header
            .checked_add(length)
            .ok_or(Error::Malformed("length overflow"))?;
        let raw = bytes
            .get(..end)
            .ok_or(Error::Malformed("length past end"))?;
        self.rest = &bytes[end..];
        Ok(Tlv {
            tag,
            content: &raw[header..],
            raw,
        })
    }

    /// The next TLV, which must have `tag`.
    pub(crate) fn expect(&mut self, tag: u8, what: &'static str) -> Result<Tlv<'a>, Error> {
        let tlv = self.any()?;
        if tlv.tag == tag {
            Ok(tlv)
        } else {
            Err(Error::Malformed(what))
        }
    }

    /// The next TLV if it has `tag`; otherwise nothing is consumed.
    pub(crate) fn optional(&mut self, tag: u8) -> Result<Option<Tlv<'a>>, Error> {
        if self.rest.first() == Some(&tag) {
            self.any().map(Some)
        } else {
            Ok(None)
        }
    }
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const OCTET_STRING: u8 = 0x04;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// 1.2.840.113549.1.7.2, PKCS#7 signedData.
const OID_SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
/// 2.5.29.17, subjectAltName.
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];

/// A SubjectAltName entry the stub cares about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum San {
    /// dNSName, lower-cased.
    Dns(String),
    /// iPAddress.
    Ip(IpAddr),
    /// uniformResourceIdentifier.
    Uri(String),
}

impl std::fmt::Display for San {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dns(name) => write!(f, "dns:{name}"),
            Self::Ip(ip) => write!(f, "ip:{ip}"),
            Self::Uri(uri) => write!(f, "uri:{uri}"),
        }
    }
}

/// What the stub reads out of a certificate.
#[derive(Debug, Clone)]
pub struct CertInfo {
    /// X.509 version field (2 means v3).
    pub version: u8,
    /// Issuer and subject are the same name (a root, or a self-signed leaf).
    pub self_issued: bool,
    /// notBefore, seconds since the Unix epoch.
    pub not_before: i64,
    /// notAfter, seconds since the Unix epoch.
    pub not_after: i64,
    /// The SubjectPublicKeyInfo, DER.
    pub spki: Vec<u8>,
    /// DNS, IP and URI SANs.
    pub sans: Vec<San>,
}

/// Reads validity, SPKI and SANs of a DER certificate.
pub fn parse_certificate(der: &[u8]) -> Result<CertInfo, Error> {
    let certificate = Reader::new(der).expect(SEQUENCE, "certificate is not a SEQUENCE")?;
    let tbs = Reader::new(certificate.content).expect(SEQUENCE, "tbsCertificate")?;
    let mut fields = Reader::new(tbs.content);
    let version = match fields.optional(0xa0)? {
        Some(explicit) => {
            let integer = Reader::new(explicit.content).expect(0x02, "version")?;
            integer.content.last().copied().unwrap_or(0)
        }
        None => 0,
    };
    fields.any()?; // serialNumber
    fields.expect(SEQUENCE, "signature algorithm")?;
    let issuer = fields.expect(SEQUENCE, "issuer")?.raw;
    let validity = fields.expect(SEQUENCE, "validity")?;
    let mut times = Reader::new(validity.content);
    let not_before = parse_time(times.any()?)?;
    let not_after = parse_time(times.any()?)?;
    let self_issued = fields.expect(SEQUENCE, "subject")?.raw == issuer;
    let spki = fields
        .expect(SEQUENCE, "subjectPublicKeyInfo")?
        .raw
        .to_vec();
    fields.optional(0x81)?; // issuerUniqueID
    fields.optional(0x82)?; // subjectUniqueID
    let mut sans = Vec::new();
    if let Some(extensions) = fields.optional(0xa3)? {
        let list = Reader::new(extensions.content).expect(SEQUENCE, "extensions")?;
        let mut list = Reader::new(list.content);
        while !list.is_empty() {
            let extension = list.expect(SEQUENCE, "extension")?;
            let mut parts = Reader::new(extension.content);
            let oid = parts.expect(OID, "extension id")?;
            parts.optional(0x01)?; // critical
            let value = parts.expect(OCTET_STRING, "extension value")?;
            if oid.content == OID_SAN {
                sans = parse_general_names(value.content)?;
            }
        }
    }
    Ok(CertInfo {
        version,
        self_issued,
        not_before,
        not_after,
        spki,
        sans,
    })
}

fn parse_general_names(value: &[u8]) -> Result<Vec<San>, Error> {
    let names = Reader::new(value).expect(SEQUENCE, "GeneralNames")?;
    let mut names = Reader::new(names.content);
    let mut sans = Vec::new();
    while !names.is_empty() {
        let name = names.any()?;
        let text = || String::from_utf8_lossy(name.content).into_owned();
        match name.tag {
            0x82 => sans.push(San::Dns(text().to_ascii_lowercase())),
            0x86 => sans.push(San::Uri(text())),
            0x87 => match name.content.len() {
                4 => {
                    let octets: [u8; 4] = name
                        .content
                        .try_into()
                        .map_err(|_| Error::Malformed("ip"))?;
                    sans.push(San::Ip(IpAddr::from(octets)));
                }
                16 => {
                    let octets: [u8; 16] = name
                        .content
                        .try_into()
                        .map_err(|_| Error::Malformed("ip"))?;
                    sans.push(San::Ip(IpAddr::from(octets)));
                }
                _ => return Err(Error::Malformed("iPAddress length")),
            },
            _ => {}
        }
    }
    Ok(sans)
}

fn parse_time(tlv: Tlv<'_>) -> Result<i64, Error> {
    let text = std::str::from_utf8(tlv.content).map_err(|_| Error::Time)?;
    let digits = text.strip_suffix('Z').ok_or(Error::Time)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::Time);
    }
    let number = |range: std::ops::Range<usize>| -> Result<i64, Error> {
        digits
            .get(range)
            .and_then(|s| s.parse().ok())
            .ok_or(Error::Time)
    };
    let (year, rest) = match (tlv.tag, digits.len()) {
        (UTC_TIME, 12) => {
            let short = number(0..2)?;
            (
                if short >= 50 {
                    1900 + short
                } else {
                    2000 + short
                },
                2,
            )
        }
        (GENERALIZED_TIME, 14) => (number(0..4)?, 4),
        _ => return Err(Error::Time),
    };
    let month = number(rest..rest + 2)?;
    let day = number(rest + 2..rest + 4)?;
    let hour = number(rest + 4..rest + 6)?;
    let minute = number(rest + 6..rest + 8)?;
    let second = number(rest + 8..rest + 10)?;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(Error::Time);
    }
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a Unix time (for log lines).
pub fn format_time(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let second_of_day = unix.rem_euclid(86_400);
    // Inverse of `days_from_civil` (Howard Hinnant's civil_from_days).
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

/// The certificates (DER) of a PKCS#7 certs-only message (RFC 7030 §4.1.3 and §4.2.3).
pub fn pkcs7_certificates(der: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
    let content_info = Reader::new(der).expect(SEQUENCE, "ContentInfo")?;
    let mut parts = Reader::new(content_info.content);
    if parts.expect(OID, "contentType")?.content != OID_SIGNED_DATA {
        return Err(Error::NotSignedData);
    }
    let explicit = parts.expect(0xa0, "content")?;
    let signed_data = Reader::new(explicit.content).expect(SEQUENCE, "SignedData")?;
    let mut fields = Reader::new(signed_data.content);
    fields.any()?; // version
    fields.expect(SET, "digestAlgorithms")?;
    fields.expect(SEQUENCE, "encapContentInfo")?;
    let mut certificates = Vec::new();
    if let Some(set) = fields.optional(0xa0)? {
        let mut items = Reader::new(set.content);
        while !items.is_empty() {
            let item = items.any()?;
            if item.tag == SEQUENCE {
                certificates.push(item.raw.to_vec());
            }
        }
    }
    Ok(certificates)
}

/// PEM-encodes DER with a label (`CERTIFICATE`, `PRIVATE KEY`).
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

/// Every `label` block of a PEM text, decoded.
pub fn pem_decode_all(text: &str, label: &str) -> Result<Vec<Vec<u8>>, Error> {
    use base64::Engine as _;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&begin) {
        let after = &rest[start + begin.len()..];
        let stop = after.find(&end).ok_or(Error::Pem("missing END line"))?;
        let body: String = after[..stop]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| Error::Pem("bad base64"))?;
        blocks.push(der);
        rest = &after[stop + end.len()..];
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn epoch_math() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        let utc = Tlv {
            tag: UTC_TIME,
            content: b"491231235959Z",
            raw: &[],
        };
        assert_eq!(parse_time(utc).unwrap(), 2_524_607_999);
        let generalized = Tlv {
            tag: GENERALIZED_TIME,
            content: b"20500101000000Z",
            raw: &[],
        };
        assert_eq!(parse_time(generalized).unwrap(), 2_524_608_000);
        assert_eq!(format_time(2_524_607_999), "2049-12-31T23:59:59Z");
        assert_eq!(format_time(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert!(
            parse_time(Tlv {
                tag: UTC_TIME,
                content: b"4912312359Z",
                raw: &[]
            })
            .is_err()
        );
    }

    #[test]
    fn reads_an_rcgen_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["App.Example".to_owned(), "10.0.0.1".to_owned()])
                .unwrap();
        params.not_before = rcgen::date_time_ymd(2030, 1, 2);
        params.not_after = rcgen::date_time_ymd(2030, 2, 3);
        let cert = params.self_signed(&key).unwrap();
        let info = parse_certificate(cert.der()).unwrap();
        assert_eq!(info.version, 2);
        assert!(info.self_issued);
        assert_eq!(info.not_before, 1_893_542_400);
        assert_eq!(info.not_after, 1_896_307_200);
        assert_eq!(
            info.sans,
            vec![
                San::Dns("app.example".into()),
                San::Ip("10.0.0.1".parse().unwrap())
            ]
        );
        use rcgen::PublicKeyData as _;
        assert_eq!(info.spki, key.subject_public_key_info());
        let pem = pem_encode("CERTIFICATE", cert.der());
        assert_eq!(
            pem_decode_all(&pem, "CERTIFICATE").unwrap(),
            vec![cert.der().to_vec()]
        );
    }

    #[test]
    fn hostile_lengths_do_not_panic() {
        for bytes in [
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff][..],
            &[0x30, 0x80],
            &[0x30],
            &[0x30, 0x05, 0x01],
        ] {
            assert!(parse_certificate(bytes).is_err());
            assert!(pkcs7_certificates(bytes).is_err());
        }
    }
}
