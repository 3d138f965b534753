//! The server's modules depend on each other one way: from the edge down to the stages, never back, and never
//! in a loop. This reads every `crate::` path in `server/src` (comments and string literals skipped), groups
//! the files by top-level module, and fails on an import that climbs a tier or on a loop between modules.
//! `cargo test --test it module_tiers -- --nocapture` prints the graph. Paths that leave a module through
//! `super::` are not read: none do (`super::` only ever names a module's own parent inside it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The tiers, top first. A module may use any module of a lower tier, and one of its own tier as long as that
/// makes no loop. A new module must be given a tier here.
const TIERS: &[(&str, &[&str])] = &[
    ("entry points: the commands besides serving", &["cli"]),
    ("edge: HTTP and the socket, the only modules that know status codes and error bodies", &["routes", "streaming"]),
    ("assembly: settings, and the server built from them", &["state", "config"]),
    ("the turn: pipeline and agent", &["pipeline", "agent"]),
    ("stages and stores", &["stt", "llm", "tts", "vad", "embeddings", "knowledge", "sessions", "store", "archive"]),
    (
        "plumbing",
        &["openai", "onnx", "models", "audio", "text", "cpu", "events", "backend", "budget", "access", "telemetry", "shutdown", "exit"],
    ),
];

type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

#[test]
fn modules_depend_one_way_with_no_loops() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = import_graph(&src);
    println!("server modules and what they use (top tier first):");
    for (tier, modules) in TIERS {
        println!("  {tier}");
        for module in *modules {
            let uses: Vec<&str> = graph.get(*module).map(|deps| deps.keys().map(String::as_str).collect()).unwrap_or_default();
            println!("    {module:<10} -> {}", uses.join(", "));
        }
    }

    let mut problems = Vec::new();
    for module in graph.keys() {
        if tier_of(module).is_none() {
            problems.push(format!("module `{module}` has no tier: add it to TIERS in tests/it/module_tiers.rs"));
        }
    }
    for (from, deps) in &graph {
        for (to, files) in deps {
            if let (Some(from_tier), Some(to_tier)) = (tier_of(from), tier_of(to))
                && to_tier < from_tier
            {
                problems
                    .push(format!("`{from}` uses `{to}` from a higher tier, in {}", files.iter().cloned().collect::<Vec<_>>().join(", ")));
            }
        }
    }
    if let Some(cycle) = find_loop(&graph) {
        let steps: Vec<String> = cycle
            .windows(2)
            .map(|pair| {
                format!("{} -> {} ({})", pair[0], pair[1], graph[&pair[0]][&pair[1]].iter().cloned().collect::<Vec<_>>().join(", "))
            })
            .collect();
        problems.push(format!("an import loop: {}", steps.join("; ")));
    }
    println!("{} modules, {} dependencies, {} problems", graph.len(), graph.values().map(BTreeMap::len).sum::<usize>(), problems.len());
    assert!(problems.is_empty(), "the server's layers are crossed:\n  {}", problems.join("\n  "));
}

#[test]
fn a_loop_is_found_and_named() {
    let mut graph = Graph::new();
    for (from, to) in [("routes", "pipeline"), ("pipeline", "sessions"), ("sessions", "routes"), ("pipeline", "text")] {
        graph.entry(from.into()).or_default().entry(to.into()).or_default().insert(format!("{from}.rs"));
    }
    let cycle = find_loop(&graph).expect("the loop is found");
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(cycle.len(), 4, "{cycle:?}");
    graph.get_mut("sessions").unwrap().clear();
    assert_eq!(find_loop(&graph), None);
}

#[test]
fn grouped_paths_and_comments_are_read_right() {
    let source = r#"
        use crate::pipeline::{Pipeline, Turn};
        use crate::{agent::Agent, store::{self, Database}};
        // use crate::routes::Nothing;
        /* crate::streaming::Nothing */
        let url = "http://example/crate::cli";
        let c = '"'; let life: &'static str = "x"; crate::text::split(s);
    "#;
    let used: BTreeSet<String> = used_modules(&code_only(source)).into_iter().collect();
    assert_eq!(used, ["agent", "pipeline", "store", "text"].map(String::from).into_iter().collect());
}

fn tier_of(module: &str) -> Option<usize> {
    TIERS.iter().position(|(_, modules)| modules.contains(&module))
}

