//! The architecture's rules, checked on the source: the core (`src/domain`, `src/app`)
//! names no adapter and no infrastructure crate, and the modules of `src/adapters/db`
//! depend on each other in one direction only. Every path a file names is found wherever
//! it is written (a `use`, a type, an expression, a macro's arguments), with comments and
//! string literals left out and relative paths (`super::`, `self::`, a child module)
//! resolved before judging. Each checker also runs on a small tree that breaks its rule,
//! so it cannot pass by finding nothing.
//!
//! The sources are read by a small tokenizer here rather than `syn`: adding `syn` or
//! `proc-macro2` as dev-dependencies changes the features of crates the server shares
//! with them, which made cargo rebuild candle, whisper-rs, poem-openapi and a dozen more
//! for every test run after checkout (measured with cargo's fingerprint log). Paths are
//! all this test needs, and they are simple to find in tokens.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Crates the core must not use: the web framework, the databases, the HTTP client.
const FORBIDDEN_IN_CORE: &[&str] =
    &["poem", "poem_openapi", "sea_orm", "sea_query", "sqlx", "rusqlite", "reqwest", "migration"];

/// Modules of this crate the core must not use: the adapters, driving and driven.
const FORBIDDEN_MODULES_IN_CORE: &[&str] = &["adapters", "http"];

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display())) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The module path of a file under `src` (`src/app/ingest.rs` -> `crate::app::ingest`,
/// `src/domain/ports/mod.rs` -> `crate::domain::ports`).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).expect("a file under src");
    let mut module = vec!["crate".to_string()];
    for part in relative.iter() {
        let part = part.to_string_lossy();
        match part.strip_suffix(".rs") {
            Some("mod" | "lib" | "main") => {}
            Some(stem) => module.push(stem.to_string()),
            None => module.push(part.to_string()),
        }
    }
    module
}

/// What a path is made of in Rust source: identifiers and punctuation (brackets too).
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Punct(char),
}

/// The identifiers and punctuation of `source`; comments, string, byte and character
/// literals, numbers and lifetimes are dropped.
fn tokens(source: &str) -> Vec<Token> {
    lex(source).0
}

/// The string literals of `source` (raw ones with their `r#"` and quotes), outside comments.
fn string_literals(source: &str) -> Vec<String> {
    lex(source).1
}

/// [`tokens`] and [`string_literals`] of `source`, read in one pass.
fn lex(source: &str) -> (Vec<Token>, Vec<String>) {
    let chars: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let mut strings = Vec::new();
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            // Block comments nest.
            let mut depth = 0;
            loop {
                if at(i) == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if at(i) == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else if i >= chars.len() {
                    break;
                } else {
                    i += 1;
                }
            }
        } else if let Some(end) = raw_string_end(&chars, i) {
            strings.push(chars[i..end.min(chars.len())].iter().collect());
            i = end;
        } else if c == '"' || (c == 'b' && at(i + 1) == '"') {
            i += if c == 'b' { 2 } else { 1 };
            let start = i;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            strings.push(chars[start..i.min(chars.len())].iter().collect());
            i += 1;
        } else if c == '\'' || (c == 'b' && at(i + 1) == '\'') {
            i += if c == 'b' { 2 } else { 1 };
            if at(i) == '\\' {
                // An escaped character literal: up to the closing quote.
                while i < chars.len() && chars[i] != '\'' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
            } else if at(i + 1) == '\'' {
                i += 2;
            } else {
                // A lifetime: skip its name.
                while at(i).is_alphanumeric() || at(i) == '_' {
                    i += 1;
                }
            }
        } else if c.is_alphabetic() || c == '_' {
            if c == 'r' && at(i + 1) == '#' {
                i += 2;
            }
            let name_start = i;
            while at(i).is_alphanumeric() || at(i) == '_' {
                i += 1;
            }
            out.push(Token::Ident(chars[name_start..i].iter().collect()));
        } else if c.is_ascii_digit() {
            while at(i).is_alphanumeric() || at(i) == '_' || at(i) == '.' && at(i + 1).is_ascii_digit() {
                i += 1;
            }
        } else {
            out.push(Token::Punct(c));
            i += 1;
        }
    }
    (out, strings)
}

