//! `cargo xtask cycles`: no import cycles in `host/src`.
//!
//! Each file is a module (`a/b.rs` is `crate::a::b`, `a/mod.rs` is `crate::a`, `lib.rs` is
//! `crate`; `main.rs` is the binary and is skipped). Its imports are the `crate::`, `super::`
//! and `self::` paths in `use` trees (groups expanded) and inline in code, each resolved to the
//! longest prefix that is a module file. Comments, string literals and `#[cfg(test)]` items
//! are ignored, as are the files of `#[cfg(test)] mod x;`: tests may import anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context as _, Result, bail};

/// Fails, listing every cycle with the file and line of one import per edge, if `host/src`
/// has an import cycle.
pub fn check(root: &Path) -> Result<()> {
    let mut files = Vec::new();
    read_dir(&root.join("host/src"), "", &mut files)?;
    let found = find(&files);
    for (n, cycle) in found.iter().enumerate() {
        let names: Vec<&str> =
            cycle.iter().map(|e| e.from.as_str()).collect::<BTreeSet<_>>().into_iter().collect();
        eprintln!("import cycle {} of {}: {}", n + 1, found.len(), names.join(", "));
        for e in cycle {
            eprintln!("  {} -> {}  (host/src/{}:{})", e.from, e.to, e.file, e.line);
        }
    }
    if !found.is_empty() {
        bail!("{} import cycle(s) in host/src", found.len());
    }
    eprintln!("no import cycles in host/src ({} files)", files.len());
    Ok(())
}

fn read_dir(dir: &Path, rel: &str, out: &mut Vec<(String, String)>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        let name = format!("{rel}{}", path.file_name().expect("entry name").to_string_lossy());
        if path.is_dir() {
            read_dir(&path, &format!("{name}/"), out)?;
        } else if name.ends_with(".rs") && name != "main.rs" {
            out.push((name, std::fs::read_to_string(&path)?));
        }
    }
    Ok(())
}

/// One import between two modules: the first one found, as evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub file: String,
    pub line: usize,
}

/// The module of a file path relative to `src`: `a/b.rs` → `crate::a::b`.
fn module_of(rel: &str) -> Vec<String> {
    let mut segs: Vec<String> = rel.trim_end_matches(".rs").split('/').map(str::to_owned).collect();
    if matches!(segs.last().map(String::as_str), Some("mod" | "lib")) {
        segs.pop();
    }
    segs.insert(0, "crate".into());
    segs
}

/// The import cycles of `files` (path relative to `src`, text), each as the edges among the
/// modules of one strongly-connected component (Tarjan) of more than one module.
///
/// The rule: an edge from a module to one of its ancestors (a child using its parent's items,
/// `use super::Shared`) or to one of its descendants (a parent declaring or re-exporting its
/// child, `pub use provide::Shared`) is dropped, because that nesting is how Rust modules are
/// built. Every other edge counts, so what is reported are cycles among siblings and cousins,
/// such as `node::provide ↔ node::serve`.
pub fn find(files: &[(String, String)]) -> Vec<Vec<Edge>> {
    let parsed: Vec<_> =
        files.iter().map(|(rel, text)| (rel, module_of(rel), imports(&module_of(rel), text))).collect();
    let tests: Vec<String> = parsed
        .iter()
        .flat_map(|(_, m, (_, t))| t.iter().map(move |t| format!("{}::{t}", m.join("::"))))
        .collect();
    let is_test = |m: &str| tests.iter().any(|t| m == t || m.starts_with(&format!("{t}::")));
    let modules: BTreeSet<String> =
        parsed.iter().map(|(_, m, _)| m.join("::")).filter(|m| !is_test(m)).collect();
    let mut edges: BTreeMap<(String, String), Edge> = BTreeMap::new();
    for (rel, module, (paths, _)) in &parsed {
        let from = module.join("::");
        if !modules.contains(&from) {
            continue;
        }
        for (path, line) in paths {
            let Some(to) = (1..=path.len()).rev().map(|n| path[..n].join("::")).find(|m| modules.contains(m))
            else {
                continue;
            };
            let nested = |a: &str, b: &str| b.starts_with(&format!("{a}::"));
            if to != from && !nested(&to, &from) && !nested(&from, &to) {
                let edge = Edge { from: from.clone(), to: to.clone(), file: rel.to_string(), line: *line };
                edges.entry((from.clone(), to)).or_insert(edge);
            }
        }
    }
    let mut tarjan = Tarjan::default();
    for (from, to) in edges.keys() {
        tarjan.adj.entry(from.clone()).or_default().push(to.clone());
    }
    for m in &modules {
        if !tarjan.index.contains_key(m) {
            tarjan.visit(m);
        }
    }
    let within = |c: &Vec<String>, e: &Edge| c.contains(&e.from) && c.contains(&e.to);
    tarjan.sccs.iter().map(|c| edges.values().filter(|e| within(c, e)).cloned().collect()).collect()
}

