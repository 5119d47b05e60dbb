//! From what the job's function did to what `run` returns: awaiting its promise, writing its
//! value as JSON, and turning an exception into a typed `js-error` with its message and, when
//! the engine knows it, its position.

use boa_engine::builtins::promise::PromiseState;
use boa_engine::object::builtins::JsPromise;
use boa_engine::{Context, JsError as BoaError, JsResult, JsValue, js_string};

use crate::{Builtins, Exception, JsError, Position};

/// Awaits `returned` as `await` would (a promise or any thenable), running the job queue
/// until it is empty. There are no timers, so a promise still pending then never settles.
pub(crate) fn settle(returned: JsResult<JsValue>, context: &mut Context) -> Result<JsValue, JsError> {
    let value = returned.map_err(|e| thrown(e, context))?;
    let promise = JsPromise::resolve(value, context).map_err(|e| thrown(e, context))?;
    context.run_jobs().map_err(|e| thrown(e, context))?;
    match promise.state() {
        PromiseState::Fulfilled(value) => Ok(value),
        PromiseState::Rejected(reason) => Err(thrown(BoaError::from_opaque(reason), context)),
        PromiseState::Pending => Err(JsError::Unsettled),
    }
}

/// Writes `value` with the engine's own `JSON.stringify` (taken before the job ran), so the
/// text is what Node's `JSON.stringify` writes for the same value; `undefined` is `null`.
pub(crate) fn to_json(
    value: &JsValue,
    builtins: &Builtins,
    context: &mut Context,
) -> Result<String, JsError> {
    let cannot = |what: &str| {
        JsError::Unserializable(format!("the function returned {what}, which JSON cannot carry"))
    };
    if value.is_callable() {
        return Err(cannot("a function"));
    }
    if value.is_symbol() {
        return Err(cannot("a symbol"));
    }
    if value.is_bigint() {
        return Err(cannot("a BigInt (return it as a string: `String(n)`)"));
    }
    if value.is_undefined() {
        return Ok("null".into());
    }
    let text = builtins.json_stringify.call(&JsValue::undefined(), std::slice::from_ref(value), context);
    match text {
        Ok(text) => match text.as_string() {
            Some(text) => Ok(text.to_std_string_escaped()),
            None => Ok("null".into()),
        },
        Err(error) if error.as_engine().is_some() => Err(thrown(error, context)),
        Err(error) => Err(JsError::Unserializable(format!(
            "the result cannot be written as JSON: {}",
            message_of(error, context)
        ))),
    }
}

/// The error of evaluating the job's code: a `SyntaxError` raised by the parser is `syntax`,
/// anything else (a `ReferenceError` in the expression, say) is `thrown`.
pub(crate) fn evaluation_error(error: BoaError, context: &mut Context) -> JsError {
    match error.as_native() {
        Some(native) if native.is_syntax() => {
            let message = format!("SyntaxError: {}", native.message());
            let position = parse_position(&message, " at line ", ", col ");
            JsError::Syntax(Exception { message, position })
        }
        _ => thrown(error, context),
    }
}

/// An exception the job raised: `engine-limit` if it is one of the engine's bounds, else
/// `thrown` with the message and the position of the innermost JavaScript frame.
pub(crate) fn thrown(error: BoaError, context: &mut Context) -> JsError {
    if let Some(engine) = error.as_engine() {
        return JsError::EngineLimit(engine.to_string());
    }
    let value = match error.into_opaque(context) {
        Ok(value) => value,
        Err(error) => return JsError::EngineLimit(error.to_string()),
    };
    let position = stack_position(&value, context);
    JsError::Thrown(Exception { message: display_thrown(&value, context), position })
}

/// The message of an exception as a string, for errors raised while reading the arguments or
/// writing the result.
pub(crate) fn message_of(error: BoaError, context: &mut Context) -> String {
    match error.into_opaque(context) {
        Ok(value) => display_thrown(&value, context),
        Err(error) => error.to_string(),
    }
}

/// `String(error)` for an `Error` (`name: message`), the string for a primitive, the engine's
/// display of any other object. Reading `name` and `message` may run the job's getters; they
/// run in the sandbox like the rest of the job, and if they throw the display is used.
fn display_thrown(value: &JsValue, context: &mut Context) -> String {
    let Some(object) = value.as_object() else {
        return match value.as_string() {
            Some(text) => text.to_std_string_escaped(),
            None => value.display().to_string(),
        };
    };
    if !object.is::<boa_engine::builtins::error::Error>() {
        return value.display().to_string();
    }
    let mut read = |key| -> Option<String> {
        let field = object.get(key, context).ok()?;
        if field.is_undefined() {
            return Some(String::new());
        }
        Some(field.to_string(context).ok()?.to_std_string_escaped())
    };
    let name = read(js_string!("name")).map(|n| if n.is_empty() { "Error".to_string() } else { n });
    let message = read(js_string!("message"));
    match (name, message) {
        (Some(name), Some(message)) if message.is_empty() => name,
        (Some(name), Some(message)) => format!("{name}: {message}"),
        _ => value.display().to_string(),
    }
}

/// The line and column of the innermost frame of the job's code in an `Error`'s `stack`
/// (`    at f (unknown at :2:11)`), corrected for the parenthesis `run` wraps the code in.
fn stack_position(value: &JsValue, context: &mut Context) -> Option<Position> {
    let object = value.as_object()?;
    if !object.is::<boa_engine::builtins::error::Error>() {
        return None;
    }
    let stack = object.get(js_string!("stack"), context).ok()?;
    let stack = stack.as_string()?.to_std_string_escaped();
    stack.lines().filter(|line| !line.contains("(native")).find_map(|line| {
        let inner = line.trim_end().strip_suffix(')')?;
        let mut parts = inner.rsplitn(3, ':');
        let column = parts.next()?.parse().ok()?;
        let line = parts.next()?.parse().ok()?;
        Some(unwrapped(Position { line, column }))
    })
}

/// The position in a parser message (`… at line 1, col 7`).
fn parse_position(message: &str, line_marker: &str, column_marker: &str) -> Option<Position> {
    let after_line = &message[message.rfind(line_marker)? + line_marker.len()..];
    let (line, rest) = after_line.split_once(column_marker)?;
    let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some(unwrapped(Position { line: line.trim().parse().ok()?, column: column.parse().ok()? }))
}

/// `run` evaluates `(` + code + `\n)`: on the first line every column is one too far.
fn unwrapped(position: Position) -> Position {
    if position.line == 1 {
        Position { line: 1, column: position.column.saturating_sub(1).max(1) }
    } else {
        position
    }
}
