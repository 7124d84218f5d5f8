//! The module graph of `actors/src` and of `src` has no import cycle at file level.
//!
//! Each source file is a node; file A depends on file B when A names an item defined in B
//! (through `use`, or a `crate::`, `super::`, `self::` or child-module path in code). A path
//! that reaches an item through a re-export (`pub use`) is followed to where the item is
//! defined, so a parent module that only re-exports its children does not create cycles with
//! them. Test-only code (`#[cfg(test)]` items and modules) is left out: tests sit above
//! everything they test.
//!
//! On failure the test prints each cycle, e.g. `ring/owner.rs -> supervisor/probes.rs ->
//! ring/owner.rs`, and the uses that make it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// One module: its file, its child modules, what it defines and re-exports.
#[derive(Debug, Default)]
struct Module {
    file: PathBuf,
    /// Child modules by name (module paths).
    children: BTreeMap<String, Vec<String>>,
    /// Child modules compiled for tests only (`#[cfg(test)] mod x;`): names into them are
    /// test code.
    test_children: BTreeSet<String>,
    /// Items defined here.
    defined: BTreeSet<String>,
    /// `use` imports visible to others (name → absolute path), and glob re-exports.
    reexports: BTreeMap<String, Vec<String>>,
    globs: Vec<Vec<String>>,
}

/// The crate's modules by absolute path (`[]` is the crate root).
type Tree = BTreeMap<Vec<String>, Module>;

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Meta>()
                .is_ok_and(|m| m.path().is_ident("test"))
    })
}

/// Reads the module at `path` (its file `file`), recursively.
fn load(tree: &mut Tree, path: Vec<String>, file: &Path) {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    // Child files of `dir/name.rs` live in `dir/name/` (the crate root's in its own dir).
    let child_dir = if path.is_empty() {
        file.parent().unwrap().to_path_buf()
    } else {
        file.with_extension("")
    };
    tree.insert(
        path.clone(),
        Module {
            file: file.to_path_buf(),
            ..Default::default()
        },
    );
    collect_items(tree, &path, &path, &ast.items, &child_dir);
}

/// Records the items of module `path` (inline modules inside `file_module` extend the path but
/// stay in its file).
fn collect_items(
    tree: &mut Tree,
    file_module: &[String],
    path: &[String],
    items: &[syn::Item],
    child_dir: &Path,
) {
    for item in items {
        let (name, attrs) = match item {
            syn::Item::Const(i) => (Some(i.ident.to_string()), &i.attrs),
            syn::Item::Enum(i) => (Some(i.ident.to_string()), &i.attrs),
            syn::Item::Fn(i) => (Some(i.sig.ident.to_string()), &i.attrs),
            syn::Item::Static(i) => (Some(i.ident.to_string()), &i.attrs),
            syn::Item::Struct(i) => (Some(i.ident.to_string()), &i.attrs),
            syn::Item::Trait(i) => (Some(i.ident.to_string()), &i.attrs),
            syn::Item::Type(i) => (Some(i.ident.to_string()), &i.attrs),
            syn::Item::Union(i) => (Some(i.ident.to_string()), &i.attrs),
            syn::Item::Macro(i) => (i.ident.as_ref().map(|i| i.to_string()), &i.attrs),
            syn::Item::Mod(m) => {
                let name = m.ident.to_string();
                if is_test_only(&m.attrs) {
                    tree.get_mut(path).unwrap().test_children.insert(name);
                    continue;
                }
                let mut child = path.to_vec();
                child.push(name.clone());
                tree.get_mut(path)
                    .unwrap()
                    .children
                    .insert(name.clone(), child.clone());
                match &m.content {
                    Some((_, inner)) => {
                        tree.insert(
                            child.clone(),
                            Module {
                                file: tree[file_module].file.clone(),
                                ..Default::default()
                            },
                        );
                        collect_items(tree, file_module, &child, inner, &child_dir.join(&name));
                    }
                    None => {
                        let file = child_dir.join(format!("{name}.rs"));
                        let file = if file.exists() {
                            file
                        } else {
                            child_dir.join(&name).join("mod.rs")
                        };
                        load(tree, child, &file);
                    }
                }
                continue;
            }
            syn::Item::Use(u) => {
                if is_test_only(&u.attrs) {
                    continue;
                }
                let mut leaves = Vec::new();
                use_leaves(&u.tree, Vec::new(), &mut leaves);
                let m = tree.get_mut(path).unwrap();
                for (segs, alias) in leaves {
                    match alias {
                        Some(a) if a != "_" => {
                            m.reexports.insert(a, segs);
                        }
                        Some(_) => {}
                        None => m.globs.push(segs),
                    }
                }
                continue;
            }
            _ => continue,
        };
        if let Some(name) = name.filter(|_| !is_test_only(attrs)) {
            tree.get_mut(path).unwrap().defined.insert(name);
        }
    }
}

