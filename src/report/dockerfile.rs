//! Dockerfile instructions, and which instruction of the final stage created each image layer.
//!
//! Only what SARIF needs to point a finding at a line: instructions with their line span (with
//! `\` continuations, comments, the `# escape=` directive and heredoc bodies handled), grouped
//! into stages, and a best-effort match of each layer's history `created_by` (BuildKit or classic
//! builder) to an instruction of the last stage. It is not a Dockerfile interpreter: no variable
//! expansion, no build arguments, no `--target` selection.

/// One instruction, `COPY app/ /app/`, with where it is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instruction {
    /// Upper-case keyword: `FROM`, `RUN`, `COPY`, …
    pub keyword: String,
    /// The arguments with continuations joined and whitespace collapsed.
    pub arguments: String,
    /// First line (1-based).
    pub line: usize,
    /// Last line (1-based), after continuations and heredoc bodies.
    pub end_line: usize,
    /// Index of the build stage (one per `FROM`).
    pub stage: usize,
}

/// A parsed Dockerfile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dockerfile {
    /// The path as given on the command line, used as the SARIF artifact URI.
    pub path: String,
    pub instructions: Vec<Instruction>,
}

/// Instructions that add a filesystem layer.
const LAYER_KEYWORDS: [&str; 3] = ["RUN", "COPY", "ADD"];

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The heredoc delimiters an instruction opens (`<<EOF`, `<<-"EOF"`), in order.
fn heredoc_delimiters(text: &str) -> Vec<(String, bool)> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("<<") {
        rest = &rest[start + 2..];
        let (strip_tabs, after) = match rest.strip_prefix('-') {
            Some(after) => (true, after),
            None => (false, rest),
        };
        let word: String = after
            .trim_start_matches(['"', '\''])
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !word.is_empty() && !after.starts_with(char::is_whitespace) {
            found.push((word, strip_tabs));
        }
    }
    found
}