/// For each top-level module of `src`, the other modules it uses and the files that use them.
fn import_graph(src: &Path) -> Graph {
    let mut graph = Graph::new();
    for file in rust_files(src) {
        let relative = file.strip_prefix(src).expect("under src");
        let Some(module) = top_module(relative) else { continue };
        let source = std::fs::read_to_string(&file).unwrap_or_else(|error| panic!("cannot read {}: {error}", file.display()));
        let deps = graph.entry(module.clone()).or_default();
        for used in used_modules(&code_only(&source)) {
            if used != module {
                deps.entry(used).or_default().insert(relative.display().to_string());
            }
        }
    }
    // Names after `crate::` that are not modules (`crate::Settings`, re-exported at the root) are dropped.
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for deps in graph.values_mut() {
        deps.retain(|used, _| modules.contains(used));
    }
    graph
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).expect("src is readable").map(|entry| entry.expect("entry").path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
    files
}

/// `routes/ws.rs` -> `routes`, `state.rs` -> `state`; the crate roots belong to no module.
fn top_module(relative: &Path) -> Option<String> {
    let first = relative.components().next()?.as_os_str().to_str()?;
    match first {
        "lib.rs" | "main.rs" => None,
        file if file.ends_with(".rs") => Some(file.trim_end_matches(".rs").to_owned()),
        dir => Some(dir.to_owned()),
    }
}

/// The first name after each `crate::`, and every name of a `crate::{a, b::c}` group.
fn used_modules(code: &str) -> Vec<String> {
    let mut used = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let trimmed = rest.trim_start();
        if let Some(group) = trimmed.strip_prefix('{') {
            let mut depth = 0usize;
            let mut item_start = true;
            for (index, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_alphabetic() || c == '_') => {
                        used.push(identifier(&group[index..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name = identifier(trimmed);
            if !name.is_empty() {
                used.push(name);
            }
        }
    }
    used
}

fn identifier(text: &str) -> String {
    text.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
}

/// The source with comments and the insides of string and character literals blanked out, so neither a
/// comment nor a URL in a string counts as a path.
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut code = String::with_capacity(source.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0usize;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            code.push(' ');
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !chars[..i].last().is_some_and(|p| p.is_alphanumeric() || *p == '_')
        {
            // A raw string: r"..." or r#"..."#, ended by the quote and as many hashes.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                code.push(c);
                i += 1;
                continue;
            }
            j += 1;
            while j < chars.len() && !(chars[j] == '"' && (0..hashes).all(|k| chars.get(j + 1 + k) == Some(&'#'))) {
                j += 1;
            }
            i = j + 1 + hashes;
            code.push_str("\"\"");
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            code.push_str("\"\"");
        } else if c == '\'' {
            // A character literal ('x', '\n', '"'), or else a lifetime, which is kept.
            let literal_end = match next {
                Some('\\') => chars[i + 2..].iter().position(|&c| c == '\'').map(|p| i + 2 + p),
                Some(_) if chars.get(i + 2) == Some(&'\'') => Some(i + 2),
                _ => None,
            };
            match literal_end {
                Some(end) => {
                    code.push_str("' '");
                    i = end + 1;
                }
                None => {
                    code.push(c);
                    i += 1;
                }
            }
        } else {
            code.push(c);
            i += 1;
        }
    }
    code
}

/// A loop in the graph as the modules along it, first and last the same; `None` when there is none.
fn find_loop(graph: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(module: &str, graph: &Graph, marks: &mut BTreeMap<String, Mark>, path: &mut Vec<String>) -> Option<Vec<String>> {
        marks.insert(module.to_owned(), Mark::Open);
        path.push(module.to_owned());
        for next in graph.get(module).into_iter().flat_map(BTreeMap::keys) {
            match marks.get(next) {
                Some(Mark::Open) => {
                    let start = path.iter().position(|m| m == next).expect("an open module is on the path");
                    let mut cycle = path[start..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Some(Mark::Done) => {}
                None => {
                    if let Some(cycle) = visit(next, graph, marks, path) {
                        return Some(cycle);
                    }
                }
            }
        }
        path.pop();
        marks.insert(module.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for module in graph.keys() {
        if !marks.contains_key(module)
            && let Some(cycle) = visit(module, graph, &mut marks, &mut Vec::new())
        {
            return Some(cycle);
        }
    }
    None
}