#[derive(Default)]
struct Tarjan {
    adj: BTreeMap<String, Vec<String>>,
    index: BTreeMap<String, usize>,
    low: BTreeMap<String, usize>,
    stack: Vec<String>,
    sccs: Vec<Vec<String>>,
}

impl Tarjan {
    fn visit(&mut self, v: &str) {
        let n = self.index.len();
        self.index.insert(v.into(), n);
        self.low.insert(v.into(), n);
        self.stack.push(v.into());
        for w in self.adj.get(v).cloned().unwrap_or_default() {
            if !self.index.contains_key(&w) {
                self.visit(&w);
                self.low.insert(v.into(), self.low[v].min(self.low[&w]));
            } else if self.stack.contains(&w) {
                self.low.insert(v.into(), self.low[v].min(self.index[&w]));
            }
        }
        if self.low[v] == self.index[v] {
            let at = self.stack.iter().rposition(|s| s == v).expect("on the stack");
            let scc = self.stack.split_off(at);
            if scc.len() > 1 {
                self.sccs.push(scc);
            }
        }
    }
}

/// The absolute paths (with the line of their last segment) that a file of `module` names,
/// and the names of its `#[cfg(test)] mod x;` files.
fn imports(module: &[String], text: &str) -> (Vec<(Vec<String>, usize)>, Vec<String>) {
    let (toks, tests) = drop_cfg_test(tokenize(text));
    let at = |i: usize| toks.get(i).map_or("", |t| t.0.as_str());
    let mut raw = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if at(i) == "use" {
            i += 1;
            use_tree(&toks, &mut i, &mut Vec::new(), &mut raw);
        } else if matches!(at(i), "crate" | "super" | "self")
            && at(i + 1) == "::"
            && (i == 0 || at(i - 1) != "::")
        {
            let mut path = vec![at(i).to_owned()];
            let mut line = toks[i].1;
            while at(i + 1) == "::" && at(i + 2).starts_with(|c: char| c.is_alphabetic() || c == '_') {
                path.push(at(i + 2).to_owned());
                line = toks[i + 2].1;
                i += 2;
            }
            raw.push((path, line));
            i += 1;
        } else {
            i += 1;
        }
    }
    let absolute = |path: Vec<String>| -> Option<Vec<String>> {
        let mut abs = match path.first()?.as_str() {
            "crate" => vec![],
            "self" | "super" => module.to_vec(),
            _ => return None,
        };
        for s in path {
            match s.as_str() {
                "super" if abs.len() <= 1 => return None,
                "super" => drop(abs.pop()),
                "self" => {}
                _ => abs.push(s),
            }
        }
        Some(abs)
    };
    (raw.into_iter().filter_map(|(p, line)| Some((absolute(p)?, line))).collect(), tests)
}

type Tok = (String, usize);

