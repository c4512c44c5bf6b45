//! The policy file (`ocicert.toml`): parse it, validate it (reporting every problem at once, with
//! its line and column), and apply it to findings: severity overrides, trusted corporate roots,
//! and exceptions (`[[allow]]`) that may expire.
//!
//! Parsing walks the spanned TOML tree by hand instead of deriving `Deserialize`, because serde
//! stops at the first error. Applying a policy never drops a finding it suppresses: the finding
//! stays in the report, marked. It does not read the clock: "today" is the scan's `--now`.
//!
//! ```toml
//! fail_on = "high"
//! expiry_warn_days = 45
//! trusted_roots = ["sha256:…"]
//! [severity]
//! cert-expiring = "medium"
//! [[allow]]
//! path = "/opt/test/**"
//! reason = "test fixture"
//! expires = 2026-12-31
//! ```

use crate::finding::FailOn;
use crate::finding::{Exception, Finding, Rule, Severity};
use crate::report::ImageReport;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::Path;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The file picked up from the working directory when `--policy` is not given.
pub const FILE_NAME: &str = "ocicert.toml";

/// A validated policy.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// Where it was read from, as shown in messages.
    pub source: String,
    pub fail_on: Option<FailOn>,
    pub expiry_warn_days: Option<u32>,
    pub keystore_passwords: Vec<String>,
    /// `sha256:` + hex, each either a certificate fingerprint or an SPKI hash.
    pub trusted_roots: Vec<String>,
    pub severity: BTreeMap<Rule, Severity>,
    pub allow: Vec<Allow>,
}

/// One `[[allow]]` exception. Every matcher given must match.
#[derive(Clone, Debug)]
pub struct Allow {
    pub rule: Option<Rule>,
    /// The glob as written, and its compiled matcher.
    pub path: Option<(String, globset::GlobMatcher)>,
    pub fingerprint: Option<String>,
    pub reason: String,
    /// Last day the exception applies.
    pub expires: Option<time::Date>,
    /// Line of the entry in the policy file.
    pub line: usize,
}

/// One thing wrong in a policy file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Why a policy could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the policy file `{path}`")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render(path, problems))]
    Invalid {
        path: String,
        problems: Vec<Problem>,
    },
}

fn render(path: &str, problems: &[Problem]) -> String {
    let mut text = format!(
        "the policy file `{path}` has {} problem{}:",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for problem in problems {
        text.push_str(&format!(
            "\n  {path}:{}:{}: {}",
            problem.line, problem.column, problem.message
        ));
    }
    text
}

/// An exception that matched findings but is past its `expires` date, so it no longer applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpiredException {
    /// `ocicert.toml:12`.
    pub source: String,
    pub reason: String,
    pub expires: String,
    /// Findings it would have suppressed.
    pub findings: usize,
}

impl fmt::Display for ExpiredException {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the exception at {} (\"{}\") expired on {}; ",
            self.source, self.reason, self.expires
        )?;
        match self.findings {
            0 => write!(f, "it matches nothing any more and can be removed"),
            1 => write!(f, "the 1 finding it covered counts again"),
            n => write!(f, "the {n} findings it covered count again"),
        }
    }
}

/// `sha256:` + 64 lowercase hex digits, from `sha256:AB…`, `AB:CD:…` (openssl's form) or bare hex.
pub fn normalize_fingerprint(text: &str) -> Option<String> {
    let text = text.trim();
    let hex = text
        .strip_prefix("sha256:")
        .or_else(|| text.strip_prefix("SHA256:"))
        .unwrap_or(text);
    let hex: String = hex
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit())).then(|| format!("sha256:{hex}"))
}

/// Reads and validates a policy file.
pub fn load(path: &Path) -> Result<Policy, Error> {
    let name = path.display().to_string();
    let text = fs_err::read_to_string(path).map_err(|source| Error::Read {
        path: name.clone(),
        source,
    })?;
    parse(&name, &text)
}

struct Parser<'a> {
    text: &'a str,
    problems: Vec<(usize, String)>,
}

