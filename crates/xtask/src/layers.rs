//! `cargo xtask layers`: the top-level modules of `aisle-core` (each file
//! or folder under `crates/aisle-core/src/`) must not import each other in
//! a circle. Part of `cargo xtask test`.
//!
//! Plain text scanning, no parser: comments, strings and character literals
//! are blanked out first; then every `crate::name` path, every item at the
//! head of a `use crate::{a, b::c}` group (over several lines too), and
//! every `super::` path that climbs to the crate root (from a file or an
//! inline module such as `mod tests`) is a reference from the file's
//! top-level module to `name`. Test modules count like any other code. A
//! file included with `#[path]` is taken for the module its location names.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;

use anyhow::{Context, Result, bail};

/// Where a reference was seen: a file relative to the source folder, and a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub file: String,
    pub line: usize,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// The top-level modules and, for each, the modules it references (with
/// the first place it does).
#[derive(Debug, Default)]
pub struct Graph {
    pub modules: BTreeSet<String>,
    pub edges: BTreeMap<String, BTreeMap<String, Place>>,
}

/// Checks `crates/aisle-core/src`; prints the layers, or fails naming every cycle.
pub fn check(root: &Path) -> Result<()> {
    let src = root.join("crates/aisle-core/src");
    let files = read_tree(&src)?;
    let graph = graph(&files);
    let cycles = cycles(&graph);
    if !cycles.is_empty() {
        bail!("{}", describe_cycles(&graph, &cycles));
    }
    eprintln!("layers: aisle-core's top-level modules form no cycle");
    for (level, modules) in layers(&graph).iter().enumerate() {
        eprintln!("  {level}: {}", modules.join(", "));
    }
    Ok(())
}

