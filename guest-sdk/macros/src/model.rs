//! Reading a `#[jobs]` module into a job model: its exported functions and the types they
//! use, each mapped to WIT, with a spanned compile error for anything WIT cannot express.

use heck::{ToKebabCase as _, ToSnakeCase as _, ToUpperCamelCase as _};
use syn::spanned::Spanned as _;
use syn::{Attribute, Error, Fields, FnArg, GenericArgument, Item, ItemMod, Pat, PathArguments, ReturnType};

/// What an unsupported type's error says is supported.
const SUPPORTED: &str = "supported: bool, u8, u16, u32, u64, i8, i16, i32, i64, f32, f64, char, String, \
    Vec<T>, Option<T>, Result<T, E>, tuples, and structs/enums defined in this module with \
    #[derive(cue_sdk::Type)]";

/// A WIT type, as inferred from a Rust type.
#[derive(Clone, Debug)]
pub enum WitType {
    /// A primitive, by its WIT name (`u32`, `string`, ...).
    Primitive(&'static str),
    /// `list<T>`.
    List(Box<WitType>),
    /// `option<T>`.
    Option(Box<WitType>),
    /// `result<T, E>`; `None` for a side that is `()`.
    Result(Option<Box<WitType>>, Option<Box<WitType>>),
    /// `tuple<...>` (at least one element).
    Tuple(Vec<WitType>),
    /// A record, enum or variant of the module, by its kebab-case WIT name.
    Named(String),
}

/// A type of the module with `#[derive(cue_sdk::Type)]`.
pub struct TypeDef {
    /// The Rust identifier.
    pub ident: syn::Ident,
    /// The kebab-case WIT name.
    pub wit_name: String,
    /// Doc comment lines.
    pub docs: Vec<String>,
    /// What it becomes in WIT.
    pub shape: Shape,
}

/// The WIT shape of a [`TypeDef`].
pub enum Shape {
    /// A struct with named fields: `record`.
    Record(Vec<Member>),
    /// An enum without data: `enum`; members have no type.
    Enum(Vec<Member>),
    /// An enum with data: `variant`; a member's type is its payload.
    Variant(Vec<Member>),
}

/// A field of a record, or a case of an enum or variant.
pub struct Member {
    /// The Rust identifier.
    pub ident: syn::Ident,
    /// The kebab-case WIT name.
    pub wit_name: String,
    /// Doc comment lines.
    pub docs: Vec<String>,
    /// The field type, or a variant case's payload.
    pub ty: Option<WitType>,
}

/// An exported function: a `pub fn` of the module.
pub struct Export {
    /// The Rust identifier.
    pub ident: syn::Ident,
    /// The kebab-case WIT name.
    pub wit_name: String,
    /// Doc comment lines.
    pub docs: Vec<String>,
    /// Parameters: WIT name, Rust type, WIT type.
    pub params: Vec<(String, syn::Type, WitType)>,
    /// The result, unless the function returns `()`.
    pub result: Option<(syn::Type, WitType)>,
}

/// Everything the module exports, in source order.
pub struct JobModule {
    /// The types with `#[derive(cue_sdk::Type)]`.
    pub types: Vec<TypeDef>,
    /// The `pub fn`s.
    pub exports: Vec<Export>,
}

/// Reads `module`; every problem found is one error, combined.
pub fn read(module: &ItemMod) -> Result<JobModule, Error> {
    let Some((_, items)) = &module.content else {
        return Err(Error::new(module.span(), "#[cue_sdk::jobs] needs an inline module: `mod jobs { ... }`"));
    };
    let mut errors = Errors::default();
    let type_items: Vec<&Item> = items.iter().filter(|item| is_job_type(item)).collect();
    let names: Vec<String> =
        type_items.iter().filter_map(|item| item_ident(item)).map(|i| i.to_string()).collect();
    let types = type_items.iter().filter_map(|item| errors.keep(read_type(item, &names))).collect();
    let exports: Vec<Export> = items
        .iter()
        .filter_map(|item| match item {
            Item::Fn(f) if matches!(f.vis, syn::Visibility::Public(_)) => errors.keep(read_export(f, &names)),
            _ => None,
        })
        .collect();
    if exports.is_empty() && errors.0.is_none() {
        errors.push(Error::new(
            module.ident.span(),
            "a #[cue_sdk::jobs] module exports its `pub fn`s, and this one has none",
        ));
    }
    errors.finish(JobModule { types, exports })
}

/// Collects errors so that one expansion reports all of them.
#[derive(Default)]
struct Errors(Option<Error>);

impl Errors {
    fn push(&mut self, error: Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn keep<T>(&mut self, result: Result<T, Error>) -> Option<T> {
        result.map_err(|e| self.push(e)).ok()
    }

    fn finish<T>(self, value: T) -> Result<T, Error> {
        self.0.map_or(Ok(value), Err)
    }
}

fn is_job_type(item: &Item) -> bool {
    let attrs = match item {
        Item::Struct(s) => &s.attrs,
        Item::Enum(e) => &e.attrs,
        _ => return false,
    };
    attrs.iter().filter(|a| a.path().is_ident("derive")).any(|a| {
        let mut found = false;
        let _ = a.parse_nested_meta(|meta| {
            found |= meta.path.segments.last().is_some_and(|s| s.ident == "Type");
            Ok(())
        });
        found
    })
}

fn item_ident(item: &Item) -> Option<&syn::Ident> {
    match item {
        Item::Struct(s) => Some(&s.ident),
        Item::Enum(e) => Some(&e.ident),
        _ => None,
    }
}

fn require_pub(vis: &syn::Visibility, span: proc_macro2::Span, what: &str) -> Result<(), Error> {
    if matches!(vis, syn::Visibility::Public(_)) {
        Ok(())
    } else {
        Err(Error::new(span, format!("{what} must be `pub`: it is part of the job's public WIT interface")))
    }
}

fn read_type(item: &Item, names: &[String]) -> Result<TypeDef, Error> {
    let mut errors = Errors::default();
    let (ident, attrs, generics, vis) = match item {
        Item::Struct(s) => (&s.ident, &s.attrs, &s.generics, &s.vis),
        Item::Enum(e) => (&e.ident, &e.attrs, &e.generics, &e.vis),
        _ => unreachable!("filtered by is_job_type"),
    };
    errors.keep(require_pub(vis, ident.span(), &format!("`{ident}`")));
    if !generics.params.is_empty() {
        errors.push(Error::new(generics.span(), "a job type cannot be generic: WIT types are concrete"));
    }
    let shape = match item {
        Item::Struct(s) => read_record(s, names, &mut errors),
        Item::Enum(e) => read_enum(e, names, &mut errors),
        _ => unreachable!("filtered by is_job_type"),
    };
    errors.finish(TypeDef { wit_name: wit_name(ident)?, docs: docs(attrs), shape, ident: ident.clone() })
}

fn read_record(item: &syn::ItemStruct, names: &[String], errors: &mut Errors) -> Shape {
    let Fields::Named(fields) = &item.fields else {
        errors.push(Error::new(
            item.fields.span(),
            "a job struct needs named fields (it becomes a WIT record); use a tuple type for positional data",
        ));
        return Shape::Record(Vec::new());
    };
    if fields.named.is_empty() {
        errors.push(Error::new(item.ident.span(), "a WIT record needs at least one field"));
    }
    let members = fields
        .named
        .iter()
        .filter_map(|field| {
            let ident = field.ident.as_ref().expect("named field");
            errors.keep(require_pub(&field.vis, ident.span(), &format!("field `{ident}`")));
            let ty = errors.keep(wit_type(&field.ty, names))?;
            let wit_name = errors.keep(member_name(ident, |k| k.to_snake_case()))?;
            Some(Member { wit_name, docs: docs(&field.attrs), ty: Some(ty), ident: ident.clone() })
        })
        .collect();
    Shape::Record(members)
}

fn read_enum(item: &syn::ItemEnum, names: &[String], errors: &mut Errors) -> Shape {
    if item.variants.is_empty() {
        errors.push(Error::new(item.ident.span(), "a WIT enum or variant needs at least one case"));
    }
    let has_data = item.variants.iter().any(|v| !matches!(v.fields, Fields::Unit));
    let members = item
        .variants
        .iter()
        .filter_map(|variant| {
            if let Some((_, discriminant)) = &variant.discriminant {
                errors.push(Error::new(discriminant.span(), "a job enum cannot set discriminants: WIT numbers cases in order"));
            }
            let ty = match &variant.fields {
                Fields::Unit => None,
                Fields::Unnamed(fields) if fields.unnamed.len() == 1 => {
                    Some(errors.keep(wit_type(&fields.unnamed[0].ty, names))?)
                }
                other => {
                    errors.push(Error::new(
                        other.span(),
                        "a variant case carries at most one value, `Case(T)`: use a struct or a tuple `Case((A, B))`",
                    ));
                    return None;
                }
            };
            let wit_name = errors.keep(member_name(&variant.ident, |k| k.to_upper_camel_case()))?;
            Some(Member { wit_name, docs: docs(&variant.attrs), ty, ident: variant.ident.clone() })
        })
        .collect();
    if has_data { Shape::Variant(members) } else { Shape::Enum(members) }
}

fn read_export(f: &syn::ItemFn, names: &[String]) -> Result<Export, Error> {
    let mut errors = Errors::default();
    let sig = &f.sig;
    let unsupported = [
        (sig.asyncness.is_some(), "async"),
        (sig.unsafety.is_some(), "unsafe"),
        (sig.constness.is_some(), "const"),
        (sig.abi.is_some(), "extern"),
        (!sig.generics.params.is_empty(), "generic"),
        (sig.variadic.is_some(), "variadic"),
    ];
    for (present, what) in unsupported {
        if present {
            errors.push(Error::new(sig.span(), format!("an exported job function cannot be {what}")));
        }
    }
    let params = sig
        .inputs
        .iter()
        .filter_map(|arg| {
            let FnArg::Typed(arg) = arg else {
                errors.push(Error::new(
                    arg.span(),
                    "an exported job function is a free function, without `self`",
                ));
                return None;
            };
            let Pat::Ident(pat) = &*arg.pat else {
                errors.push(Error::new(
                    arg.pat.span(),
                    "a job parameter needs a plain name: it is the WIT parameter name",
                ));
                return None;
            };
            let ty = errors.keep(wit_type(&arg.ty, names))?;
            Some((errors.keep(wit_name(&pat.ident))?, (*arg.ty).clone(), ty))
        })
        .collect();
    let result = match &sig.output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) if is_unit(ty) => None,
        ReturnType::Type(_, ty) => errors.keep(wit_type(ty, names)).map(|wit| ((**ty).clone(), wit)),
    };
    errors.finish(Export {
        wit_name: wit_name(&sig.ident)?,
        docs: docs(&f.attrs),
        params,
        result,
        ident: sig.ident.clone(),
    })
}