impl Parser<'_> {
    fn problem(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.problems.push((span.start, message.into()));
    }

    fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = self.text.get(..offset).unwrap_or_default();
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    fn string<'v>(&mut self, key: &str, value: &'v Spanned<DeValue<'_>>) -> Option<&'v str> {
        match value.get_ref() {
            DeValue::String(text) => Some(text.as_ref()),
            other => {
                self.problem(
                    value.span(),
                    format!("`{key}` must be a string, not {}", other.type_str()),
                );
                None
            }
        }
    }

    fn strings(&mut self, key: &str, value: &Spanned<DeValue<'_>>) -> Vec<(String, Range<usize>)> {
        let DeValue::Array(items) = value.get_ref() else {
            self.problem(
                value.span(),
                format!(
                    "`{key}` must be an array of strings, not {}",
                    value.get_ref().type_str()
                ),
            );
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|item| {
                self.string(key, item)
                    .map(|text| (text.to_string(), item.span()))
            })
            .collect()
    }

    fn severity(&mut self, key: &str, value: &Spanned<DeValue<'_>>) -> Option<Severity> {
        let text = self.string(key, value)?;
        let found = Severity::ALL_DESCENDING
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(text));
        if found.is_none() {
            self.problem(
                value.span(),
                format!(
                    "unknown severity `{text}`; expected one of critical, high, medium, low, info"
                ),
            );
        }
        found
    }

    fn rule(&mut self, text: &str, span: Range<usize>) -> Option<Rule> {
        let rule = Rule::from_id(text);
        if rule.is_none() {
            self.problem(
                span,
                format!("unknown rule `{text}`; `ocicert rules` lists the rule ids"),
            );
        }
        rule
    }

    fn fingerprint(&mut self, text: &str, span: Range<usize>) -> Option<String> {
        let normalized = normalize_fingerprint(text);
        if normalized.is_none() {
            self.problem(
                span,
                format!("`{text}` is not a SHA-256 fingerprint such as `sha256:` + 64 hex digits"),
            );
        }
        normalized
    }

    fn date(&mut self, value: &Spanned<DeValue<'_>>) -> Option<time::Date> {
        let parsed = match value.get_ref() {
            DeValue::Datetime(datetime) => match (datetime.date, datetime.time) {
                (Some(date), None) => time::Month::try_from(date.month).ok().and_then(|month| {
                    time::Date::from_calendar_date(i32::from(date.year), month, date.day).ok()
                }),
                _ => None,
            },
            DeValue::String(text) => time::Date::parse(
                text,
                time::macros::format_description!("[year]-[month]-[day]"),
            )
            .ok(),
            _ => None,
        };
        if parsed.is_none() {
            self.problem(value.span(), "`expires` must be a date such as 2026-12-31");
        }
        parsed
    }

    fn allow(&mut self, value: &Spanned<DeValue<'_>>) -> Option<Allow> {
        let DeValue::Table(table) = value.get_ref() else {
            self.problem(
                value.span(),
                format!(
                    "each `allow` entry must be a table (`[[allow]]`), not {}",
                    value.get_ref().type_str()
                ),
            );
            return None;
        };
        let mut rule = None;
        let mut path = None;
        let mut fingerprint = None;
        let mut reason = None;
        let mut expires = None;
        let mut broken = false;
        let mut entries: Vec<_> = table.iter().collect();
        entries.sort_by_key(|(key, _)| key.span().start);
        for (key, value) in entries {
            let name = key.get_ref().as_ref();
            match name {
                "rule" => match self.string(name, value) {
                    Some(text) => {
                        rule = self.rule(text, value.span());
                        broken |= rule.is_none();
                    }
                    None => broken = true,
                },
                "path" => match self.string(name, value) {
                    Some(pattern) => {
                        match globset::GlobBuilder::new(pattern)
                            .literal_separator(true)
                            .build()
                        {
                            Ok(glob) => path = Some((pattern.to_string(), glob.compile_matcher())),
                            Err(error) => {
                                broken = true;
                                self.problem(
                                    value.span(),
                                    format!("`{pattern}` is not a valid glob: {}", error.kind()),
                                );
                            }
                        }
                    }
                    None => broken = true,
                },
                "fingerprint" => match self.string(name, value) {
                    Some(text) => {
                        fingerprint = self.fingerprint(text, value.span());
                        broken |= fingerprint.is_none();
                    }
                    None => broken = true,
                },
                "reason" => match self.string(name, value) {
                    Some(text) if !text.trim().is_empty() => reason = Some(text.to_string()),
                    Some(_) => {
                        broken = true;
                        self.problem(value.span(), "`reason` must not be empty");
                    }
                    None => broken = true,
                },
                "expires" => {
                    expires = self.date(value);
                    broken |= expires.is_none();
                }
                other => {
                    broken = true;
                    self.problem(
                        key.span(),
                        format!(
                            "unknown key `{other}` in `allow`; expected rule, path, fingerprint, reason or expires"
                        ),
                    );
                }
            }
        }
        // The `[[allow]]` header.
        let start = value.span().start;
        if reason.is_none() && !table.contains_key("reason") {
            broken = true;
            self.problem(
                start..start,
                "this `allow` entry has no `reason`; say why the exception exists",
            );
        }
        if !["rule", "path", "fingerprint"]
            .iter()
            .any(|key| table.contains_key(*key))
        {
            broken = true;
            self.problem(
                start..start,
                "this `allow` entry matches everything; give at least one of `rule`, `path` or `fingerprint`",
            );
        }
        if broken {
            return None;
        }
        Some(Allow {
            rule,
            path,
            fingerprint,
            reason: reason.unwrap_or_default(),
            expires,
            line: self.position(start).0,
        })
    }
}