/// The leaves of a use tree: (path, Some(name bound)) or (path, None) for a glob.
fn use_leaves(t: &syn::UseTree, prefix: Vec<String>, out: &mut Vec<(Vec<String>, Option<String>)>) {
    match t {
        syn::UseTree::Path(p) => {
            let mut next = prefix;
            next.push(p.ident.to_string());
            use_leaves(&p.tree, next, out);
        }
        syn::UseTree::Name(n) => {
            let name = n.ident.to_string();
            let mut full = prefix;
            if name == "self" {
                let bound = full.last().cloned();
                out.push((full, bound));
            } else {
                full.push(name.clone());
                out.push((full, Some(name)));
            }
        }
        syn::UseTree::Rename(r) => {
            let mut full = prefix;
            full.push(r.ident.to_string());
            out.push((full, Some(r.rename.to_string())));
        }
        syn::UseTree::Glob(_) => out.push((prefix, None)),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                use_leaves(t, prefix.clone(), out);
            }
        }
    }
}

/// Turns `segs`, written in module `at`, into an absolute module path and the rest; None for
/// paths outside the crate.
fn absolute(tree: &Tree, at: &[String], segs: &[String]) -> Option<Vec<String>> {
    let first = segs.first()?;
    let mut base: Vec<String> = match first.as_str() {
        "crate" => Vec::new(),
        "self" => at.to_vec(),
        "super" => {
            let mut p = at.to_vec();
            let mut rest = segs;
            while rest.first().map(String::as_str) == Some("super") {
                p.pop()?;
                rest = &rest[1..];
            }
            p.extend(rest.iter().cloned());
            return Some(p);
        }
        name if tree
            .get(at)
            .is_some_and(|m| m.children.contains_key(name) || m.test_children.contains(name)) =>
        {
            let mut p = at.to_vec();
            p.push(name.to_string());
            p.extend(segs[1..].iter().cloned());
            return Some(p);
        }
        _ => return None,
    };
    base.extend(segs[1..].iter().cloned());
    Some(base)
}

/// The file that defines what the absolute path `abs` names (following re-exports), with a
/// bound on how many re-exports are followed.
fn defining_file(tree: &Tree, abs: &[String], depth: usize) -> Option<PathBuf> {
    // The longest prefix that is a module.
    let mut split = abs.len();
    while !tree.contains_key(&abs[..split]) {
        split -= 1;
    }
    let module = &tree[&abs[..split]];
    let Some(item) = abs.get(split) else {
        return Some(module.file.clone());
    };
    if module.test_children.contains(item) {
        return None; // test code
    }
    if module.defined.contains(item) || depth == 0 {
        return Some(module.file.clone());
    }
    let here = abs[..split].to_vec();
    if let Some(target) = module.reexports.get(item) {
        let mut full = absolute(tree, &here, target)?;
        full.extend(abs[split + 1..].iter().cloned());
        return defining_file(tree, &full, depth - 1);
    }
    for glob in &module.globs {
        let Some(mut full) = absolute(tree, &here, glob) else {
            continue;
        };
        if tree
            .get(&full)
            .is_some_and(|m| m.defined.contains(item) || m.reexports.contains_key(item))
        {
            full.extend(abs[split..].iter().cloned());
            return defining_file(tree, &full, depth - 1);
        }
    }
    Some(module.file.clone())
}

/// Collects the crate-relative paths a file names.
struct Uses<'a> {
    tree: &'a Tree,
    module: Vec<String>,
    /// (absolute path, where) for every path into the crate.
    found: Vec<(Vec<String>, Vec<String>)>,
}

impl Uses<'_> {
    fn record(&mut self, segs: Vec<String>) {
        if let Some(abs) = absolute(self.tree, &self.module, &segs) {
            let from = self.module.clone();
            self.found.push((abs, from));
        }
    }
}

impl<'ast> Visit<'ast> for Uses<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs = match item {
            syn::Item::Fn(i) => &i.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Mod(i) => &i.attrs,
            syn::Item::Use(i) => &i.attrs,
            syn::Item::Struct(i) => &i.attrs,
            syn::Item::Enum(i) => &i.attrs,
            syn::Item::Const(i) => &i.attrs,
            _ => &Vec::new(),
        };
        if is_test_only(attrs) {
            return;
        }
        match item {
            syn::Item::Mod(m) => {
                if let Some((_, items)) = &m.content {
                    self.module.push(m.ident.to_string());
                    for i in items {
                        self.visit_item(i);
                    }
                    self.module.pop();
                }
            }
            syn::Item::Use(u) => {
                let mut leaves = Vec::new();
                use_leaves(&u.tree, Vec::new(), &mut leaves);
                for (segs, _) in leaves {
                    self.record(segs);
                }
            }
            other => syn::visit::visit_item(self, other),
        }
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if !is_test_only(&f.attrs) {
            syn::visit::visit_impl_item_fn(self, f);
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segs: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        if segs.len() > 1 {
            self.record(segs);
        }
        syn::visit::visit_path(self, p);
    }
}