/// Every `.rs` file under `src`, as (path relative to `src` with `/`, text).
fn read_tree(src: &Path) -> Result<Vec<(String, String)>> {
    let mut files = Vec::new();
    let mut folders = vec![src.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries =
            std::fs::read_dir(&folder).with_context(|| format!("reading {}", folder.display()))?;
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let relative = path
                    .strip_prefix(src)
                    .context("a file outside the source folder")?
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                files.push((relative, text));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The module graph of a source tree given as (relative path, text) pairs;
/// `lib.rs` is the crate root and belongs to no module.
pub fn graph(files: &[(String, String)]) -> Graph {
    let mut graph = Graph::default();
    for (path, _) in files {
        if let Some(module) = top_module(path) {
            graph.modules.insert(module);
        }
    }
    for (path, text) in files {
        let Some(module) = top_module(path) else {
            continue;
        };
        for (target, line) in references(path, text) {
            if target != module && graph.modules.contains(&target) {
                graph
                    .edges
                    .entry(module.clone())
                    .or_default()
                    .entry(target)
                    .or_insert_with(|| Place {
                        file: path.clone(),
                        line,
                    });
            }
        }
    }
    graph
}

/// The top-level module a file belongs to (`None` for the crate root).
fn top_module(path: &str) -> Option<String> {
    let first = path.split('/').next()?;
    if path == "lib.rs" || path == "main.rs" {
        return None;
    }
    Some(first.strip_suffix(".rs").unwrap_or(first).to_owned())
}

/// The module path of a file: `a.rs` and `a/mod.rs` are `[a]`, `a/b.rs` is `[a, b]`.
fn file_module_path(path: &str) -> Vec<String> {
    let mut parts: Vec<String> = path.split('/').map(str::to_owned).collect();
    if parts.last().is_some_and(|last| last == "mod.rs") {
        parts.pop();
    } else if let Some(last) = parts.last_mut() {
        *last = last.strip_suffix(".rs").unwrap_or(last).to_owned();
    }
    parts
}

/// Replaces comments, string and character literals by spaces (newlines
/// kept, so offsets keep their lines).
pub fn blank(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let keep_lines = |c: char| if c == '\n' { '\n' } else { ' ' };
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut idx = 0;
    while idx < chars.len() {
        let c = chars[idx];
        let next = chars.get(idx + 1).copied();
        if c == '/' && next == Some('/') {
            while idx < chars.len() && chars[idx] != '\n' {
                out.push(' ');
                idx += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while idx < chars.len() {
                if chars[idx] == '/' && chars.get(idx + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    idx += 2;
                } else if chars[idx] == '*' && chars.get(idx + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    idx += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(keep_lines(chars[idx]));
                    idx += 1;
                }
            }
        } else if c == 'r'
            && (idx == 0
                || !is_ident(chars[idx - 1])
                || (chars[idx - 1] == 'b' && (idx < 2 || !is_ident(chars[idx - 2]))))
            && matches!(next, Some('"' | '#'))
            && raw_string_hashes(&chars, idx + 1).is_some()
        {
            let hashes = raw_string_hashes(&chars, idx + 1).unwrap_or(0);
            // `r`, the hashes and the opening quote.
            let open = 2 + hashes;
            out.extend(std::iter::repeat_n(' ', open));
            idx += open;
            while idx < chars.len() {
                if chars[idx] == '"' && (1..=hashes).all(|k| chars.get(idx + k) == Some(&'#')) {
                    out.extend(std::iter::repeat_n(' ', 1 + hashes));
                    idx += 1 + hashes;
                    break;
                }
                out.push(keep_lines(chars[idx]));
                idx += 1;
            }
        } else if c == '"' {
            out.push(' ');
            idx += 1;
            while idx < chars.len() {
                match chars[idx] {
                    '\\' => {
                        out.push(' ');
                        if let Some(escaped) = chars.get(idx + 1) {
                            out.push(keep_lines(*escaped));
                        }
                        idx += 2;
                    }
                    '"' => {
                        out.push(' ');
                        idx += 1;
                        break;
                    }
                    other => {
                        out.push(keep_lines(other));
                        idx += 1;
                    }
                }
            }
        } else if c == '\'' && next == Some('\\') {
            // An escaped character literal: the quote, the backslash, the
            // escaped character, then up to its closing quote.
            out.push_str("   ");
            idx += 3;
            while idx < chars.len() && chars[idx] != '\'' {
                out.push(' ');
                idx += 1;
            }
            if idx < chars.len() {
                out.push(' ');
                idx += 1;
            }
        } else if c == '\'' && chars.get(idx + 2) == Some(&'\'') {
            out.push_str("   ");
            idx += 3;
        } else {
            // A lifetime's quote, or any other character.
            out.push(c);
            idx += 1;
        }
    }
    out
}

/// After an `r`: the number of `#` before the opening quote of a raw string.
fn raw_string_hashes(chars: &[char], from: usize) -> Option<usize> {
    let hashes = chars[from..].iter().take_while(|c| **c == '#').count();
    (chars.get(from + hashes) == Some(&'"')).then_some(hashes)
}

/// A token of blanked source: a word, `::`, `{`, `}`, `,`, `;` or another symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    PathSep,
    Open,
    Close,
    Comma,
    Other,
}

fn tokens(blanked: &str) -> Vec<(Token, usize)> {
    let chars: Vec<char> = blanked.chars().collect();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut idx = 0;
    while idx < chars.len() {
        let c = chars[idx];
        if c == '\n' {
            line += 1;
            idx += 1;
        } else if c.is_whitespace() {
            idx += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let start = idx;
            while idx < chars.len() && (chars[idx].is_alphanumeric() || chars[idx] == '_') {
                idx += 1;
            }
            tokens.push((Token::Word(chars[start..idx].iter().collect()), line));
        } else if c == ':' && chars.get(idx + 1) == Some(&':') {
            tokens.push((Token::PathSep, line));
            idx += 2;
        } else {
            let token = match c {
                '{' => Token::Open,
                '}' => Token::Close,
                ',' => Token::Comma,
                _ => Token::Other,
            };
            tokens.push((token, line));
            idx += 1;
        }
    }
    tokens
}

/// The top-level modules a file names, each with the line it does.
fn references(path: &str, text: &str) -> Vec<(String, usize)> {
    let tokens = tokens(&blank(text));
    let base = file_module_path(path);
    let mut found = Vec::new();
    let mut depth = 0usize;
    // Inline modules open in this file: (name, brace depth inside it).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let word = |idx: usize| match tokens.get(idx) {
        Some((Token::Word(w), _)) => Some(w.as_str()),
        _ => None,
    };
    let mut idx = 0;
    while idx < tokens.len() {
        let (token, line) = &tokens[idx];
        let after_path_sep = idx > 0 && tokens[idx - 1].0 == Token::PathSep;
        match token {
            Token::Open => depth += 1,
            Token::Close => {
                if inline.last().is_some_and(|(_, inside)| *inside == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            Token::Word(w) if w == "mod" => {
                if let (Some(name), Some((Token::Open, _))) = (word(idx + 1), tokens.get(idx + 2)) {
                    inline.push((name.to_owned(), depth + 1));
                }
            }
            Token::Word(w) if (w == "crate" || w == "super") && !after_path_sep => {
                // The module the path starts from: the crate root, or climbed to with `super`.
                let mut next = idx + 1;
                let from_root = if w == "crate" {
                    true
                } else {
                    let mut climbs = 1;
                    while tokens.get(next).map(|t| &t.0) == Some(&Token::PathSep)
                        && word(next + 1) == Some("super")
                    {
                        climbs += 1;
                        next += 2;
                    }
                    climbs == base.len() + inline.len()
                };
                if from_root && tokens.get(next).map(|t| &t.0) == Some(&Token::PathSep) {
                    match tokens.get(next + 1) {
                        Some((Token::Word(name), _)) => found.push((name.clone(), *line)),
                        Some((Token::Open, _)) => found.extend(group_heads(&tokens, next + 1)),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        idx += 1;
    }
    found
}

/// The first word of each item of the `{...}` group opening at `open`.
fn group_heads(tokens: &[(Token, usize)], open: usize) -> Vec<(String, usize)> {
    let mut heads = Vec::new();
    let mut depth = 0usize;
    let mut item_start = true;
    for (token, line) in &tokens[open..] {
        match token {
            Token::Open => {
                depth += 1;
                item_start = depth == 1;
            }
            Token::Close => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            Token::Comma if depth == 1 => item_start = true,
            Token::Word(name) if item_start && depth == 1 => {
                if name != "self" {
                    heads.push((name.clone(), *line));
                }
                item_start = false;
            }
            _ => item_start = false,
        }
    }
    heads
}

/// One shortest cycle per strongly connected group of modules, each
/// starting and ending at the group's first module by name.
pub fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    let mut cycles = Vec::new();
    for component in components(graph) {
        if component.len() < 2 {
            continue;
        }
        let start = &component[0];
        let inside: BTreeSet<&String> = component.iter().collect();
        // Breadth first from `start` back to it, within the group.
        let mut came_from: BTreeMap<&String, &String> = BTreeMap::new();
        let mut queue = VecDeque::from([start]);
        'search: while let Some(module) = queue.pop_front() {
            for target in graph.edges.get(module).into_iter().flat_map(|e| e.keys()) {
                if target == start {
                    let mut path = vec![start.clone()];
                    let mut at = module;
                    while at != start {
                        path.push(at.clone());
                        at = came_from[at];
                    }
                    path.push(start.clone());
                    path.reverse();
                    cycles.push(path);
                    break 'search;
                }
                if inside.contains(target) && !came_from.contains_key(target) {
                    came_from.insert(target, module);
                    queue.push_back(target);
                }
            }
        }
    }
    cycles
}

/// Strongly connected components (Tarjan), each sorted by name.
fn components(graph: &Graph) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a Graph,
        next_index: usize,
        index: BTreeMap<&'a String, usize>,
        low: BTreeMap<&'a String, usize>,
        stack: Vec<&'a String>,
        on_stack: BTreeSet<&'a String>,
        components: Vec<Vec<String>>,
    }
    fn visit<'a>(state: &mut State<'a>, module: &'a String) {
        state.index.insert(module, state.next_index);
        state.low.insert(module, state.next_index);
        state.next_index += 1;
        state.stack.push(module);
        state.on_stack.insert(module);
        let graph = state.graph;
        for target in graph.edges.get(module).into_iter().flat_map(|e| e.keys()) {
            if !state.index.contains_key(target) {
                visit(state, target);
                let low = state.low[module].min(state.low[target]);
                state.low.insert(module, low);
            } else if state.on_stack.contains(target) {
                let low = state.low[module].min(state.index[target]);
                state.low.insert(module, low);
            }
        }
        if state.low[module] == state.index[module] {
            let mut component = Vec::new();
            while let Some(member) = state.stack.pop() {
                state.on_stack.remove(member);
                component.push(member.clone());
                if member == module {
                    break;
                }
            }
            component.sort();
            state.components.push(component);
        }
    }
    let mut state = State {
        graph,
        next_index: 0,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    for module in &graph.modules {
        if !state.index.contains_key(module) {
            visit(&mut state, module);
        }
    }
    state.components.sort();
    state.components
}

/// Each cycle as `a -> b -> a`, with where each step is taken.
pub fn describe_cycles(graph: &Graph, cycles: &[Vec<String>]) -> String {
    let mut text = String::from("aisle-core's top-level modules import each other in a circle:");
    for cycle in cycles {
        text.push_str(&format!("\n  {}", cycle.join(" -> ")));
        for step in cycle.windows(2) {
            if let Some(place) = graph.edges.get(&step[0]).and_then(|e| e.get(&step[1])) {
                text.push_str(&format!("\n    {} -> {}: {place}", step[0], step[1]));
            }
        }
    }
    text
}

/// The modules of an acyclic graph by layer: layer 0 references no other
/// module, layer n references modules of lower layers only (one of n - 1).
pub fn layers(graph: &Graph) -> Vec<Vec<String>> {
    fn level<'a>(
        graph: &'a Graph,
        module: &'a String,
        levels: &mut BTreeMap<&'a String, usize>,
    ) -> usize {
        if let Some(level) = levels.get(module) {
            return *level;
        }
        // Provisional, so a cycle (never passed here by `check`) cannot recurse forever.
        levels.insert(module, 0);
        let level = graph
            .edges
            .get(module)
            .into_iter()
            .flat_map(|e| e.keys())
            .map(|target| level(graph, target, levels) + 1)
            .max()
            .unwrap_or(0);
        levels.insert(module, level);
        level
    }
    let mut levels = BTreeMap::new();
    let mut layers: Vec<Vec<String>> = Vec::new();
    for module in &graph.modules {
        let level = level(graph, module, &mut levels);
        if layers.len() <= level {
            layers.resize(level + 1, Vec::new());
        }
        layers[level].push(module.clone());
    }
    layers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> Graph {
        let files: Vec<(String, String)> = files
            .iter()
            .map(|(path, text)| ((*path).to_owned(), (*text).to_owned()))
            .collect();
        graph(&files)
    }

    fn edges(graph: &Graph) -> Vec<(String, String)> {
        graph
            .edges
            .iter()
            .flat_map(|(from, targets)| targets.keys().map(|to| (from.clone(), to.clone())))
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn a_cycle_fails_and_is_named_with_its_places() {
        let graph = tree(&[
            ("lib.rs", "pub mod offers;\npub mod sync;\n"),
            ("offers/mod.rs", "pub mod ledger;\n"),
            (
                "offers/ledger.rs",
                "use crate::sync::SyncError;\nfn f() {}\n",
            ),
            ("sync/mod.rs", "pub mod records;\n"),
            (
                "sync/records.rs",
                "fn g() {\n    crate::offers::ledger::read(1);\n}\n",
            ),
        ]);
        let cycles = cycles(&graph);
        assert_eq!(cycles, [vec!["offers", "sync", "offers"]]);
        let text = describe_cycles(&graph, &cycles);
        assert!(text.contains("offers -> sync -> offers"), "{text}");
        assert!(
            text.contains("offers -> sync: offers/ledger.rs:1"),
            "{text}"
        );
        assert!(text.contains("sync -> offers: sync/records.rs:2"), "{text}");
    }

    #[test]
    fn a_longer_cycle_is_named_whole() {
        let graph = tree(&[
            ("identify.rs", "use crate::members;"),
            ("members.rs", "fn f() { crate::sync::records::read(); }"),
            ("sync.rs", "use crate::identify::Identified;"),
            ("card.rs", ""),
        ]);
        assert_eq!(
            cycles(&graph),
            [vec!["identify", "members", "sync", "identify"]]
        );
    }

    #[test]
    fn an_acyclic_tree_passes_in_layers() {
        let graph = tree(&[
            ("lib.rs", "pub mod a; pub mod b; pub mod c;"),
            ("a.rs", "use crate::b::X;\nuse crate::c;"),
            ("b/mod.rs", "pub mod inner;"),
            ("b/inner.rs", "fn f() { crate::c::g(); super::sibling(); }"),
            ("c.rs", "pub fn g() {}"),
        ]);
        assert!(cycles(&graph).is_empty());
        assert_eq!(
            layers(&graph),
            [
                vec!["c".to_owned()],
                vec!["b".to_owned()],
                vec!["a".to_owned()]
            ]
        );
    }

    #[test]
    fn comments_strings_and_characters_name_nothing() {
        let graph = tree(&[
            (
                "a.rs",
                r####"//! See [`crate::b`].
/* crate::b /* nested crate::b */ crate::b */
const Q: char = '"';
const E: char = '\'';
fn f<'x>(s: &'x str) -> &'x str {
    let _ = "crate::b \" crate::b";
    let _ = r#"crate::b "quoted" crate::b"#;
    let _ = br"crate::b";
    s // crate::b
}
"####,
            ),
            ("b.rs", "use crate::a;"),
        ]);
        assert_eq!(edges(&graph), pairs(&[("b", "a")]));
        assert!(cycles(&graph).is_empty());
    }

    #[test]
    fn use_groups_over_several_lines_name_each_head() {
        let graph = tree(&[
            (
                "a.rs",
                "use crate::{\n    self as root,\n    b::X,\n    c::{self, Y},\n    d,\n};\n",
            ),
            ("b.rs", ""),
            ("c.rs", ""),
            ("d.rs", "use crate::{c::Y as Z};"),
            ("e.rs", "pub(crate) fn f() {} pub(in crate::e) fn g() {}"),
        ]);
        assert_eq!(
            edges(&graph),
            pairs(&[("a", "b"), ("a", "c"), ("a", "d"), ("d", "c")])
        );
    }

    #[test]
    fn super_reaching_the_crate_root_counts() {
        let graph = tree(&[
            (
                "a.rs",
                "fn f() {}\n#[cfg(test)]\nmod tests {\n    use super::*;\n    use super::super::b::X;\n}\n",
            ),
            ("b/mod.rs", "mod x;"),
            (
                "b/x.rs",
                "use super::y;\nmod tests { use super::super::z; fn t() { super::super::super::c::f(); } }",
            ),
            (
                "c.rs",
                "fn f() { let braces = \"{{\"; }\nfn g() { super::d::h(); }",
            ),
            ("d.rs", ""),
        ]);
        assert_eq!(edges(&graph), pairs(&[("a", "b"), ("b", "c"), ("c", "d")]));
    }

    #[test]
    fn aisle_core_has_no_cycle() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        check(&root).expect("aisle-core's modules form layers");
        let files = read_tree(&root.join("crates/aisle-core/src")).expect("sources");
        let graph = graph(&files);
        for module in ["outbox", "keys", "audit", "consent", "sync", "offers"] {
            assert!(graph.modules.contains(module), "{module}");
        }
    }
}