/// Parses and validates policy text. `source` names the file in messages.
pub fn parse(source: &str, text: &str) -> Result<Policy, Error> {
    let (root, syntax) = DeTable::parse_recoverable(text);
    let mut parser = Parser {
        text,
        problems: Vec::new(),
    };
    for error in syntax {
        let span = error.span().unwrap_or(0..0);
        parser.problem(span, error.message().trim().to_string());
    }
    let mut policy = Policy {
        source: source.to_string(),
        ..Policy::default()
    };
    for (key, value) in root.get_ref().iter() {
        let name = key.get_ref().as_ref();
        match name {
            "fail_on" => {
                if let Some(text) = parser.string(name, value) {
                    match FailOn::parse(text) {
                        Some(fail_on) => policy.fail_on = Some(fail_on),
                        None => parser.problem(
                            value.span(),
                            format!(
                                "unknown severity `{text}`; expected one of critical, high, medium, low, info, never"
                            ),
                        ),
                    }
                }
            }
            "expiry_warn_days" => match value.get_ref() {
                DeValue::Integer(integer) => {
                    match u32::from_str_radix(integer.as_str(), integer.radix()) {
                        Ok(days) if days <= 36_500 => policy.expiry_warn_days = Some(days),
                        _ => parser.problem(
                            value.span(),
                            "`expiry_warn_days` must be a number of days from 0 to 36500",
                        ),
                    }
                }
                other => parser.problem(
                    value.span(),
                    format!(
                        "`expiry_warn_days` must be an integer, not {}",
                        other.type_str()
                    ),
                ),
            },
            "keystore_passwords" => {
                policy.keystore_passwords = parser
                    .strings(name, value)
                    .into_iter()
                    .map(|(text, _)| text)
                    .collect();
            }
            "trusted_roots" => {
                for (text, span) in parser.strings(name, value) {
                    if let Some(fingerprint) = parser.fingerprint(&text, span) {
                        policy.trusted_roots.push(fingerprint);
                    }
                }
            }
            "severity" => match value.get_ref() {
                DeValue::Table(table) => {
                    for (rule, severity) in table.iter() {
                        let rule = parser.rule(rule.get_ref(), rule.span());
                        let severity = parser.severity("severity", severity);
                        if let (Some(rule), Some(severity)) = (rule, severity) {
                            policy.severity.insert(rule, severity);
                        }
                    }
                }
                other => parser.problem(
                    value.span(),
                    format!(
                        "`severity` must be a table of rule = \"severity\", not {}",
                        other.type_str()
                    ),
                ),
            },
            "allow" => match value.get_ref() {
                DeValue::Array(entries) => {
                    for entry in entries.iter() {
                        if let Some(allow) = parser.allow(entry) {
                            policy.allow.push(allow);
                        }
                    }
                }
                other => parser.problem(
                    value.span(),
                    format!(
                        "`allow` must be an array of tables (`[[allow]]`), not {}",
                        other.type_str()
                    ),
                ),
            },
            other => parser.problem(
                key.span(),
                format!(
                    "unknown key `{other}`; expected fail_on, expiry_warn_days, keystore_passwords, trusted_roots, severity or allow"
                ),
            ),
        }
    }
    if parser.problems.is_empty() {
        policy.allow.sort_by_key(|allow| allow.line);
        return Ok(policy);
    }
    // One problem per place: a TOML syntax error (pushed first) wins over our own reading.
    parser.problems.sort_by_key(|(offset, _)| *offset);
    parser.problems.dedup_by_key(|(offset, _)| *offset);
    let problems = parser
        .problems
        .iter()
        .map(|(offset, message)| {
            let (line, column) = parser.position(*offset);
            Problem {
                line,
                column,
                message: message.clone(),
            }
        })
        .collect();
    Err(Error::Invalid {
        path: source.to_string(),
        problems,
    })
}

