//! The procedural macros of `cue-sdk`: `#[jobs]` turns an inline module of plain Rust
//! functions into a WIT-typed component world, and `#[derive(Type)]` marks the structs and
//! enums it may use. Use them through `cue_sdk`, which re-exports both and documents them.
//!
//! How `#[jobs]` works: at expansion time it reads the module (`model`), writes the WIT of
//! one world that includes `cue:job/job@0.1.0` (`wit`), and emits `wit_bindgen::generate!`
//! for that world with the module's own types mapped in through `with`, so the bindings lift
//! and lower the author's types directly, with no conversion layer.

mod model;
mod wit;

use heck::ToKebabCase as _;
use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::{format_ident, quote};
use syn::{Item, ItemMod, parse_macro_input};

use crate::model::{JobModule, Shape};

/// Where the `cue:job` WIT package lives: the repository's `wit/` directory, found from this
/// crate's own location (the SDK is used by path from a checkout of the repository).
const CUE_JOB_WIT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../wit");

/// Turns every `pub fn` of an inline module into a typed export of the job's component.
/// See the `cue_sdk` crate documentation.
#[proc_macro_attribute]
pub fn jobs(args: TokenStream, input: TokenStream) -> TokenStream {
    let args = TokenStream2::from(args);
    let mut module = parse_macro_input!(input as ItemMod);
    if !args.is_empty() {
        return syn::Error::new_spanned(args, "#[cue_sdk::jobs] takes no arguments")
            .to_compile_error()
            .into();
    }
    match model::read(&module) {
        Ok(job) => expand(&mut module, &job).into(),
        Err(error) => {
            let error = error.to_compile_error();
            quote!(#module #error).into()
        }
    }
}

/// Marks a struct (a WIT record) or an enum (a WIT enum, or a variant if a case carries data)
/// as usable in the signatures of a `#[cue_sdk::jobs]` module.
#[proc_macro_derive(Type)]
pub fn derive_type(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as syn::DeriveInput);
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    quote!(impl #impl_generics ::cue_sdk::Type for #ident #ty_generics #where_clause {}).into()
}

/// The crate being compiled, as a WIT name (`my_job` -> `my-job`), for the package and world.
fn crate_wit_name() -> String {
    let name = std::env::var("CARGO_CRATE_NAME").unwrap_or_default().to_kebab_case();
    let valid = name.split('-').all(|p| p.chars().next().is_some_and(|c| c.is_ascii_alphabetic()));
    if valid { name } else { "job".into() }
}

fn expand(module: &mut ItemMod, job: &JobModule) -> TokenStream2 {
    let world = crate_wit_name();
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_else(|_| "0.1.0".into());
    let module_docs = model::docs(&module.attrs);
    let wit_text = wit::render(job, &format!("job:{world}@{version}"), &world, &module_docs);

    let mut with = vec![quote!("cue:job/host@0.1.0": ::cue_sdk::__private::host)];
    let mut lifts = Vec::new();
    for def in &job.types {
        let key = format!("{world}/{}", def.wit_name);
        let ident = &def.ident;
        with.push(quote!(#key: super::#ident));
        if let Shape::Enum(cases) = &def.shape {
            ensure_clone(module, ident);
            let arms = cases.iter().enumerate().map(|(i, case)| {
                let (i, case) = (i as u8, &case.ident);
                quote!(#i => #ident::#case,)
            });
            lifts.push(quote! {
                impl #ident {
                    #[doc(hidden)]
                    pub fn _lift(discriminant: u8) -> Self {
                        match discriminant {
                            #(#arms)*
                            _ => ::core::panic!("invalid enum discriminant"),
                        }
                    }
                }
            });
        }
    }
    let methods = job.exports.iter().map(|export| {
        let ident = &export.ident;
        let args: Vec<_> = (0..export.params.len()).map(|i| format_ident!("arg{i}")).collect();
        let types = export.params.iter().map(|(_, ty, _)| ty);
        let result = export.result.as_ref().map(|(ty, _)| quote!(-> #ty));
        quote! {
            fn #ident(#(#args: #types),*) #result {
                super::#ident(#(#args),*)
            }
        }
    });
    let docs_section = wit::package_docs(job, &module_docs);
    let docs_len = docs_section.len();
    let docs_bytes = proc_macro2::Literal::byte_string(&docs_section);
    let wit_doc = format!("The WIT world inferred from this module:\n\n```wit\n{wit_text}```");
    let generated = quote! {
        #[doc = #wit_doc]
        #[allow(dead_code)]
        pub const WIT: &str = #wit_text;

        #(#lifts)*

        /// The doc comments, for WIT decoders to put back on the component's world.
        #[cfg(target_arch = "wasm32")]
        #[unsafe(link_section = "package-docs")]
        #[used]
        static __CUE_PACKAGE_DOCS: [u8; #docs_len] = *#docs_bytes;

        #[doc(hidden)]
        #[allow(unused_imports, clippy::all)]
        mod __cue_bindings {
            use super::*;

            ::cue_sdk::__private::wit_bindgen::generate!({
                inline: #wit_text,
                path: #CUE_JOB_WIT_DIR,
                runtime_path: "::cue_sdk::__private::wit_bindgen::rt",
                with: { #(#with),* },
            });

            struct CueJobs;

            impl Guest for CueJobs {
                #(#methods)*
            }

            export!(CueJobs);
        }
    };
    let generated: syn::File = syn::parse2(generated).expect("the generated items parse");
    if let Some((_, items)) = &mut module.content {
        items.extend(generated.items);
    }
    quote!(#module)
}

/// Adds `#[derive(Clone)]` to enum `ident` unless it already derives it: the bindings
/// lower a WIT enum with `value.clone() as i32`.
fn ensure_clone(module: &mut ItemMod, ident: &syn::Ident) {
    let Some((_, items)) = &mut module.content else { return };
    for item in items.iter_mut() {
        if let Item::Enum(e) = item
            && e.ident == *ident
        {
            let derives_clone = e.attrs.iter().filter(|a| a.path().is_ident("derive")).any(|a| {
                let mut found = false;
                let _ = a.parse_nested_meta(|meta| {
                    found |= meta.path.segments.last().is_some_and(|s| s.ident == "Clone");
                    Ok(())
                });
                found
            });
            if !derives_clone {
                e.attrs.push(syn::parse_quote!(#[derive(Clone)]));
            }
        }
    }
}
