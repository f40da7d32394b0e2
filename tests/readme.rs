//! The README and the documents in `docs/` as a user reads them: every `unmix` command in
//! their `sh` blocks parses as written, no link leaves the repository, and every link
//! within it leads to a file, and a heading, that exists.
//!
//! A command is checked by running it with `--help` appended: the command-line parser
//! validates every option and value before it (an unknown option, a missing value, a value
//! its parser refuses all fail), then prints the help instead of running anything.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::util::unmix;

/// The repository's documents a user reads.
fn documents() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md"), root.join("research/README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .map(|e| e.expect("a readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// Lines of a document with their (1-based) numbers.
type Numbered<'a> = Vec<(usize, &'a str)>;

/// The lines of `text` outside fenced code blocks, and those inside `sh` blocks.
fn split_fences(text: &str) -> (Numbered<'_>, Numbered<'_>) {
    let (mut prose, mut shell) = (Vec::new(), Vec::new());
    let mut fence: Option<bool> = None; // Some(is_sh) inside a block
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(info) = trimmed.strip_prefix("```") {
            fence = match fence {
                Some(_) => None,
                None => Some(info.trim() == "sh"),
            };
            continue;
        }
        match fence {
            None => prose.push((i + 1, line)),
            Some(true) => shell.push((i + 1, line)),
            Some(false) => {}
        }
    }
    (prose, shell)
}

/// Shell words of one command line (quotes and backslash escapes as a POSIX shell reads
/// them), split into the commands of a pipeline; a `#` that starts a word starts a comment.
fn pipeline_words(line: &str) -> Vec<Vec<String>> {
    let mut commands = vec![Vec::new()];
    let mut word: Option<String> = None;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    w.push(q);
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => w.extend(chars.next()),
                        _ => w.push(q),
                    }
                }
            }
            '\\' => word.get_or_insert_with(String::new).extend(chars.next()),
            '#' if word.is_none() => break,
            '|' => {
                commands.last_mut().unwrap().extend(word.take());
                commands.push(Vec::new());
            }
            c if c.is_whitespace() => commands.last_mut().unwrap().extend(word.take()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    commands.last_mut().unwrap().extend(word.take());
    commands
}

/// Every `unmix` command of `text`'s `sh` blocks (continued lines joined), as the
/// arguments after `unmix`, with the line it starts on. `cargo run --release -- ARGS` is
/// `unmix ARGS`.
fn unmix_commands(text: &str) -> Vec<(usize, Vec<String>)> {
    let (_, shell) = split_fences(text);
    let mut joined: Vec<(usize, String)> = Vec::new();
    let mut continued = false;
    for (n, line) in shell {
        let (body, continues) = match line.trim_end().strip_suffix('\\') {
            Some(body) => (body.to_string(), true),
            None => (line.to_string(), false),
        };
        match (continued, joined.last_mut()) {
            (true, Some((_, previous))) => {
                previous.push(' ');
                previous.push_str(&body);
            }
            _ => joined.push((n, body)),
        }
        continued = continues;
    }
    let mut commands = Vec::new();
    for (n, line) in joined {
        for words in pipeline_words(&line) {
            match words.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
                ["unmix", args @ ..] => commands.push((n, args.iter().map(|s| s.to_string()).collect())),
                ["cargo", "run", "--release", "--", args @ ..] => {
                    commands.push((n, args.iter().map(|s| s.to_string()).collect()))
                }
                _ => {}
            }
        }
    }
    commands
}

#[test]
fn every_unmix_command_in_the_documents_parses() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for path in documents() {
        let text = std::fs::read_to_string(&path).unwrap();
        for (line, args) in unmix_commands(&text) {
            let mut with_help: Vec<&str> = args.iter().map(String::as_str).collect();
            with_help.push("--help");
            let out = unmix(&with_help);
            checked += 1;
            if !out.status.success() || !String::from_utf8_lossy(&out.stdout).contains("Usage:") {
                failures.push(format!(
                    "{}:{line}: unmix {}: {}",
                    path.display(),
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "commands that do not parse:\n{}", failures.join("\n"));
    // The README alone has a dozen; a parser that found none would check nothing.
    assert!(checked >= 30, "only {checked} commands found");
}

/// The checker itself: a mistyped option, a missing value and a refused value fail.
#[test]
fn a_command_that_does_not_parse_is_caught() {
    for bad in [
        &["separate", "x.wav", "-n", "3", "-o", "out", "--no-such-option"][..],
        &["separate", "x.wav", "-n", "many", "-o", "out"],
        &["live", "--warmup", "soon", "-n", "2"],
        &["frobnicate"],
    ] {
        let mut args = bad.to_vec();
        args.push("--help");
        assert!(!unmix(&args).status.success(), "unmix {} parsed", bad.join(" "));
    }
    let text = "```sh\nunmix apply m.unmix in.wav -o s.wav \\\n    --scores s.csv  # a comment\nyour-logger | \
                unmix apply m.unmix - -o 'my sources.csv'\ncargo run --release -- demo\n```\n";
    let commands: Vec<Vec<String>> = unmix_commands(text).into_iter().map(|(_, c)| c).collect();
    assert_eq!(
        commands,
        [
            vec!["apply", "m.unmix", "in.wav", "-o", "s.wav", "--scores", "s.csv"],
            vec!["apply", "m.unmix", "-", "-o", "my sources.csv"],
            vec!["demo"],
        ]
    );
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of every heading of `text` (outside code blocks, where `#` is a comment).
fn anchors(text: &str) -> HashSet<String> {
    let (prose, _) = split_fences(text);
    prose
        .iter()
        .filter(|(_, line)| line.starts_with('#'))
        .filter_map(|(_, line)| line.trim_start_matches('#').strip_prefix(' '))
        .map(anchor)
        .collect()
}

/// The `(target)` of every Markdown link `[text](target)` in `line`.
fn link_targets(line: &str) -> Vec<&str> {
    let mut targets = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let Some(end) = after.find(')') else { break };
        targets.push(&after[..end]);
        rest = &after[end..];
    }
    targets
}

#[test]
fn every_link_stays_in_the_repository_and_leads_somewhere() {
    let mut failures = Vec::new();
    for path in documents() {
        let text = std::fs::read_to_string(&path).unwrap();
        let (prose, _) = split_fences(&text);
        for (line, content) in prose {
            if content.contains("http://") || content.contains("https://") {
                failures.push(format!("{}:{line}: a link outside the repository", path.display()));
            }
            for target in link_targets(content) {
                let (file, fragment) = target.split_once('#').unwrap_or((target, ""));
                let linked = if file.is_empty() { path.clone() } else { path.parent().unwrap().join(file) };
                if !linked.exists() {
                    failures.push(format!("{}:{line}: {target}: no such file", path.display()));
                    continue;
                }
                if !fragment.is_empty() {
                    let headings = anchors(&std::fs::read_to_string(&linked).unwrap_or_default());
                    if !headings.contains(fragment) {
                        failures.push(format!("{}:{line}: {target}: no such heading", path.display()));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "broken links:\n{}", failures.join("\n"));
}

#[test]
fn anchors_are_githubs() {
    assert_eq!(anchor("`unmix synth` — benchmark mixtures"), "unmix-synth--benchmark-mixtures");
    assert_eq!(
        anchor("The saturating chain is the benchmark's own shape"),
        "the-saturating-chain-is-the-benchmarks-own-shape"
    );
    assert_eq!(anchor("β and λ"), "β-and-λ");
}
