//! The module graph stays layered: no module imports a module that imports it back, and the top-level modules
//! form layers with no cycle (DESIGN.md: "sources and sinks know the pipeline and the ledger, never each other"). Read from the source text: every `crate::…` and `super::…` path outside `#[cfg(test)]` code, resolved to
//! the deepest module (file) it names. A child naming its own parent (`super::Error`) is not a loop.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// `src/a/b.rs` → `a::b`, `src/a/mod.rs` → `a`.
fn module_of(rel: &Path) -> String {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts.join("::")
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its test module(s) and comments.
fn production_code(text: &str) -> String {
    let mut out = String::new();
    let mut skipping_depth: Option<i32> = None;
    let mut depth = 0i32;
    let mut pending_test = false;
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let trimmed = code.trim();
        if trimmed.starts_with("#[cfg(test)]") {
            pending_test = true;
            continue;
        }
        let opens = code.matches('{').count() as i32;
        let closes = code.matches('}').count() as i32;
        if pending_test && skipping_depth.is_none() {
            pending_test = false;
            if trimmed.starts_with("mod ") && trimmed.ends_with(';') {
                continue;
            }
            skipping_depth = Some(depth);
        }
        depth += opens - closes;
        match skipping_depth {
            Some(d) if depth > d => continue,
            Some(_) => {
                skipping_depth = None;
                continue;
            }
            None => {}
        }
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// Every path a file names through `crate::` or `super::`, as full paths from the crate root (groups expanded).
fn named_paths(module: &str, is_mod_file: bool, code: &str) -> Vec<String> {
    let parent: Vec<&str> = {
        let mut p: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
        if !is_mod_file {
            p.pop();
        }
        p
    };
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    for (prefix, base) in [("crate::", Vec::new()), ("super::", parent.clone())] {
        let mut from = 0;
        while let Some(i) = code[from..].find(prefix) {
            let start = from + i;
            from = start + prefix.len();
            // `super::` inside a longer word (`crate::super`) or preceded by an identifier char is not a root.
            if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
                continue;
            }
            if prefix == "super::" && start >= 2 && &code[start - 2..start] == "::" {
                continue;
            }
            let mut base = base.clone();
            let mut rest = &code[from..];
            // `super::super::…`
            while prefix == "super::" && rest.starts_with("super::") {
                base.pop();
                rest = &rest["super::".len()..];
            }
            let path: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let path = path.trim_end_matches(':');
            let mut full = base.iter().map(|s| s.to_string()).collect::<Vec<_>>();
            full.extend(path.split("::").filter(|s| !s.is_empty()).map(String::from));
            let after = &rest[path.len()..];
            if let Some(group) = after.strip_prefix("::{") {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let item = item.trim();
                    let mut p = full.clone();
                    p.extend(
                        item.split("::")
                            .map(|s| s.trim().to_string())
                            .filter(|s| !s.is_empty() && s != "self"),
                    );
                    out.push(p.join("::"));
                }
            } else {
                out.push(full.join("::"));
            }
        }
    }
    out
}

/// The deepest known module a path names.
fn resolve(path: &str, modules: &BTreeSet<String>) -> Option<String> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("::"))
        .find(|m| modules.contains(m))
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut by_module = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        if rel == Path::new("main.rs") {
            continue; // the binary, not part of the library's graph
        }
        by_module.insert(module_of(rel), f.clone());
    }
    let modules: BTreeSet<String> = by_module.keys().cloned().collect();
    let mut g = Graph::new();
    for (module, file) in &by_module {
        let is_mod_file = file
            .file_name()
            .is_some_and(|n| n == "mod.rs" || n == "lib.rs");
        let code = production_code(&std::fs::read_to_string(file).unwrap());
        for p in named_paths(module, is_mod_file, &code) {
            if let Some(target) = resolve(&p, &modules) {
                if &target != module && !target.is_empty() {
                    g.entry(module.clone()).or_default().insert(target);
                }
            }
        }
    }
    g
}

fn is_ancestor(a: &str, b: &str) -> bool {
    b.starts_with(&format!("{a}::"))
}

fn top(m: &str) -> &str {
    m.split("::").next().unwrap_or(m)
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let g = graph();
    assert!(
        g.len() > 40,
        "the graph reader found too few modules: {}",
        g.len()
    );
    let mut loops = Vec::new();
    for (a, targets) in &g {
        for b in targets {
            if a < b
                && !is_ancestor(a, b)
                && !is_ancestor(b, a)
                && g.get(b).is_some_and(|t| t.contains(a))
            {
                loops.push(format!("{a} <-> {b}"));
            }
        }
    }
    assert!(
        loops.is_empty(),
        "modules importing each other:\n{}",
        loops.join("\n")
    );
}