/// File-level dependency edges of the crate rooted at `root`, with one example use per edge.
fn edges(root: &Path) -> BTreeMap<(PathBuf, PathBuf), String> {
    let mut tree = Tree::new();
    load(&mut tree, Vec::new(), root);
    let mut out = BTreeMap::new();
    // Each file once, from the outermost module it holds (inline modules share its file).
    let mut tops: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    for (path, m) in &tree {
        let top = tops.entry(m.file.clone()).or_insert_with(|| path.clone());
        if path.len() < top.len() {
            *top = path.clone();
        }
    }
    for (file, top) in tops {
        let ast = syn::parse_file(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let mut uses = Uses {
            tree: &tree,
            module: top,
            found: Vec::new(),
        };
        for item in &ast.items {
            uses.visit_item(item);
        }
        for (abs, _) in uses.found {
            if let Some(to) = defining_file(&tree, &abs, 8) {
                if to != file {
                    out.entry((file.clone(), to))
                        .or_insert_with(|| abs.join("::"));
                }
            }
        }
    }
    out
}

/// Every cycle's files (strongly connected components of more than one file).
fn cycles(edges: &BTreeMap<(PathBuf, PathBuf), String>) -> Vec<Vec<PathBuf>> {
    let nodes: BTreeSet<&PathBuf> = edges.keys().flat_map(|(a, b)| [a, b]).collect();
    let index: BTreeMap<&PathBuf, usize> = nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let names: Vec<&PathBuf> = nodes.into_iter().collect();
    let mut adj = vec![Vec::new(); names.len()];
    for (a, b) in edges.keys() {
        adj[index[a]].push(index[b]);
    }
    // Tarjan's strongly connected components.
    struct T {
        idx: Vec<Option<usize>>,
        low: Vec<usize>,
        on: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn strong(v: usize, adj: &[Vec<usize>], t: &mut T) {
        t.idx[v] = Some(t.next);
        t.low[v] = t.next;
        t.next += 1;
        t.stack.push(v);
        t.on[v] = true;
        for &w in &adj[v] {
            match t.idx[w] {
                None => {
                    strong(w, adj, t);
                    t.low[v] = t.low[v].min(t.low[w]);
                }
                Some(i) if t.on[w] => t.low[v] = t.low[v].min(i),
                _ => {}
            }
        }
        if Some(t.low[v]) == t.idx[v] {
            let mut c = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on[w] = false;
                c.push(w);
                if w == v {
                    break;
                }
            }
            if c.len() > 1 {
                t.out.push(c);
            }
        }
    }
    let n = names.len();
    let mut t = T {
        idx: vec![None; n],
        low: vec![0; n],
        on: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if t.idx[v].is_none() {
            strong(v, &adj, &mut t);
        }
    }
    t.out
        .into_iter()
        .map(|c| c.into_iter().map(|i| names[i].clone()).collect())
        .collect()
}

fn check(crate_dir: &str, root: &str) {
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(crate_dir);
    let edges = edges(&base.join(root));
    assert!(
        edges.len() > 10,
        "found only {} edges: {edges:?}",
        edges.len()
    );
    let rel = |p: &Path| p.strip_prefix(&base).unwrap_or(p).display().to_string();
    let found = cycles(&edges);
    let mut report = String::new();
    for c in &found {
        let files: Vec<String> = c.iter().map(|p| rel(p)).collect();
        report.push_str(&format!("cycle: {}\n", files.join(", ")));
        for ((a, b), via) in &edges {
            if c.contains(a) && c.contains(b) {
                report.push_str(&format!("  {} -> {} (via {via})\n", rel(a), rel(b)));
            }
        }
    }
    assert!(found.is_empty(), "import cycles in {crate_dir}:\n{report}");
}

#[test]
fn the_actor_crate_has_no_import_cycle_between_files() {
    check("actors/src", "lib.rs");
}

#[test]
fn the_binary_has_no_import_cycle_between_files() {
    check("src", "main.rs");
}

#[test]
fn the_checker_finds_a_cycle() {
    // Two files that name each other's items, and a parent that only re-exports (no cycle).
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::write(
        src.join("lib.rs"),
        "pub mod a;\npub mod b;\npub mod c;\npub use c::C;\n",
    )
    .unwrap();
    std::fs::write(src.join("a.rs"), "use crate::b::B;\npub struct A(B);\n").unwrap();
    std::fs::write(src.join("b.rs"), "pub struct B(pub Box<crate::a::A>);\n").unwrap();
    std::fs::write(src.join("c.rs"), "pub struct C(crate::C);\n").unwrap();
    let e = edges(&src.join("lib.rs"));
    let found = cycles(&e);
    assert_eq!(found.len(), 1, "{e:?}");
    let mut files: Vec<String> = found[0]
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into())
        .collect();
    files.sort();
    assert_eq!(files, ["a.rs", "b.rs"]);
    // c.rs reaches its own item through lib.rs's re-export: followed back to c.rs, no edge.
    assert!(!e.keys().any(|(a, _)| a.ends_with("c.rs")), "{e:?}");
}
