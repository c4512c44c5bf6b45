//! Reads policy text into a `Policy`, walking the spanned TOML tree by hand so that every problem
//! is reported at once with its line and column (serde stops at the first). It does not apply
//! the policy: that is `Policy::apply` in the parent module.

use super::{Allow, Error, Glob, Policy, Problem, normalize_fingerprint};
use crate::finding::{FailOn, Rule, Severity};
use crate::packages::Integrity;
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

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

    /// A glob: `/` separates path components in a `path`; an `owner` (`dpkg:libgnutls*`) has
    /// none.
    fn glob(&mut self, pattern: &str, path: bool, span: Range<usize>) -> Option<Glob> {
        match globset::GlobBuilder::new(pattern)
            .literal_separator(path)
            .build()
        {
            Ok(glob) => Some((pattern.to_string(), glob.compile_matcher())),
            Err(error) => {
                self.problem(
                    span,
                    format!("`{pattern}` is not a valid glob: {}", error.kind()),
                );
                None
            }
        }
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
        let mut owner = None;
        let mut owner_integrity = None;
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
                "path" | "owner" => match self.string(name, value) {
                    Some(pattern) => match self.glob(pattern, name == "path", value.span()) {
                        Some(glob) if name == "path" => path = Some(glob),
                        Some(glob) => owner = Some(glob),
                        None => broken = true,
                    },
                    None => broken = true,
                },
                "owner_integrity" => match self.string(name, value) {
                    Some(text) => {
                        owner_integrity = [
                            Integrity::Verified,
                            Integrity::Modified,
                            Integrity::Unrecorded,
                        ]
                        .into_iter()
                        .find(|i| i.as_str() == text);
                        if owner_integrity.is_none() {
                            broken = true;
                            self.problem(
                                value.span(),
                                format!("`owner_integrity` is `{text}`; expected verified, modified or unrecorded"),
                            );
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
                            "unknown key `{other}` in `allow`; expected rule, path, fingerprint, owner, owner_integrity, reason or expires"
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
        if !["rule", "path", "fingerprint", "owner", "owner_integrity"]
            .iter()
            .any(|key| table.contains_key(*key))
        {
            broken = true;
            self.problem(
                start..start,
                "this `allow` entry matches everything; give at least one of `rule`, `path`, `fingerprint` or `owner`",
            );
        }
        if broken {
            return None;
        }
        Some(Allow {
            rule,
            path,
            fingerprint,
            owner,
            owner_integrity,
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
            "public_origins" => {
                for (text, span) in parser.strings(name, value) {
                    if text.trim().is_empty() {
                        parser.problem(span, "a `public_origins` entry must not be empty");
                    } else {
                        policy.public_origins.push(text.trim().to_string());
                    }
                }
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
                    "unknown key `{other}`; expected fail_on, expiry_warn_days, keystore_passwords, trusted_roots, public_origins, severity or allow"
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