impl Dockerfile {
    /// Parses `text`; `path` is kept for reports. Never fails: lines that are not instructions
    /// are ignored.
    pub fn parse(path: &str, text: &str) -> Self {
        let lines: Vec<&str> = text.lines().collect();
        let mut escape = '\\';
        let mut index = 0;
        // Parser directives: `# key=value` comment lines before anything else.
        while let Some(line) = lines.get(index) {
            let Some(directive) = line.trim().strip_prefix('#') else {
                break;
            };
            let Some((key, value)) = directive.split_once('=') else {
                break;
            };
            if key.trim().eq_ignore_ascii_case("escape") {
                escape = value.trim().chars().next().unwrap_or('\\');
            }
            index += 1;
        }
        let mut instructions = Vec::new();
        let mut stage = 0;
        let mut seen_from = false;
        while index < lines.len() {
            let trimmed = lines[index].trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                index += 1;
                continue;
            }
            let start = index;
            let mut text = String::new();
            loop {
                let line = lines[index].trim_end();
                let is_comment = index != start && line.trim_start().starts_with('#');
                if !is_comment {
                    match line.strip_suffix(escape) {
                        Some(body) => {
                            text.push_str(body);
                            text.push(' ');
                        }
                        None => {
                            text.push_str(line);
                            break;
                        }
                    }
                }
                index += 1;
                if index >= lines.len() {
                    break;
                }
            }
            // Heredoc bodies follow the instruction line.
            for (delimiter, strip_tabs) in heredoc_delimiters(&text) {
                while index + 1 < lines.len() {
                    index += 1;
                    let body = lines[index];
                    let candidate = if strip_tabs {
                        body.trim_start_matches('\t')
                    } else {
                        body
                    };
                    if candidate == delimiter {
                        break;
                    }
                    text.push(' ');
                    text.push_str(body);
                }
            }
            let text = text.trim();
            let (keyword, arguments) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
            let keyword = keyword.to_ascii_uppercase();
            if keyword == "FROM" {
                if seen_from {
                    stage += 1;
                }
                seen_from = true;
            }
            instructions.push(Instruction {
                keyword,
                arguments: collapse(arguments),
                line: start + 1,
                end_line: index + 1,
                stage,
            });
            index += 1;
        }
        Self {
            path: path.to_string(),
            instructions,
        }
    }

    fn last_stage(&self) -> usize {
        self.instructions.last().map_or(0, |i| i.stage)
    }

    /// The `FROM` instruction of the last stage: where base-image layers come from.
    pub fn final_from(&self) -> Option<&Instruction> {
        let stage = self.last_stage();
        self.instructions
            .iter()
            .find(|i| i.stage == stage && i.keyword == "FROM")
    }

    /// For each layer (base first), given its history `created_by`, the instruction that
    /// created it: an instruction of the last stage, or that stage's `FROM` for layers that
    /// come from the base image. `None` when nothing fits.
    ///
    /// Layers are matched by keyword and argument text from the last layer backwards, so that
    /// a base-image `RUN` that happens to look like one of ours cannot shift the rest; layers
    /// whose text does not match (classic-builder `COPY file:<hash> in /dest`, with several
    /// copies to one place) are placed by their order relative to matched neighbours.
    pub fn map_layers(&self, created_by: &[Option<String>]) -> Vec<Option<&Instruction>> {
        let stage = self.last_stage();
        let candidates: Vec<&Instruction> = self
            .instructions
            .iter()
            .filter(|i| i.stage == stage && LAYER_KEYWORDS.contains(&i.keyword.as_str()))
            .collect();
        let described: Vec<Option<(String, String)>> = created_by
            .iter()
            .map(|c| c.as_deref().and_then(describe))
            .collect();
        let mut matched: Vec<Option<usize>> = vec![None; created_by.len()];
        let mut cursor = candidates.len();
        for layer in (0..created_by.len()).rev() {
            let Some((keyword, arguments)) = &described[layer] else {
                continue;
            };
            let best = (0..cursor)
                .rev()
                .map(|j| (j, score(candidates[j], keyword, arguments)))
                .filter(|(_, score)| *score > 0)
                .max_by_key(|(j, score)| (*score, *j));
            if let Some((j, _)) = best {
                matched[layer] = Some(j);
                cursor = j;
            }
        }
        // Order-based placement for the rest, counted from the next matched layer (or the end).
        let mut placed: Vec<Option<&Instruction>> = vec![None; created_by.len()];
        let mut anchor: Option<(usize, usize)> = None; // (layer, candidate) of the next match
        for layer in (0..created_by.len()).rev() {
            if let Some(j) = matched[layer] {
                placed[layer] = Some(candidates[j]);
                anchor = Some((layer, j));
                continue;
            }
            let guess = match anchor {
                Some((next_layer, j)) => j as isize - (next_layer - layer) as isize,
                None => candidates.len() as isize - (created_by.len() - layer) as isize,
            };
            let keyword = described[layer].as_ref().map(|(k, _)| k.as_str());
            placed[layer] = if guess < 0 {
                self.final_from()
            } else {
                candidates
                    .get(guess as usize)
                    .filter(|c| keyword.is_none_or(|k| k == c.keyword))
                    .copied()
            };
        }
        placed
    }
}

