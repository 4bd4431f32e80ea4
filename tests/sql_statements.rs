//! Every statement Bosun sends from Rust, checked against a migrated database: the project's
//! substitute for compile-time checking of SQL (see docs/development.md, "SQL").
//!
//! Statements live in `.sql` files under `queue/src/sql/` (and, for the simulated cloud of
//! the demo saga and the crash tests, under `sim/src/sql/`), one statement a file, included
//! with `include_str!`. This test prepares each of them (Parse and Describe, what `PREPARE`
//! does), so that a misspelt column, type or function, or a file that holds two statements,
//! fails the suite. Scripts under a `scripts/` folder run with `raw_sql` and cannot be
//! prepared (several statements, DDL, `VACUUM`); the tests that run them cover them. A second
//! test checks that the Rust sources of `queue`, `workers`, `sim` and `bin` hold no SQL literal, so
//! no statement escapes the first, and that every file is used and holds a statement of its
//! own.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use bosun_tests::TestDb;
use sqlx::Executor;

/// The workspace's root (this crate is `tests/` in it).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

/// The crates that send SQL, each with its statement files under `src/sql/`.
const SQL_CRATES: &[&str] = &["queue/src", "sim/src"];

/// Every statement file of every crate in `SQL_CRATES`, sorted within each crate.
fn sql_files() -> Vec<PathBuf> {
    SQL_CRATES
        .iter()
        .flat_map(|src| files(&workspace().join(src).join("sql"), "sql"))
        .collect()
}

/// Every file under `dir` ending in `.ext`, sorted.
fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == ext) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Whether `path` is a script (run with `raw_sql`) rather than one preparable statement.
fn is_script(path: &Path) -> bool {
    path.components().any(|c| c.as_os_str() == "scripts")
}

fn relative(path: &Path) -> String {
    path.strip_prefix(workspace())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Scripts that make what some statements act on besides Bosun's schema, run first: the
/// bench's tables in its scratch database, and the simulated cloud's schema.
const SETUP_SCRIPTS: &[&str] = &[
    "queue/src/sql/bench/scripts/ceiling_create.sql",
    "queue/src/sql/bench/scripts/starts_create.sql",
    "queue/src/sql/bench/scripts/pinned_other_create.sql",
    "sim/src/sql/scripts/schema_create.sql",
];

#[tokio::test]
async fn every_statement_prepares_on_a_migrated_database() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    for script in SETUP_SCRIPTS {
        let text = std::fs::read_to_string(workspace().join(script))
            .unwrap_or_else(|e| panic!("{script}: {e}"));
        conn.execute(sqlx::raw_sql(&text))
            .await
            .unwrap_or_else(|e| panic!("{script}: {e}"));
    }
    let mut failures = Vec::new();
    let mut prepared = 0;
    for path in sql_files() {
        if is_script(&path) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        match conn.prepare(text.as_str()).await {
            Ok(_) => prepared += 1,
            Err(error) => failures.push(format!("{}: {error}", relative(&path))),
        }
    }
    assert!(
        failures.is_empty(),
        "statements that do not prepare:\n{}",
        failures.join("\n")
    );
    assert!(prepared > 50, "only {prepared} statements found");
}

/// Whether `text`, a string literal's contents, reads as SQL: it begins with a statement's
/// keyword, in capitals as Bosun writes them. Not `LISTEN`: Bosun listens through sqlx's
/// `PgListener`, which takes channel names, and log messages speak of the LISTEN connection.
fn looks_like_sql(text: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "WITH",
        "COPY",
        "VACUUM",
        "ANALYZE",
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "CREATE",
        "DROP",
        "ALTER",
        "TRUNCATE",
        "NOTIFY",
        "DO",
        "SET",
        "LOCK",
        "DEALLOCATE",
        "PREPARE",
        "EXPLAIN",
        "GRANT",
        "REVOKE",
        "MERGE",
        "CALL",
        "REINDEX",
        "CLUSTER",
        "SAVEPOINT",
    ];
    let text = text.trim_start();
    KEYWORDS.iter().any(|keyword| {
        text.strip_prefix(keyword).is_some_and(|rest| {
            rest.is_empty() || rest.starts_with(|c: char| c.is_whitespace() || c == '(')
        })
    })
}