fn is_unit(ty: &syn::Type) -> bool {
    matches!(ty, syn::Type::Tuple(t) if t.elems.is_empty())
}

/// The WIT type of a Rust type, or an error pointing at it.
fn wit_type(ty: &syn::Type, names: &[String]) -> Result<WitType, Error> {
    let unsupported = || {
        let text = quote::ToTokens::to_token_stream(ty).to_string();
        let text = text
            .replace(" :: ", "::")
            .replace(" <", "<")
            .replace("< ", "<")
            .replace(" >", ">")
            .replace("& ", "&");
        Error::new_spanned(ty, format!("`{text}` is not supported in a Cue job interface; {SUPPORTED}"))
    };
    match ty {
        syn::Type::Paren(inner) => wit_type(&inner.elem, names),
        syn::Type::Group(inner) => wit_type(&inner.elem, names),
        syn::Type::Tuple(tuple) if tuple.elems.is_empty() => Err(Error::new(
            ty.span(),
            "`()` is only allowed as a function's result or one side of a `Result`",
        )),
        syn::Type::Tuple(tuple) => {
            Ok(WitType::Tuple(tuple.elems.iter().map(|t| wit_type(t, names)).collect::<Result<_, _>>()?))
        }
        syn::Type::Path(path) if path.qself.is_none() => {
            let last = path.path.segments.last().ok_or_else(unsupported)?;
            let args: Vec<&syn::Type> = match &last.arguments {
                PathArguments::None => Vec::new(),
                PathArguments::AngleBracketed(a) => a
                    .args
                    .iter()
                    .map(|a| match a {
                        GenericArgument::Type(t) => Ok(t),
                        _ => Err(unsupported()),
                    })
                    .collect::<Result<_, _>>()?,
                PathArguments::Parenthesized(_) => return Err(unsupported()),
            };
            let name = last.ident.to_string();
            let one = |make: fn(Box<WitType>) -> WitType| match args.as_slice() {
                [inner] => Ok(make(Box::new(wit_type(inner, names)?))),
                _ => Err(unsupported()),
            };
            let side = |t: &syn::Type| -> Result<Option<Box<WitType>>, Error> {
                if is_unit(t) { Ok(None) } else { Ok(Some(Box::new(wit_type(t, names)?))) }
            };
            match (name.as_str(), args.len()) {
                ("Vec", _) => one(WitType::List),
                ("Option", _) => one(WitType::Option),
                ("Result", 2) => Ok(WitType::Result(side(args[0])?, side(args[1])?)),
                (_, 0) => match primitive(&name) {
                    Some(p) => Ok(WitType::Primitive(p)),
                    None if names.contains(&name) => Ok(WitType::Named(wit_name(&last.ident)?)),
                    None => Err(unsupported()),
                },
                _ => Err(unsupported()),
            }
        }
        _ => Err(unsupported()),
    }
}

