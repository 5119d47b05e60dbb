//! Writing a job model as a WIT package: one world that includes `cue:job/job` and declares
//! the module's types and exports, with the Rust doc comments as WIT doc comments.

use std::fmt::Write as _;

use crate::model::{JobModule, Shape, WitType};

/// WIT keywords: a name spelled like one is written with the `%` escape.
const KEYWORDS: &[&str] = &[
    "as",
    "async",
    "bool",
    "borrow",
    "char",
    "constructor",
    "enum",
    "error-context",
    "export",
    "f32",
    "f64",
    "flags",
    "float32",
    "float64",
    "from",
    "func",
    "future",
    "import",
    "include",
    "interface",
    "list",
    "map",
    "option",
    "own",
    "package",
    "record",
    "resource",
    "result",
    "s16",
    "s32",
    "s64",
    "s8",
    "static",
    "stream",
    "string",
    "tuple",
    "type",
    "u16",
    "u32",
    "u64",
    "u8",
    "use",
    "variant",
    "with",
    "world",
];

/// The WIT spelling of a kebab-case name.
fn id(name: &str) -> String {
    if KEYWORDS.contains(&name) { format!("%{name}") } else { name.to_string() }
}

/// The text of `package <package>; world <world> { ... }` for `module`.
pub fn render(module: &JobModule, package: &str, world: &str, world_docs: &[String]) -> String {
    let mut out = String::new();
    writeln!(out, "package {package};\n").unwrap();
    write_docs(&mut out, "", world_docs);
    writeln!(out, "world {} {{", id(world)).unwrap();
    writeln!(out, "    include cue:job/job@0.1.0;").unwrap();
    for def in &module.types {
        out.push('\n');
        write_docs(&mut out, "    ", &def.docs);
        let (keyword, members) = match &def.shape {
            Shape::Record(m) => ("record", m),
            Shape::Enum(m) => ("enum", m),
            Shape::Variant(m) => ("variant", m),
        };
        writeln!(out, "    {keyword} {} {{", id(&def.wit_name)).unwrap();
        for member in members {
            write_docs(&mut out, "        ", &member.docs);
            let name = id(&member.wit_name);
            match (&def.shape, &member.ty) {
                (Shape::Record(_), Some(ty)) => writeln!(out, "        {name}: {},", type_text(ty)),
                (_, Some(ty)) => writeln!(out, "        {name}({}),", type_text(ty)),
                (_, None) => writeln!(out, "        {name},"),
            }
            .unwrap();
        }
        writeln!(out, "    }}").unwrap();
    }
    for export in &module.exports {
        out.push('\n');
        write_docs(&mut out, "    ", &export.docs);
        let params: Vec<String> =
            export.params.iter().map(|(name, _, ty)| format!("{}: {}", id(name), type_text(ty))).collect();
        let result =
            export.result.as_ref().map(|(_, ty)| format!(" -> {}", type_text(ty))).unwrap_or_default();
        writeln!(out, "    export {}: func({}){result};", id(&export.wit_name), params.join(", ")).unwrap();
    }
    out.push_str("}\n");
    out
}

fn write_docs(out: &mut String, indent: &str, docs: &[String]) {
    for line in docs {
        writeln!(out, "{indent}/// {line}").unwrap();
    }
}

/// A WIT type expression.
pub fn type_text(ty: &WitType) -> String {
    let side = |t: &Option<Box<WitType>>| t.as_deref().map(type_text).unwrap_or_else(|| "_".into());
    match ty {
        WitType::Primitive(p) => (*p).to_string(),
        WitType::List(inner) => format!("list<{}>", type_text(inner)),
        WitType::Option(inner) => format!("option<{}>", type_text(inner)),
        WitType::Result(None, None) => "result".into(),
        WitType::Result(ok, None) => format!("result<{}>", side(ok)),
        WitType::Result(ok, err) => format!("result<{}, {}>", side(ok), side(err)),
        WitType::Tuple(items) => {
            format!("tuple<{}>", items.iter().map(type_text).collect::<Vec<_>>().join(", "))
        }
        WitType::Named(name) => id(name),
    }
}

/// The `package-docs` custom section (version 0: a zero byte, then JSON) that carries the
/// doc comments into the component: WIT decoders (`cue inspect`, `wasm-tools component
/// wit`) read it back onto the decoded world, which is always named `root`. Only types an
/// export reaches are in the component, so only they are described.
pub fn package_docs(module: &JobModule, world_docs: &[String]) -> Vec<u8> {
    let mut reachable: Vec<&str> = Vec::new();
    let mut pending: Vec<&WitType> = module
        .exports
        .iter()
        .flat_map(|e| e.params.iter().map(|p| &p.2).chain(e.result.as_ref().map(|r| &r.1)))
        .collect();
    while let Some(ty) = pending.pop() {
        match ty {
            WitType::Primitive(_) => {}
            WitType::List(inner) | WitType::Option(inner) => pending.push(inner),
            WitType::Result(ok, err) => pending.extend(ok.iter().chain(err).map(|b| &**b)),
            WitType::Tuple(items) => pending.extend(items),
            WitType::Named(name) if !reachable.contains(&name.as_str()) => {
                reachable.push(name);
                let def = module.types.iter().find(|d| d.wit_name == *name);
                let members = def.map(|d| match &d.shape {
                    Shape::Record(m) | Shape::Enum(m) | Shape::Variant(m) => m,
                });
                pending.extend(members.into_iter().flatten().filter_map(|m| m.ty.as_ref()));
            }
            WitType::Named(_) => {}
        }
    }
    let mut types = Vec::new();
    for def in module.types.iter().filter(|d| reachable.contains(&d.wit_name.as_str())) {
        let members = match &def.shape {
            Shape::Record(m) | Shape::Enum(m) | Shape::Variant(m) => m,
        };
        let items: Vec<String> = members
            .iter()
            .filter(|m| !m.docs.is_empty())
            .map(|m| format!("{}:{}", json_string(&m.wit_name), json_string(&m.docs.join("\n"))))
            .collect();
        let mut fields = Vec::new();
        if !def.docs.is_empty() {
            fields.push(format!("\"docs\":{}", json_string(&def.docs.join("\n"))));
        }
        if !items.is_empty() {
            fields.push(format!("\"items\":{{{}}}", items.join(",")));
        }
        if !fields.is_empty() {
            types.push(format!("{}:{{{}}}", json_string(&def.wit_name), fields.join(",")));
        }
    }
    let funcs: Vec<String> = module
        .exports
        .iter()
        .filter(|e| !e.docs.is_empty())
        .map(|e| format!("{}:{}", json_string(&e.wit_name), json_string(&e.docs.join("\n"))))
        .collect();
    let mut world = Vec::new();
    if !world_docs.is_empty() {
        world.push(format!("\"docs\":{}", json_string(&world_docs.join("\n"))));
    }
    if !types.is_empty() {
        world.push(format!("\"types\":{{{}}}", types.join(",")));
    }
    if !funcs.is_empty() {
        world.push(format!("\"funcs\":{{{}}}", funcs.join(",")));
    }
    let mut section = vec![0u8];
    section.extend(format!("{{\"worlds\":{{\"root\":{{{}}}}}}}", world.join(",")).into_bytes());
    section
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32).unwrap(),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