/// The string literals of Rust source `text`, each with the line it starts on. Skips comments
/// and character literals; enough for this workspace's code, not a full lexer.
fn string_literals(text: &str) -> Vec<(usize, String)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                line += 1;
                i += 1;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let end = text[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |e| i + 2 + e + 2);
                line += text[i..end].matches('\n').count();
                i = end;
            }
            b'\'' => {
                // A character literal ('"', '\'', 'x'), or else a lifetime.
                if bytes.get(i + 1) == Some(&b'\\') {
                    let end = text[i + 2..]
                        .find('\'')
                        .map_or(bytes.len(), |e| i + 2 + e + 1);
                    i = end;
                } else {
                    let width = text[i + 1..].chars().next().map_or(1, char::len_utf8);
                    i += if bytes.get(i + 1 + width) == Some(&b'\'') {
                        width + 2
                    } else {
                        1
                    };
                }
            }
            b'r' if matches!(bytes.get(i + 1), Some(b'"' | b'#'))
                && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_')) =>
            {
                let hashes = bytes[i + 1..].iter().take_while(|&&b| b == b'#').count();
                let open = i + 1 + hashes;
                if bytes.get(open) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let close = format!("\"{}", "#".repeat(hashes));
                let end = text[open + 1..]
                    .find(&close)
                    .map_or(bytes.len(), |e| open + 1 + e);
                out.push((line, text[open + 1..end].to_string()));
                line += text[i..end].matches('\n').count();
                i = end + close.len();
            }
            b'"' => {
                let mut j = i + 1;
                while j < bytes.len() && bytes[j] != b'"' {
                    j += if bytes[j] == b'\\' { 2 } else { 1 };
                }
                out.push((line, text[i + 1..j.min(bytes.len())].to_string()));
                line += text[i..j.min(bytes.len())].matches('\n').count();
                i = j + 1;
            }
            _ => i += 1,
        }
    }
    out
}

/// What marks a statement that is built at run time (its columns or an identifier vary), on
/// the line of its literal or just above.
const BUILT_AT_RUN_TIME: &str = "SQL built at run time";

#[test]
fn no_sql_literal_is_left_in_the_rust_sources() {
    let mut found = Vec::new();
    for crate_dir in ["queue/src", "workers/src", "sim/src", "bin/src"] {
        for path in files(&workspace().join(crate_dir), "rs") {
            let source = std::fs::read_to_string(&path).unwrap();
            // Unit tests may spell out a statement they expect a builder to make.
            let code = source.split("#[cfg(test)]\nmod tests").next().unwrap();
            let lines: Vec<&str> = code.lines().collect();
            for (line, literal) in string_literals(code) {
                if !looks_like_sql(&literal) {
                    continue;
                }
                let above = &lines[line.saturating_sub(4)..line.min(lines.len())];
                if above.iter().any(|l| l.contains(BUILT_AT_RUN_TIME)) {
                    continue;
                }
                found.push(format!("{}:{line}: {:?}", relative(&path), literal.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "SQL in Rust source; move it to a file under queue/src/sql/ or sim/src/sql/ (or, for a \
         statement built at run time, say so with a comment `{BUILT_AT_RUN_TIME}` above it):\n{}",
        found.join("\n")
    );
}

/// Why the scanner can be trusted: it finds SQL where it is, and nothing where it is not.
#[test]
fn the_scanner_finds_sql_in_literals_and_not_in_comments() {
    let source = r##"
        // "SELECT in a comment"
        let a = '"'; let b = sqlx::query("SELECT 1");
        let c = r#"
            UPDATE t SET x = 1"#;
        let d = "Selected nothing"; fn f<'a>(x: &'a str) -> &'a str { "DO $$ BEGIN END $$" }
    "##;
    let sql: Vec<(usize, String)> = string_literals(source)
        .into_iter()
        .filter(|(_, text)| looks_like_sql(text))
        .map(|(line, text)| (line, text.trim().to_string()))
        .collect();
    assert_eq!(
        sql,
        [
            (3, "SELECT 1".to_string()),
            (4, "UPDATE t SET x = 1".to_string()),
            (6, "DO $$ BEGIN END $$".to_string()),
        ]
    );
}

/// Every file under `queue/src/sql/` and `sim/src/sql/` is included by its crate's code, once,
/// and holds a statement no other file holds: one definition of each.
#[test]
fn every_sql_file_is_used_once_and_holds_its_own_statement() {
    let mut by_text: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut unused = Vec::new();
    for src in SQL_CRATES {
        let src = workspace().join(src);
        let sources: String = files(&src, "rs")
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect();
        for path in files(&src.join("sql"), "sql") {
            let name = path.strip_prefix(&src).unwrap().display().to_string();
            let uses = sources.matches(&format!("\"{name}\"")).count();
            if uses != 1 {
                unused.push(format!("{}: included {uses} times", relative(&path)));
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let statement: Vec<&str> = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .flat_map(str::split_whitespace)
                .collect();
            assert!(
                !statement.is_empty(),
                "{} holds no statement",
                relative(&path)
            );
            by_text
                .entry(statement.join(" "))
                .or_default()
                .push(relative(&path));
        }
    }
    assert!(unused.is_empty(), "{}", unused.join("\n"));
    let twice: Vec<String> = by_text
        .into_values()
        .filter(|names| names.len() > 1)
        .map(|names| names.join(" and "))
        .collect();
    assert!(
        twice.is_empty(),
        "the same statement in {}",
        twice.join("; ")
    );
}
