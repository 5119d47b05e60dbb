//! `console`: `log`, `info`, `debug`, `warn` and `error` append a line to the job's log
//! through the host's `log` (bounded and charged fuel by the sandbox; a job that writes past
//! the bound ends `too-large`).
//!
//! A line is the arguments joined by spaces: a string as it is, any other value as the
//! engine displays it (`{ a: 1 }`, `[ 1, 2 ]`), without running any of the job's code.

use boa_engine::object::ObjectInitializer;
use boa_engine::property::Attribute;
use boa_engine::{Context, JsResult, JsValue, NativeFunction, js_string};

use crate::cue::job::host::{Level, log};

/// Defines the global `console`.
pub(crate) fn install(context: &mut Context) -> JsResult<()> {
    let console = ObjectInitializer::new(context)
        .function(NativeFunction::from_fn_ptr(info), js_string!("log"), 0)
        .function(NativeFunction::from_fn_ptr(info), js_string!("info"), 0)
        .function(NativeFunction::from_fn_ptr(debug), js_string!("debug"), 0)
        .function(NativeFunction::from_fn_ptr(warn), js_string!("warn"), 0)
        .function(NativeFunction::from_fn_ptr(error), js_string!("error"), 0)
        .build();
    context.register_global_property(
        js_string!("console"),
        console,
        Attribute::WRITABLE | Attribute::CONFIGURABLE,
    )
}

fn info(_: &JsValue, args: &[JsValue], _: &mut Context) -> JsResult<JsValue> {
    write(Level::Info, args)
}

fn debug(_: &JsValue, args: &[JsValue], _: &mut Context) -> JsResult<JsValue> {
    write(Level::Debug, args)
}

fn warn(_: &JsValue, args: &[JsValue], _: &mut Context) -> JsResult<JsValue> {
    write(Level::Warn, args)
}

fn error(_: &JsValue, args: &[JsValue], _: &mut Context) -> JsResult<JsValue> {
    write(Level::Error, args)
}

fn write(level: Level, args: &[JsValue]) -> JsResult<JsValue> {
    let line = args
        .iter()
        .map(|value| match value.as_string() {
            Some(text) => text.to_std_string_escaped(),
            None => value.display().to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ");
    log(level, &line);
    Ok(JsValue::undefined())
}
