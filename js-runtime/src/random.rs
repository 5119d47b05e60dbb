//! `Math.random`, deterministic per job: a SplitMix64 generator seeded, at its first use in a
//! call, from the host's `random-u64` (which the sandbox seeds from the component and the
//! call). A job that never calls `Math.random` never pays for the host call.

use std::cell::Cell;

use boa_engine::{Context, JsResult, JsValue, NativeFunction, js_string};

use crate::cue::job::host::random_u64;

thread_local! {
    /// The generator's state; `None` until the call's first `Math.random`.
    static STATE: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Replaces `Math.random` and forgets any state of a previous call.
pub(crate) fn install(context: &mut Context) -> JsResult<()> {
    STATE.set(None);
    let math = context.global_object().get(js_string!("Math"), context)?;
    let math = math.as_object().expect("Math is an object before any job code runs");
    let random =
        boa_engine::object::FunctionObjectBuilder::new(context.realm(), NativeFunction::from_fn_ptr(random))
            .name(js_string!("random"))
            .length(0)
            .build();
    math.define_property_or_throw(
        js_string!("random"),
        boa_engine::property::PropertyDescriptor::builder()
            .value(random)
            .writable(true)
            .enumerable(false)
            .configurable(true),
        context,
    )?;
    Ok(())
}

fn random(_: &JsValue, _: &[JsValue], _: &mut Context) -> JsResult<JsValue> {
    let state = STATE.get().unwrap_or_else(random_u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    STATE.set(Some(state));
    let mut z = state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    // The top 53 bits as a fraction in [0, 1), as every engine does.
    Ok(JsValue::from((z >> 11) as f64 / (1u64 << 53) as f64))
}