/// The configuration schema names the settings each component keeps beside its code (Vector's shape: a new alert
/// channel or payload format is one file holding its settings and its behaviour). Those are the only arrows from
/// `config` into components.
const COMPONENT_SETTINGS: [&str; 2] = ["alert::channels", "source::mqtt::payload"];

#[test]
fn top_level_modules_form_layers() {
    let g = graph();
    let mut top_edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut why: BTreeMap<(&str, &str), (&str, &str)> = BTreeMap::new();
    for (a, targets) in &g {
        for b in targets {
            let settings = COMPONENT_SETTINGS
                .iter()
                .any(|m| b == m || is_ancestor(m, b));
            if top(a) == "config" && settings {
                continue;
            }
            let (ta, tb) = (top(a), top(b));
            if ta != tb {
                top_edges.entry(ta).or_default().insert(tb);
                why.entry((ta, tb)).or_insert((a.as_str(), b.as_str()));
            }
        }
    }
    // Depth-first search for a cycle; report the first one found with the imports that make it.
    fn visit<'a>(
        n: &'a str,
        edges: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<&'a str>> {
        if let Some(i) = path.iter().position(|p| *p == n) {
            let mut cycle = path[i..].to_vec();
            cycle.push(n);
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n);
        for m in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n);
        None
    }
    let mut done = BTreeSet::new();
    for n in top_edges.keys() {
        if let Some(cycle) = visit(n, &top_edges, &mut Vec::new(), &mut done) {
            let steps: Vec<String> = cycle
                .windows(2)
                .map(|w| {
                    let (x, y) = why[&(w[0], w[1])];
                    format!("{} -> {} ({x} -> {y})", w[0], w[1])
                })
                .collect();
            panic!(
                "top-level modules import each other in a cycle:\n{}",
                steps.join("\n")
            );
        }
    }
}

#[test]
fn sources_and_sinks_know_the_pipeline_and_the_ledger_never_each_other() {
    let g = graph();
    let forbidden: [(&str, &[&str]); 4] = [
        (
            "source",
            &[
                "forward", "alert", "http", "export", "sim", "daemon", "live",
            ],
        ),
        (
            "forward",
            &["source", "alert", "http", "export", "sim", "daemon", "live"],
        ),
        (
            "pipeline",
            &[
                "source", "forward", "alert", "http", "export", "sim", "daemon", "live",
            ],
        ),
        (
            "ledger",
            &[
                "source", "forward", "alert", "http", "export", "sim", "daemon", "pipeline",
            ],
        ),
    ];
    let mut wrong = Vec::new();
    for (a, targets) in &g {
        for (from, never) in &forbidden {
            if top(a) != *from {
                continue;
            }
            for b in targets.iter().filter(|b| never.contains(&top(b))) {
                wrong.push(format!("{a} -> {b}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}

/// The ledger owns every query: the words of SQL statements appear nowhere else in `src/`, test modules and
/// comments included (so a query cannot hide in a helper "just for tests").
#[test]
fn sql_lives_only_in_the_ledger() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut found = Vec::new();
    for f in files.iter().filter(|f| !f.starts_with(src.join("ledger"))) {
        let text = std::fs::read_to_string(f).unwrap();
        for (i, line) in text.lines().enumerate() {
            if ["SELECT", "INSERT", "UPDATE", "DELETE"]
                .iter()
                .any(|w| line.contains(w))
            {
                found.push(format!("{}:{}: {}", f.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "SQL outside src/ledger/:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_reader_sees_imports_groups_and_super_paths() {
    let code = "use crate::ledger::{query::Reader, Ledger};\nuse super::band::Band;\nfn f() { crate::model::Timestamp::now(); }\n";
    let paths = named_paths("compliance::evaluate", false, code);
    assert_eq!(
        paths,
        [
            "ledger::query::Reader",
            "ledger::Ledger",
            "model::Timestamp::now",
            "compliance::band::Band"
        ]
    );
    let prod = production_code(
        "use crate::a::X;\n#[cfg(test)]\nmod tests {\n    use crate::b::Y;\n}\nuse crate::c::Z;\n",
    );
    assert!(
        prod.contains("crate::a::X") && prod.contains("crate::c::Z") && !prod.contains("crate::b")
    );
}