fn date_text(date: time::Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

impl Allow {
    fn matches(&self, finding: &Finding) -> bool {
        self.rule.is_none_or(|rule| rule == finding.rule)
            && self
                .fingerprint
                .as_ref()
                .is_none_or(|fingerprint| *fingerprint == finding.fingerprint)
            && self.path.as_ref().is_none_or(|(_, glob)| {
                // `/opt/x/**` and `opt/x/**` both match `/opt/x/…`; config fields have no slash.
                let location = &finding.location;
                let display = location.display_path();
                [
                    location.path.as_deref().unwrap_or_default(),
                    display.as_str(),
                ]
                .iter()
                .filter(|candidate| !candidate.is_empty())
                .any(|candidate| {
                    glob.is_match(candidate) || glob.is_match(candidate.trim_start_matches('/'))
                })
            })
    }

    fn exception(&self, source: &str) -> Exception {
        Exception {
            reason: self.reason.clone(),
            expires: self.expires.map(date_text),
            source: format!("{source}:{}", self.line),
        }
    }
}

impl Policy {
    fn trusted(&self, image: &ImageReport, fingerprint: &str) -> bool {
        if self.trusted_roots.iter().any(|root| root == fingerprint) {
            return true;
        }
        image
            .inventory
            .certificates
            .iter()
            .filter(|c| c.info.fingerprint == fingerprint)
            .any(|c| {
                let spki = format!("sha256:{}", c.info.spki_sha256);
                self.trusted_roots.contains(&spki)
            })
    }

    /// Applies the policy to scanned images, as of `now` (Unix seconds): drops
    /// `unknown-trust-anchor` and `removed-trust-anchor` for trusted roots, overrides severities, and marks findings that
    /// an exception suppresses. Returns the exceptions that expired.
    pub fn apply(&self, images: &mut [ImageReport], now: i64) -> Vec<ExpiredException> {
        let today = time::OffsetDateTime::from_unix_timestamp(now)
            .map(|t| t.date())
            .unwrap_or(time::Date::MIN);
        let mut expired_matches = vec![0usize; self.allow.len()];
        for image in images.iter_mut() {
            let mut findings = std::mem::take(&mut image.findings);
            findings.retain(|finding| {
                !(matches!(
                    finding.rule,
                    Rule::UnknownTrustAnchor | Rule::RemovedTrustAnchor
                ) && self.trusted(image, &finding.fingerprint))
            });
            for finding in &mut findings {
                if let Some(severity) = self.severity.get(&finding.rule) {
                    finding.severity = *severity;
                }
                for (index, allow) in self.allow.iter().enumerate() {
                    if !allow.matches(finding) {
                        continue;
                    }
                    if allow.expires.is_some_and(|expires| today > expires) {
                        expired_matches[index] += 1;
                        if finding.expired_exception.is_none() {
                            finding.expired_exception = Some(allow.exception(&self.source));
                        }
                    } else if finding.suppressed.is_none() {
                        finding.suppressed = Some(allow.exception(&self.source));
                    }
                }
                if finding.suppressed.is_some() {
                    finding.expired_exception = None;
                }
            }
            findings.sort_by(|a, b| {
                b.severity
                    .cmp(&a.severity)
                    .then(a.rule.cmp(&b.rule))
                    .then_with(|| a.location.cmp(&b.location))
            });
            image.findings = findings;
        }
        self.allow
            .iter()
            .zip(expired_matches)
            .filter_map(|(allow, findings)| {
                let expires = allow.expires.filter(|expires| today > *expires)?;
                Some(ExpiredException {
                    source: format!("{}:{}", self.source, allow.line),
                    reason: allow.reason.clone(),
                    expires: date_text(expires),
                    findings,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FINGERPRINT: &str =
        "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    #[test]
    fn parses_a_complete_policy() {
        let policy = parse(
            "ocicert.toml",
            &format!(
                r#"
fail_on = "medium"
expiry_warn_days = 45
keystore_passwords = ["corp-pass"]
trusted_roots = ["{}"]

[severity]
cert-expiring = "medium"

[[allow]]
rule = "private-key"
path = "opt/test/**"
reason = "test fixture"
expires = 2026-12-31

[[allow]]
fingerprint = "{FINGERPRINT}"
reason = "known"
expires = "2027-01-31"
"#,
                FINGERPRINT.to_uppercase().replace("SHA256:", "")
            ),
        )
        .unwrap();
        assert_eq!(policy.fail_on, Some(FailOn::Medium));
        assert_eq!(policy.expiry_warn_days, Some(45));
        assert_eq!(policy.keystore_passwords, ["corp-pass"]);
        assert_eq!(policy.trusted_roots, [FINGERPRINT]);
        assert_eq!(
            policy.severity.get(&Rule::CertExpiring),
            Some(&Severity::Medium)
        );
        assert_eq!(policy.allow.len(), 2);
        assert_eq!(policy.allow[0].line, 10);
        assert_eq!(
            policy.allow[1].expires.map(date_text).as_deref(),
            Some("2027-01-31")
        );
        let finding = |rule: Rule, path: Option<&str>, field: Option<&str>| {
            Finding::new(
                rule,
                String::new(),
                crate::finding::Location {
                    path: path.map(str::to_string),
                    config_field: field.map(str::to_string),
                    in_final_image: true,
                    ..crate::finding::Location::default()
                },
                FINGERPRINT.to_string(),
            )
        };
        let allow = &policy.allow[0];
        assert!(allow.matches(&finding(Rule::PrivateKey, Some("/opt/test/a/b.key"), None)));
        assert!(!allow.matches(&finding(Rule::PrivateKey, Some("/opt/other/b.key"), None)));
        assert!(!allow.matches(&finding(Rule::CaPrivateKey, Some("/opt/test/b.key"), None)));
        // Only the fingerprint matters for the second entry.
        assert!(policy.allow[1].matches(&finding(Rule::CertExpired, Some("/x"), None)));
        let config = parse(
            "p.toml",
            "[[allow]]\npath = \"config.Env*\"\nreason = \"r\"\n[[allow]]\npath = \"/app/*.jar!/**\"\nreason = \"r\"\n",
        )
        .unwrap();
        assert!(config.allow[0].matches(&finding(Rule::PrivateKey, None, Some("config.Env[1]"))));
        let mut nested = finding(Rule::PrivateKey, Some("/app/app.jar"), None);
        nested.location.archive_path = Some("META-INF/x.key".into());
        assert!(config.allow[1].matches(&nested));
    }

    #[test]
    fn reports_every_problem_with_line_and_column() {
        let text = r#"fail_on = "hgh"
expiry_warn_days = "soon"
colour = "blue"
trusted_roots = ["sha256:nothex"]

[severity]
private-kye = "low"
cert-expired = "urgent"

[[allow]]
rule = "private-key"
path = "/opt/[z-a]"
expires = 2026-02-30

[[allow]]
reason = "matches everything"
"#;
        let Err(Error::Invalid { problems, .. }) = parse("ocicert.toml", text) else {
            panic!("invalid policy accepted");
        };
        let found: Vec<(usize, usize, &str)> = problems
            .iter()
            .map(|p| (p.line, p.column, p.message.as_str()))
            .collect();
        let lines: Vec<usize> = found.iter().map(|(line, _, _)| *line).collect();
        assert_eq!(lines, [1, 2, 3, 4, 7, 8, 10, 12, 13, 15], "{found:#?}");
        assert_eq!(found[0].1, 11);
        assert!(found[0].2.contains("unknown severity `hgh`"));
        assert!(found[2].2.contains("unknown key `colour`"));
        assert!(found[4].2.contains("unknown rule `private-kye`"));
        assert!(found[6].2.contains("no `reason`"), "{found:#?}");
        assert!(found[7].2.contains("not a valid glob"));
        assert!(found[8].2.contains("date"), "{found:#?}");
        assert!(found[9].2.contains("matches everything"));
        let message = Error::Invalid {
            path: "ocicert.toml".into(),
            problems,
        }
        .to_string();
        assert!(message.starts_with("the policy file `ocicert.toml` has 10 problems:"));
        assert!(message.contains("\n  ocicert.toml:1:11: unknown severity `hgh`"));
    }

    #[test]
    fn syntax_errors_have_positions_too() {
        let Err(Error::Invalid { problems, .. }) = parse("p.toml", "fail_on = \"high\"\nbad = [\n")
        else {
            panic!("accepted broken TOML");
        };
        assert_eq!(problems[0].line, 2, "{problems:?}");
    }

    #[test]
    fn fingerprints_normalise() {
        let colons = "AB:".repeat(31) + "AB";
        assert_eq!(
            normalize_fingerprint(&colons),
            Some(format!("sha256:{}", "ab".repeat(32)))
        );
        assert_eq!(normalize_fingerprint("sha256:abc"), None);
    }
}