/// Strips `--flag` options (`--from=build`, `--chown=1:1`, `--mount=…`, `--link`).
fn without_flags(arguments: &str) -> String {
    collapse(
        &arguments
            .split_whitespace()
            .skip_while(|word| word.starts_with("--"))
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// Strips the `|N KEY=value …` build-argument prefix and the `/bin/sh -c` of a shell command.
fn strip_shell(command: &str) -> &str {
    let mut rest = command.trim_start();
    if let Some(count) = rest.strip_prefix('|') {
        let (number, after) = count.split_once(' ').unwrap_or((count, ""));
        if let Ok(number) = number.parse::<usize>() {
            rest = after.trim_start();
            for _ in 0..number {
                rest = rest
                    .split_once(' ')
                    .map_or("", |(_, after)| after)
                    .trim_start();
            }
        }
    }
    for shell in ["/bin/sh -c ", "/bin/bash -c ", "/bin/sh -o pipefail -c "] {
        if let Some(after) = rest.strip_prefix(shell) {
            return after;
        }
    }
    rest
}

/// A history `created_by` as (keyword, arguments): `RUN`/`COPY`/`ADD`/… or `None` when it is
/// not recognisable.
fn describe(created_by: &str) -> Option<(String, String)> {
    let text = created_by.trim();
    let text = text.strip_suffix("# buildkit").unwrap_or(text).trim();
    if let Some(rest) = text
        .strip_prefix("/bin/sh -c #(nop)")
        .or_else(|| text.strip_prefix("#(nop)"))
    {
        let rest = rest.trim();
        let (keyword, arguments) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        return Some((keyword.to_ascii_uppercase(), collapse(arguments)));
    }
    if text.starts_with('|') || text.starts_with("/bin/") {
        return Some(("RUN".into(), collapse(strip_shell(text))));
    }
    let (keyword, arguments) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    if keyword.is_empty() || !keyword.chars().all(|c| c.is_ascii_uppercase()) {
        return None;
    }
    let arguments = if keyword == "RUN" {
        let arguments = arguments.trim_start();
        let arguments = if arguments.starts_with("--") {
            // `RUN --mount=… /bin/sh -c …`: flags come before the shell.
            let flags_end = arguments
                .split_whitespace()
                .take_while(|w| w.starts_with("--"))
                .map(|w| w.len() + 1)
                .sum::<usize>();
            &arguments[flags_end.min(arguments.len())..]
        } else {
            arguments
        };
        strip_shell(arguments)
    } else {
        arguments
    };
    Some((keyword.to_string(), collapse(arguments)))
}

/// A `RUN ["a", "b"]` exec form as `a b`; anything else unchanged.
fn exec_form(arguments: &str) -> String {
    match serde_json::from_str::<Vec<String>>(arguments) {
        Ok(words) => words.join(" "),
        Err(_) => arguments.to_string(),
    }
}

/// How well a layer's (keyword, arguments) fits an instruction: 0 not at all, 1 same
/// destination (classic builder), 2 one command contains the other, 3 same text.
fn score(instruction: &Instruction, keyword: &str, arguments: &str) -> u8 {
    if instruction.keyword != keyword {
        return 0;
    }
    let ours = exec_form(&without_flags(&instruction.arguments));
    let theirs = exec_form(&without_flags(arguments));
    if ours == theirs {
        return 3;
    }
    if keyword == "RUN" {
        let shorter = ours.len().min(theirs.len());
        if shorter >= 8 && (ours.contains(&theirs) || theirs.contains(&ours)) {
            return 2;
        }
        return 0;
    }
    // Classic builder: `COPY file:<hash> in /dest`. Compare the destination.
    if let Some((_, destination)) = theirs.rsplit_once(" in ") {
        let ours_destination = ours.rsplit(' ').next().unwrap_or_default();
        if destination.trim_end_matches('/') == ours_destination.trim_end_matches('/') {
            return 1;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKERFILE: &str = r#"# syntax=docker/dockerfile:1
# escape=\
FROM rust:1.95 AS build
WORKDIR /src
COPY . .
RUN cargo build --release

# the runtime image
from debian:bookworm-slim
RUN apt-get update \
    # keep the image small
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
ARG VERSION=1.2
RUN echo $VERSION > /version
COPY --chown=10001:10001 config/ /etc/app/
COPY --from=build /src/target/release/app /usr/local/bin/app
Copy tls/server.key /etc/app/tls/
RUN <<EOF
set -e
rm /etc/app/tls/server.key
EOF
"#;

    fn lines(mapped: &[Option<&Instruction>]) -> Vec<Option<usize>> {
        mapped.iter().map(|i| i.map(|i| i.line)).collect()
    }

    #[test]
    fn parses_continuations_comments_case_and_heredocs() {
        let dockerfile = Dockerfile::parse("Dockerfile", DOCKERFILE);
        let keywords: Vec<_> = dockerfile
            .instructions
            .iter()
            .map(|i| (i.keyword.as_str(), i.line, i.end_line, i.stage))
            .collect();
        assert_eq!(
            keywords,
            [
                ("FROM", 3, 3, 0),
                ("WORKDIR", 4, 4, 0),
                ("COPY", 5, 5, 0),
                ("RUN", 6, 6, 0),
                ("FROM", 9, 9, 1),
                ("RUN", 10, 13, 1),
                ("ARG", 14, 14, 1),
                ("RUN", 15, 15, 1),
                ("COPY", 16, 16, 1),
                ("COPY", 17, 17, 1),
                ("COPY", 18, 18, 1),
                ("RUN", 19, 22, 1),
            ]
        );
        assert_eq!(
            dockerfile.instructions[5].arguments,
            "apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*"
        );
        assert_eq!(dockerfile.final_from().map(|i| i.line), Some(9));
    }

    #[test]
    fn maps_buildkit_history_to_the_last_stage() {
        let dockerfile = Dockerfile::parse("Dockerfile", DOCKERFILE);
        let history: Vec<Option<String>> = [
            // Two layers of the base image.
            "# debian.sh --arch 'amd64' out/ 'bookworm' '@1717977600'",
            "RUN /bin/sh -c apt-get update # buildkit",
            "RUN /bin/sh -c apt-get update     && apt-get install -y --no-install-recommends ca-certificates     && rm -rf /var/lib/apt/lists/* # buildkit",
            "RUN |1 VERSION=1.2 /bin/sh -c echo $VERSION > /version # buildkit",
            "COPY --chown=10001:10001 config/ /etc/app/ # buildkit",
            "COPY /src/target/release/app /usr/local/bin/app # buildkit",
            "COPY tls/server.key /etc/app/tls/ # buildkit",
            "RUN /bin/sh -c set -e\nrm /etc/app/tls/server.key\n # buildkit",
        ]
        .iter()
        .map(|s| Some((*s).to_string()))
        .collect();
        let mapped = dockerfile.map_layers(&history);
        assert_eq!(
            lines(&mapped),
            [
                Some(9),
                Some(9),
                Some(10),
                Some(15),
                Some(16),
                Some(17),
                Some(18),
                Some(19)
            ]
        );
    }

    #[test]
    fn maps_classic_builder_history_by_destination_and_order() {
        let dockerfile = Dockerfile::parse("Dockerfile", DOCKERFILE);
        let history: Vec<Option<String>> = [
            "/bin/sh -c #(nop) ADD file:5d68d27cc15a80653c93d3a0b262a28112d47a46326ff5fc2dfbf7fa3b9a0ce8 in / ",
            "/bin/sh -c apt-get update     && apt-get install -y --no-install-recommends ca-certificates     && rm -rf /var/lib/apt/lists/*",
            "|1 VERSION=1.2 /bin/sh -c echo $VERSION > /version",
            "/bin/sh -c #(nop) COPY dir:3a4f6b0c8f0e9d1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192 in /etc/app/ ",
            "/bin/sh -c #(nop) COPY file:9b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c in /usr/local/bin/app ",
            "/bin/sh -c #(nop) COPY file:0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9 in /etc/app/tls/ ",
            "/bin/sh -c set -e rm /etc/app/tls/server.key",
        ]
        .iter()
        .map(|s| Some((*s).to_string()))
        .collect();
        let mapped = dockerfile.map_layers(&history);
        assert_eq!(
            lines(&mapped),
            [
                Some(9),
                Some(10),
                Some(15),
                Some(16),
                Some(17),
                Some(18),
                Some(19)
            ]
        );
    }

    #[test]
    fn unknown_history_falls_back_to_order() {
        let dockerfile = Dockerfile::parse("Dockerfile", "FROM scratch\nCOPY a /a\nCOPY b /b\n");
        let mapped = dockerfile.map_layers(&[None, Some("COPY b /b # buildkit".into())]);
        assert_eq!(lines(&mapped), [Some(2), Some(3)]);
        let base = dockerfile.map_layers(&[None, None, None]);
        assert_eq!(lines(&base), [Some(1), Some(2), Some(3)]);
    }

    #[test]
    fn describes_created_by_forms() {
        assert_eq!(
            describe("COPY app/ /app/ # buildkit"),
            Some(("COPY".into(), "app/ /app/".into()))
        );
        assert_eq!(
            describe("/bin/sh -c #(nop) COPY file:abc in /app "),
            Some(("COPY".into(), "file:abc in /app".into()))
        );
        assert_eq!(
            describe("RUN /bin/sh -c apt-get install -y curl # buildkit"),
            Some(("RUN".into(), "apt-get install -y curl".into()))
        );
        assert_eq!(
            describe("|2 A=1 B=2 /bin/sh -c make"),
            Some(("RUN".into(), "make".into()))
        );
        assert_eq!(
            describe(
                "RUN --mount=type=cache,target=/root/.cache /bin/sh -c pip install x # buildkit"
            ),
            Some(("RUN".into(), "pip install x".into()))
        );
        assert_eq!(describe("bazel build //app"), None);
    }
}