/// Expands one `use` tree from `toks[*i]` into its leaf paths.
fn use_tree(toks: &[Tok], i: &mut usize, prefix: &mut Vec<String>, out: &mut Vec<(Vec<String>, usize)>) {
    let depth = prefix.len();
    while let Some((tok, line)) = toks.get(*i) {
        *i += 1;
        match tok.as_str() {
            "::" => {}
            "{" => {
                while toks.get(*i).is_some_and(|t| t.0 != "}") {
                    let before = *i;
                    use_tree(toks, i, prefix, out);
                    if toks.get(*i).is_some_and(|t| t.0 == ",") || *i == before {
                        *i += 1;
                    }
                }
                *i += 1;
                break;
            }
            "*" => {
                out.push((prefix.clone(), *line));
                break;
            }
            s if s.starts_with(|c: char| c.is_alphabetic() || c == '_') => {
                if s != "self" || prefix.is_empty() {
                    prefix.push(s.to_owned());
                }
                match toks.get(*i).map(|t| t.0.as_str()) {
                    Some("::") => continue,
                    Some("as") => *i += 2,
                    _ => {}
                }
                out.push((prefix.clone(), *line));
                break;
            }
            _ => {
                *i -= 1;
                break;
            }
        }
    }
    prefix.truncate(depth);
}

/// Removes every `#[cfg(test)]` item; returns the rest and the names of `#[cfg(test)] mod x;`.
fn drop_cfg_test(toks: Vec<Tok>) -> (Vec<Tok>, Vec<String>) {
    let text: Vec<&str> = toks.iter().map(|t| t.0.as_str()).collect();
    let (mut kept, mut tests, mut i) = (Vec::new(), Vec::new(), 0);
    while i < toks.len() {
        if text[i..].starts_with(&["#", "[", "cfg", "(", "test", ")", "]"]) {
            i += 7;
            let mut depth = 0usize;
            while let Some(&t) = text.get(i) {
                i += 1;
                match t {
                    "{" | "(" | "[" => depth += 1,
                    "}" | ")" | "]" => depth = depth.saturating_sub(1),
                    _ => {}
                }
                if (t == "}" || t == ";" || t == "]") && depth == 0 {
                    if t == ";" && text[..i].ends_with(&["mod", text[i - 2], ";"]) {
                        tests.push(text[i - 2].to_owned());
                    }
                    if t != "]" {
                        break;
                    }
                }
            }
        } else {
            kept.push(toks[i].clone());
            i += 1;
        }
    }
    (kept, tests)
}