/// Where a raw string (`r"…"`, `r#"…"#`, `br"…"`) starting at `i` ends, if one does.
fn raw_string_end(chars: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    if chars.get(j) == Some(&'b') {
        j += 1;
    }
    if chars.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let hashes = chars[j..].iter().take_while(|c| **c == '#').count();
    j += hashes;
    if chars.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    while j < chars.len() {
        if chars[j] == '"' && chars[j + 1..].iter().take(hashes).filter(|c| **c == '#').count() == hashes {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(chars.len())
}

/// Collects the paths of one file, made absolute where they are relative.
struct PathCollector {
    /// The file's module, then each inline `mod name {` entered, with the brace depth
    /// at which it ends.
    modules: Vec<(Vec<String>, usize)>,
    /// Child modules declared in this file (`mod name;` or `mod name { … }`), per module.
    children: BTreeSet<Vec<String>>,
    paths: BTreeSet<String>,
}

impl PathCollector {
    fn module(&self) -> &[String] {
        &self.modules.last().expect("the file's module").0
    }

    /// Records `segments` as written in the current module.
    fn record(&mut self, segments: Vec<String>) {
        let Some(first) = segments.first() else { return };
        let module = self.module().to_vec();
        let mut child = module.clone();
        child.push(first.clone());
        let mut absolute = match first.as_str() {
            "self" | "super" => module,
            "crate" => vec!["crate".to_string()],
            _ if self.children.contains(&child) => module,
            _ => Vec::new(),
        };
        let mut rest = segments.iter().peekable();
        if first == "self" || first == "crate" {
            rest.next();
        }
        while rest.peek().is_some_and(|s| *s == "super") {
            rest.next();
            absolute.pop();
        }
        absolute.extend(rest.cloned());
        self.paths.insert(absolute.join("::"));
    }

    /// Reads a `use` tree at `tokens[*pos]`, recording every path it names.
    fn use_tree(&mut self, tokens: &[Token], pos: &mut usize, prefix: &mut Vec<String>) {
        let depth = prefix.len();
        loop {
            match tokens.get(*pos) {
                Some(Token::Ident(name)) => {
                    prefix.push(name.clone());
                    *pos += 1;
                    if is_path_separator(tokens, *pos) {
                        *pos += 2;
                        continue;
                    }
                    if tokens.get(*pos) == Some(&Token::Ident("as".into())) {
                        *pos += 2;
                    }
                    let mut path = prefix.clone();
                    if path.last().is_some_and(|last| last == "self") {
                        path.pop();
                    }
                    self.record(path);
                }
                Some(Token::Punct('*')) => {
                    *pos += 1;
                    self.record(prefix.clone());
                }
                Some(Token::Punct('{')) => {
                    *pos += 1;
                    while !matches!(tokens.get(*pos), None | Some(Token::Punct('}'))) {
                        self.use_tree(tokens, pos, prefix);
                        if tokens.get(*pos) == Some(&Token::Punct(',')) {
                            *pos += 1;
                        }
                    }
                    *pos += 1;
                }
                _ => {}
            }
            break;
        }
        prefix.truncate(depth);
    }

    fn collect(&mut self, tokens: &[Token]) {
        let mut depth = 0;
        let mut pos = 0;
        while pos < tokens.len() {
            match &tokens[pos] {
                Token::Punct('{') => depth += 1,
                Token::Punct('}') => {
                    depth -= 1;
                    if self.modules.len() > 1 && self.modules.last().is_some_and(|(_, end)| *end > depth) {
                        self.modules.pop();
                    }
                }
                Token::Ident(word) if word == "mod" => {
                    if let Some(Token::Ident(name)) = tokens.get(pos + 1) {
                        let mut child = self.module().to_vec();
                        child.push(name.clone());
                        self.children.insert(child.clone());
                        if tokens.get(pos + 2) == Some(&Token::Punct('{')) {
                            depth += 1;
                            self.modules.push((child, depth));
                            pos += 3;
                            continue;
                        }
                    }
                }
                Token::Ident(word) if word == "use" && !follows_separator(tokens, pos) => {
                    pos += 1;
                    self.use_tree(tokens, &mut pos, &mut Vec::new());
                    continue;
                }
                Token::Ident(_) if !follows_separator(tokens, pos) || starts_global_path(tokens, pos) => {
                    let mut segments = Vec::new();
                    while let Some(Token::Ident(name)) = tokens.get(pos) {
                        segments.push(name.clone());
                        if !is_path_separator(tokens, pos + 1) {
                            break;
                        }
                        pos += 3;
                    }
                    if segments.len() > 1 {
                        self.record(segments);
                    }
                }
                _ => {}
            }
            pos += 1;
        }
    }
}

/// Whether `::` starts at `pos`.
fn is_path_separator(tokens: &[Token], pos: usize) -> bool {
    tokens.get(pos) == Some(&Token::Punct(':')) && tokens.get(pos + 1) == Some(&Token::Punct(':'))
}

/// Whether the token at `pos` comes right after `::`.
fn follows_separator(tokens: &[Token], pos: usize) -> bool {
    pos >= 2 && is_path_separator(tokens, pos - 2)
}

/// Whether the identifier at `pos` follows a leading `::` (`::reqwest::Client`), not
/// one inside a path (`a::b`) or after a type (`Vec::<u8>::new`).
fn starts_global_path(tokens: &[Token], pos: usize) -> bool {
    follows_separator(tokens, pos)
        && !matches!(pos.checked_sub(3).and_then(|i| tokens.get(i)), Some(Token::Ident(_) | Token::Punct('>')))
}

/// Every path named in `file` (a file of module `module`), absolute where relative.
fn paths_in(file: &Path, module: Vec<String>) -> BTreeSet<String> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    let mut collector = PathCollector { modules: vec![(module, 0)], children: BTreeSet::new(), paths: BTreeSet::new() };
    let tokens = tokens(&text);
    // Child modules first, so a path through one declared further down resolves too.
    collector.collect(&tokens);
    collector.paths.clear();
    collector.collect(&tokens);
    collector.paths
}

/// Where files of `src/domain` and `src/app` name an adapter or an infrastructure crate.
fn core_violations(src: &Path) -> Vec<String> {
    let mut violations = Vec::new();
    for layer in ["domain", "app"] {
        let dir = src.join(layer);
        if !dir.exists() {
            continue;
        }
        for file in rust_files(&dir) {
            for path in paths_in(&file, module_of(src, &file)) {
                let segments: Vec<&str> = path.split("::").collect();
                let external = segments.first().is_some_and(|first| FORBIDDEN_IN_CORE.contains(first));
                let adapter = segments.first() == Some(&"crate")
                    && segments.get(1).is_some_and(|second| FORBIDDEN_MODULES_IN_CORE.contains(second));
                if external || adapter {
                    violations.push(format!("{} uses {path}", file.display()));
                }
            }
        }
    }
    violations
}

/// The modules of `src/adapters/db` and which of them each one uses (`db` is the
/// folder's own `mod.rs`).
fn db_dependencies(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let dir = src.join("adapters").join("db");
    let base = ["crate", "adapters", "db"];
    let children: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter_map(|path| {
            let name = path.file_name()?.to_string_lossy().to_string();
            let name = name.strip_suffix(".rs").map(str::to_string).unwrap_or(name);
            (name != "mod").then_some(name)
        })
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(&dir) {
        let module = module_of(src, &file);
        let node = module.get(base.len()).cloned().unwrap_or_else(|| "db".to_string());
        let uses = graph.entry(node.clone()).or_default();
        for path in paths_in(&file, module) {
            let segments: Vec<&str> = path.split("::").collect();
            if segments.len() <= base.len() || segments[..base.len()] != base {
                continue;
            }
            let target = segments[base.len()];
            let target = if children.contains(target) { target.to_string() } else { "db".to_string() };
            if target != node {
                uses.insert(target);
            }
        }
    }
    graph
}

/// Every cycle among the modules of `src/adapters/db`, as `a -> b -> a`.
fn db_cycles(src: &Path) -> Vec<String> {
    let graph = db_dependencies(src);
    let mut cycles = BTreeSet::new();
    for start in graph.keys() {
        // Depth-first from `start`, reporting each path that returns to it.
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        while let Some((node, trail)) = stack.pop() {
            for next in graph.get(&node).into_iter().flatten() {
                if next == start {
                    // Rotate so that one cycle is reported once, from its smallest module.
                    let smallest = trail.iter().enumerate().min_by_key(|(_, m)| *m).map(|(i, _)| i).unwrap_or(0);
                    let mut cycle: Vec<String> = trail[smallest..].iter().chain(&trail[..smallest]).cloned().collect();
                    cycle.push(cycle[0].clone());
                    cycles.insert(cycle.join(" -> "));
                } else if !trail.contains(next) {
                    let mut longer = trail.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    cycles.into_iter().collect()
}

fn source_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn the_domain_and_the_use_cases_name_no_adapter_web_framework_database_or_http_client() {
    let violations = core_violations(&source_root());
    assert!(violations.is_empty(), "the core must not depend on these:\n{}", violations.join("\n"));
}

#[test]
fn no_module_of_the_database_adapter_uses_one_that_uses_it_back() {
    let cycles = db_cycles(&source_root());
    assert!(cycles.is_empty(), "import cycles in src/adapters/db:\n{}", cycles.join("\n"));
}

#[test]
fn the_database_adapters_dependencies_are_found_at_all() {
    // A checker that saw no edge would pass every tree: the real one has several.
    let graph = db_dependencies(&source_root());
    let uses = |from: &str, to: &str| graph.get(from).is_some_and(|uses| uses.contains(to));
    assert!(uses("sqlite_writer", "sqlite_transaction"), "{graph:?}");
    assert!(uses("db", "sqlite"), "{graph:?}");
}

/// Where a file of `src` starts work on another thread without the caller's span: a
/// bare `spawn_blocking` (use `telemetry::blocking::spawn_blocking`) or a new thread
/// (only the SQLite writer has one, and it enters each request's span).
fn span_losing_threads(src: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for file in rust_files(src) {
        let relative = file.strip_prefix(src).unwrap_or(&file).to_string_lossy().replace('\\', "/");
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let code: Vec<&str> = text.lines().filter(|line| !line.trim_start().starts_with("//")).collect();
        let code = code.join("\n");
        if code.contains("task::spawn_blocking(") && relative != "telemetry/blocking.rs" {
            found.push(format!("{relative}: tokio's spawn_blocking without the caller's span"));
        }
        if code.contains("thread::Builder::new()") && relative != "adapters/db/sqlite_writer.rs" {
            found.push(format!("{relative}: a thread of its own"));
        }
    }
    found
}

#[test]
fn work_on_other_threads_keeps_the_callers_span() {
    let found = span_losing_threads(&source_root());
    assert!(found.is_empty(), "log lines written there would lose the request id:\n{}", found.join("\n"));
}

#[test]
fn the_thread_checker_sees_a_bare_spawn_blocking() {
    let dir = tree(&[("app/x.rs", "async fn f() { tokio::task::spawn_blocking(|| 1).await; }")]);
    assert_eq!(span_losing_threads(dir.path()).len(), 1);
}

/// Writes `files` (path under `src`, contents) into a fresh tree.
fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("a temporary directory");
    for (path, contents) in files {
        let path = root.path().join(path);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("folders");
        std::fs::write(path, contents).expect("a file");
    }
    root
}

#[test]
fn the_core_checker_finds_adapters_and_database_crates_however_they_are_named() {
    let root = tree(&[
        ("app/ingest.rs", "use crate::adapters::db::Database;\nfn ok(x: crate::domain::model::User) {}"),
        ("app/search.rs", "fn f(pool: &sea_orm::DatabaseConnection) {}"),
        ("app/jobs.rs", "mod tests { use super::super::super::http::AppState; }"),
        ("domain/model.rs", "fn g() { let _ = reqwest::Client::new(); }"),
        ("domain/ports/mod.rs", "fn h() { tracing::info!(\"{}\", rusqlite::version()); }"),
        ("domain/clean.rs", "use super::model::User; use chrono::Utc; fn i() { serde_json::json!({}); }"),
    ]);
    let violations = core_violations(root.path()).join("\n");
    for expected in [
        "crate::adapters::db::Database",
        "sea_orm::DatabaseConnection",
        "crate::http::AppState",
        "reqwest::Client::new",
        "rusqlite::version",
    ] {
        assert!(violations.contains(expected), "{expected} not found in:\n{violations}");
    }
    assert!(!violations.contains("clean.rs"), "{violations}");
    assert!(!violations.contains("crate::domain::model::User"), "{violations}");
}

#[test]
fn the_cycle_checker_finds_two_modules_that_use_each_other_and_longer_circles() {
    let root = tree(&[
        ("adapters/db/mod.rs", "mod a; mod b; mod c; mod d; pub use a::A;"),
        ("adapters/db/a.rs", "use super::b::B; pub struct A;"),
        ("adapters/db/b.rs", "pub struct B; fn f(_: crate::adapters::db::a::A) {}"),
        ("adapters/db/c.rs", "use super::d::D; pub struct C;"),
        ("adapters/db/d.rs", "use super::helper; pub struct D;"),
    ]);
    let cycles = db_cycles(root.path());
    assert!(cycles.contains(&"a -> b -> a".to_string()), "{cycles:?}");
    // d uses an item of mod.rs, which uses a, which does not lead back to d: no cycle.
    assert!(!cycles.iter().any(|c| c.contains('d')), "{cycles:?}");
    let root = tree(&[
        ("adapters/db/mod.rs", "mod a; mod b; mod c; fn helper() {} use c::C;"),
        ("adapters/db/a.rs", "use super::b::B; pub struct A;"),
        ("adapters/db/b.rs", "use super::c::C; pub struct B;"),
        ("adapters/db/c.rs", "use super::helper; mod tests { use super::super::a::A; }"),
    ]);
    let cycles = db_cycles(root.path());
    assert!(cycles.contains(&"a -> b -> c -> a".to_string()), "{cycles:?}");
    assert!(cycles.contains(&"c -> db -> c".to_string()), "{cycles:?}");
}

#[test]
fn comments_and_strings_hide_no_path_and_invent_none() {
    let source = r##"
        // use sea_orm::Commented;
        /* use poem::Blocked; /* nested */ rusqlite::Still */
        const TEXT: &str = "reqwest::InAString";
        const RAW: &str = r#"sqlx::InARawString "quoted""#;
        fn f<'a>(x: &'a str) -> char { let _ = b'\''; '\n' }
        use crate::domain::{model::{User, UserId as Id}, ports::*};
        fn g() -> real::Path { ::global::Thing::new(); Vec::<u8>::new() }
    "##;
    let file = tree(&[("domain/sample.rs", source)]);
    let paths = paths_in(&file.path().join("domain/sample.rs"), vec!["crate".into(), "domain".into(), "sample".into()]);
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    for expected in ["crate::domain::model::User", "crate::domain::model::UserId", "crate::domain::ports", "real::Path"]
    {
        assert!(paths.contains(&expected), "{expected} missing from {paths:?}");
    }
    assert!(paths.contains(&"global::Thing::new"), "{paths:?}");
    for hidden in ["sea_orm", "poem", "rusqlite", "reqwest", "sqlx"] {
        assert!(!paths.iter().any(|p| p.starts_with(hidden)), "{hidden} found in {paths:?}");
    }
}

/// The words that start a statement: in a string literal, they mean SQL is written there.
const SQL_STARTS: &[&str] = &["SELECT ", "INSERT INTO", "UPDATE ", "DELETE FROM", "WITH "];

/// The files of `src/adapters/db` that must run statements written in `statements` only:
/// all but `statements` itself and the migration lock, whose advisory-lock calls are
/// PostgreSQL's locking protocol at start, not statements over the schema.
fn runs_shared_statements_only(relative: &str) -> bool {
    let Some(name) = relative.strip_prefix("adapters/db/") else { return false };
    !name.starts_with("statements/") && name != "migration_lock.rs"
}

/// Where such a file writes SQL of its own instead of naming a shared statement.
fn sql_outside_statements(src: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for file in rust_files(src) {
        let relative = file.strip_prefix(src).unwrap_or(&file).to_string_lossy().replace('\\', "/");
        if !runs_shared_statements_only(&relative) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        for literal in string_literals(&text) {
            if SQL_STARTS.iter().any(|start| literal.contains(start)) {
                found.push(format!("{relative}: {literal}"));
            }
        }
    }
    found
}

#[test]
fn the_database_adapter_writes_sql_only_in_its_statements_modules() {
    let found = sql_outside_statements(&source_root());
    assert!(found.is_empty(), "each statement is written once, in src/adapters/db/statements:\n{}", found.join("\n"));
}

#[test]
fn the_sql_checker_finds_statements_outside_the_statements_modules_but_not_in_comments() {
    let root = tree(&[
        ("adapters/db/sqlite_transaction.rs", "fn f(c: &C) { c.execute(\"DELETE FROM users WHERE id = ?1\"); }"),
        ("adapters/db/postgres_reminders.rs", "// SELECT in a comment\nfn g() -> &'static str { \"no statement\" }"),
        ("adapters/db/statements/users.rs", "static S: &str = \"SELECT id FROM users\";"),
        ("adapters/db/reads.rs", "const Q: &str = r#\"UPDATE jobs SET state = 'done'\"#;"),
        ("app/ingest.rs", "const NOT_THE_DATABASE_ADAPTER: &str = \"SELECT 1\";"),
    ]);
    let found = sql_outside_statements(root.path());
    assert_eq!(
        found,
        [
            "adapters/db/reads.rs: r#\"UPDATE jobs SET state = 'done'\"#",
            "adapters/db/sqlite_transaction.rs: DELETE FROM users WHERE id = ?1"
        ],
        "{found:?}"
    );
}