fn primitive(name: &str) -> Option<&'static str> {
    Some(match name {
        "bool" => "bool",
        "u8" => "u8",
        "u16" => "u16",
        "u32" => "u32",
        "u64" => "u64",
        "i8" => "s8",
        "i16" => "s16",
        "i32" => "s32",
        "i64" => "s64",
        "f32" => "f32",
        "f64" => "f64",
        "char" => "char",
        "String" => "string",
        _ => return None,
    })
}

/// The kebab-case WIT name of a Rust identifier; it must map back to the same Rust name
/// (the bindings name fields and cases after it).
fn wit_name(ident: &syn::Ident) -> Result<String, Error> {
    let text = ident.to_string();
    let bad = |why: &str| Error::new(ident.span(), format!("`{text}` cannot be a WIT name: {why}"));
    if text.starts_with("r#") {
        return Err(bad("raw identifiers have no WIT spelling"));
    }
    let kebab = text.to_kebab_case();
    let valid = !kebab.is_empty()
        && kebab.split('-').all(|part| {
            part.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && part.chars().all(|c| c.is_ascii_alphanumeric())
        });
    if !valid {
        return Err(bad("each `_`-separated word must start with a letter"));
    }
    Ok(kebab)
}

/// The WIT name of a field or case, which the bindings turn back into a Rust name with
/// `to_rust`: the two must agree (`snake_case` fields, `UpperCamelCase` cases).
fn member_name(ident: &syn::Ident, to_rust: fn(&str) -> String) -> Result<String, Error> {
    let kebab = wit_name(ident)?;
    let expected = to_rust(&kebab);
    if *ident != expected {
        return Err(Error::new(
            ident.span(),
            format!(
                "`{ident}` becomes `{kebab}` in WIT, which maps back to `{expected}`: rename it `{expected}`"
            ),
        ));
    }
    Ok(kebab)
}

/// The doc comment lines of an item.
pub fn docs(attrs: &[Attribute]) -> Vec<String> {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        })
        .flat_map(|s| {
            s.lines().map(|l| l.strip_prefix(' ').unwrap_or(l).trim_end().to_string()).collect::<Vec<_>>()
        })
        .collect()
}