/// Identifiers, `::` and single punctuation, with their line; no comments, strings or chars.
fn tokenize(src: &str) -> Vec<Tok> {
    let c: Vec<char> = src.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let lines: Vec<usize> =
        c.iter().scan(1, |n, &ch| Some(std::mem::replace(n, *n + usize::from(ch == '\n')))).collect();
    // The index just past `end`, from `i`; `\` escapes the next char when `escapes`.
    let skip_to = |mut i: usize, end: &str, escapes: bool| {
        let end: Vec<char> = end.chars().collect();
        while i < c.len() && !c[i..].starts_with(&end) {
            i += if escapes && c[i] == '\\' { 2 } else { 1 };
        }
        i + end.len()
    };
    let (mut out, mut i) = (Vec::new(), 0);
    while i < c.len() {
        let ch = c[i];
        let raw = if ch == 'b' && at(i + 1) == 'r' { i + 2 } else { i + 1 };
        let hashes = c[raw.min(c.len())..].iter().take_while(|&&h| h == '#').count();
        if ch == '/' && at(i + 1) == '/' {
            i = skip_to(i, "\n", false);
        } else if ch == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                let open = at(i) == '/' && at(i + 1) == '*';
                let close = at(i) == '*' && at(i + 1) == '/';
                depth = depth + usize::from(open) - usize::from(close);
                i += if open || close { 2 } else { 1 };
                if close && depth == 0 {
                    break;
                }
            }
        } else if (ch == 'r' || (ch == 'b' && at(i + 1) == 'r')) && at(raw + hashes) == '"' {
            i = skip_to(raw + hashes + 1, &format!("\"{}", "#".repeat(hashes)), false);
        } else if ch == '"' {
            i = skip_to(i + 1, "\"", true);
        } else if ch == '\'' && at(i + 1) == '\\' {
            i = skip_to(i + 3, "'", false);
        } else if ch == '\'' && at(i + 2) == '\'' {
            i += 3;
        } else if ch.is_alphanumeric() || ch == '_' {
            let start = i;
            while at(i).is_alphanumeric() || at(i) == '_' {
                i += 1;
            }
            out.push((c[start..i].iter().collect(), lines[start]));
        } else if ch == ':' && at(i + 1) == ':' {
            out.push(("::".into(), lines[i]));
            i += 2;
        } else {
            if !ch.is_whitespace() {
                out.push((ch.to_string(), lines[i]));
            }
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(module: &str, text: &str) -> Vec<(String, usize)> {
        let module: Vec<String> = module.split("::").map(str::to_owned).collect();
        imports(&module, text).0.into_iter().map(|(p, line)| (p.join("::"), line)).collect()
    }

    fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(p, t)| (p.to_string(), t.to_string())).collect()
    }

    #[test]
    fn expands_a_multi_line_grouped_use() {
        let text = "use crate::{\n    a,\n    b::{c, d as e, self},\n};\nuse super::{self as up, x::*};\n";
        let found = paths("crate::m::n", text);
        let expect = [("crate::a", 2), ("crate::b::c", 3), ("crate::b::d", 3), ("crate::b", 3)];
        let mut expect: Vec<_> = expect.iter().map(|(p, l)| (p.to_string(), *l)).collect();
        expect.extend([("crate::m".into(), 5), ("crate::m::x".into(), 5)]);
        assert_eq!(found, expect);
    }

    #[test]
    fn reads_super_and_inline_crate_paths() {
        let text =
            "fn f(r: crate::store::ContractRow) {\n    super::serve::go(r);\n    super::super::x::y();\n}";
        let found = paths("crate::node::provide", text);
        let expect = [("crate::store::ContractRow", 1), ("crate::node::serve::go", 2), ("crate::x::y", 3)];
        assert_eq!(found, expect.map(|(p, l)| (p.to_string(), l)));
    }

    #[test]
    fn ignores_cfg_test_comments_and_strings() {
        let text = "// use crate::a;\n/* crate::b::c /* nested */ crate::d */\nconst S: &str = \"crate::e\";\n\
                    const R: &str = r#\"use crate::f;\"#;\nfn g<'a>(c: char) -> bool { c == '\"' }\n\
                    #[cfg(test)]\n#[allow(unused)]\nmod tests {\n    use crate::h;\n}\n#[cfg(test)]\nmod more;\n\
                    use crate::kept;\n";
        let module = ["crate".to_owned(), "m".to_owned()];
        let (found, tests) = imports(&module, text);
        assert_eq!(found, vec![(vec!["crate".to_owned(), "kept".to_owned()], 13)]);
        assert_eq!(tests, vec!["more".to_owned()]);
    }

    #[test]
    fn finds_a_two_module_cycle() {
        let found = find(&files(&[
            ("lib.rs", "mod a;\nmod b;\n"),
            ("a.rs", "use crate::b::B;\npub struct A;\n"),
            ("b.rs", "pub struct B;\nfn f() { super::a::A; }\n"),
        ]));
        let edge = |from: &str, to: &str, file: &str, line| Edge {
            from: from.into(),
            to: to.into(),
            file: file.into(),
            line,
        };
        assert_eq!(
            found,
            vec![vec![edge("crate::a", "crate::b", "a.rs", 1), edge("crate::b", "crate::a", "b.rs", 2)]]
        );
    }

    #[test]
    fn a_child_using_its_parent_or_a_test_file_is_no_cycle() {
        let found = find(&files(&[
            ("lib.rs", "mod node;\nmod x;\nmod y;\n"),
            ("node/mod.rs", "mod provide;\npub use provide::Keep;\npub struct Shared;\n"),
            ("node/provide.rs", "use super::Shared;\nuse crate::node::Shared as S;\npub struct Keep;\n"),
            ("x/mod.rs", "#[cfg(test)]\nmod tests;\n"),
            ("x/tests.rs", "use crate::y::Y;\n"),
            ("y.rs", "use crate::x;\npub struct Y;\n"),
        ]));
        assert!(found.is_empty(), "{found:?}");
    }
}
