//! The shape of the code: the modules of src/ form layers, and files stay short.
//!
//! Layers: within each folder, the modules that are siblings use
//! each other without a cycle (a module may use its parent's items, and a parent its
//! children's; those are not layers). A file's uses are read from its `crate::` and `super::`
//! paths, outside comments and test code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type ModPath = Vec<String>;

struct Source {
    module: ModPath,
    text: String,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `engine/tcp/mod.rs` is `engine::tcp`; lib.rs is the root.
fn module_of(src: &Path, file: &Path) -> ModPath {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: ModPath = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// The code of a file without comments and without its `#[cfg(test)]` items (braces are
/// counted to find where such an item ends).
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    // Skipping a test item until the depth is back to this.
    let mut skip_until: Option<usize> = None;
    let mut test_item_next = false;
    for line in text.lines() {
        let code = line.find("//").map_or(line, |at| &line[..at]);
        let before = depth;
        depth = (depth + code.matches('{').count()).saturating_sub(code.matches('}').count());
        if let Some(level) = skip_until {
            if depth <= level {
                skip_until = None;
            }
            continue;
        }
        if code.trim() == "#[cfg(test)]" {
            test_item_next = true;
            continue;
        }
        if test_item_next {
            test_item_next = false;
            if depth > before {
                skip_until = Some(before);
            }
            continue;
        }
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// Modules declared `#[cfg(test)] mod NAME;` in `text`.
fn test_modules(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut previous = "";
    for line in text.lines() {
        let line = line.trim();
        if previous == "#[cfg(test)]" {
            if let Some(name) = line
                .strip_prefix("mod ")
                .or_else(|| line.strip_prefix("pub mod "))
                .and_then(|rest| rest.strip_suffix(';'))
            {
                names.insert(name.to_string());
            }
        }
        previous = line;
    }
    names
}

fn identifier(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// The paths a file names: `crate::a::b` as `[a, b]`, `super::x` from `module` as the parent's
/// path and `x` (each name of a `super::{x, y::z}` group too).
fn paths_named(code: &str, module: &ModPath) -> Vec<ModPath> {
    let mut paths = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let mut path = Vec::new();
        let mut rest = &code[at + "crate::".len()..];
        loop {
            let name = identifier(rest);
            if name.is_empty() {
                break;
            }
            path.push(name.to_string());
            rest = &rest[name.len()..];
            match rest.strip_prefix("::") {
                Some(next) => rest = next,
                None => break,
            }
        }
        paths.push(path);
    }
    let mut parent = module.clone();
    parent.pop();
    for (at, _) in code.match_indices("super::") {
        let before = code[..at].chars().last();
        if before.is_some_and(|c| c == ':' || c.is_ascii_alphanumeric() || c == '_') {
            continue; // super::super:: or a longer path: the first `super::` counts
        }
        let rest = &code[at + "super::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name = identifier(item.trim());
                if !name.is_empty() {
                    let mut path = parent.clone();
                    path.push(name.to_string());
                    paths.push(path);
                }
            }
        } else {
            let name = identifier(rest);
            if !name.is_empty() && name != "super" {
                let mut path = parent.clone();
                path.push(name.to_string());
                paths.push(path);
            }
        }
    }
    paths
}

/// The longest known module that `path` starts with.
fn module_named<'a>(modules: &'a BTreeSet<ModPath>, path: &ModPath) -> Option<&'a ModPath> {
    (0..=path.len())
        .rev()
        .find_map(|len| modules.get(&path[..len].to_vec()))
}

fn cycle_in(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|node| visit(node, edges, &mut Vec::new(), &mut done))
}

#[test]
fn sibling_modules_use_each_other_without_a_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.retain(|f| !f.ends_with("main.rs"));
    let sources: Vec<Source> = files
        .iter()
        .map(|file| Source {
            module: module_of(&src, file),
            text: std::fs::read_to_string(file).unwrap(),
        })
        .collect();
    // Test-only modules (declared under #[cfg(test)]) and what is below them are left out.
    let mut test_only: Vec<ModPath> = Vec::new();
    for source in &sources {
        for name in test_modules(&source.text) {
            let mut path = source.module.clone();
            path.push(name);
            test_only.push(path);
        }
    }
    let is_test = |m: &ModPath| test_only.iter().any(|t| m.starts_with(t));
    let modules: BTreeSet<ModPath> = sources
        .iter()
        .map(|s| s.module.clone())
        .filter(|m| !is_test(m))
        .collect();
    // Per folder (by its module path), the uses between its children.
    let mut levels: BTreeMap<ModPath, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let mut examples: BTreeMap<(ModPath, String, String), String> = BTreeMap::new();
    for source in sources.iter().filter(|s| !is_test(&s.module)) {
        let code = code_of(&source.text);
        for path in paths_named(&code, &source.module) {
            let Some(target) = module_named(&modules, &path) else {
                continue;
            };
            let common = source
                .module
                .iter()
                .zip(target)
                .take_while(|(a, b)| a == b)
                .count();
            if common == source.module.len() || common == target.len() {
                continue; // a parent and its descendant
            }
            let folder = source.module[..common].to_vec();
            let (from, to) = (source.module[common].clone(), target[common].clone());
            examples
                .entry((folder.clone(), from.clone(), to.clone()))
                .or_insert_with(|| {
                    format!("{} uses {}", source.module.join("::"), path.join("::"))
                });
            levels
                .entry(folder)
                .or_default()
                .entry(from)
                .or_default()
                .insert(to);
        }
    }
    let mut failures = Vec::new();
    for (folder, edges) in &levels {
        let name = folder.join("::");
        if let Some(cycle) = cycle_in(edges) {
            let why: Vec<String> = cycle
                .windows(2)
                .map(|w| examples[&(folder.clone(), w[0].clone(), w[1].clone())].clone())
                .collect();
            failures.push(format!(
                "in `{}`: {} ({})",
                if name.is_empty() { "crate" } else { &name },
                cycle.join(" -> "),
                why.join("; ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "import cycles:\n{}",
        failures.join("\n")
    );
    // The check sees the crate's layers at all.
    assert!(levels[&Vec::new()]["run"].contains("engine"));
}

/// The engine's lowest layer builds and parses frames with the shared context (`Cx`) alone:
/// nothing in `engine/wire/` names `Core`, which holds the state of every layer above.
#[test]
fn the_wire_layer_takes_the_shared_context_only() {
    let wire = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/engine/wire");
    let mut files = Vec::new();
    rust_files(&wire, &mut files);
    assert!(files.len() >= 5, "engine/wire/ is where it was");
    for file in files {
        let code = code_of(&std::fs::read_to_string(&file).unwrap());
        let names_core = code.match_indices("Core").any(|(at, _)| {
            identifier(&code[at..]) == "Core"
                && !code[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        });
        assert!(!names_core, "{} uses Core", file.display());
    }
}

/// Files stay on one subject; one past this length has grown a second that wants its own.
const MAX_LINES: usize = 600;

#[test]
fn every_source_file_stays_under_600_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "tests", "examples", "fuzz/fuzz_targets"] {
        rust_files(&root.join(dir), &mut files);
    }
    let long: Vec<String> = files
        .iter()
        .filter_map(|file| {
            let lines = std::fs::read_to_string(file).unwrap().lines().count();
            (lines >= MAX_LINES).then(|| format!("{} ({lines} lines)", file.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these: {long:?}");
}
