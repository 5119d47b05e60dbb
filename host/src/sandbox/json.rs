//! Mapping component values to and from JSON by their WIT types.
//!
//! | WIT | JSON |
//! |---|---|
//! | `bool` | `true`/`false` |
//! | integers | numbers (range-checked) |
//! | `f32`/`f64` | numbers; `"NaN"`, `"Infinity"`, `"-Infinity"` as strings |
//! | `char`, `string` | strings (a char is a one-character string) |
//! | `list<T>`, `tuple<…>` | arrays |
//! | `record` | object keyed by field name (kebab-case, as in WIT) |
//! | `variant` | `{"case": payload}` (`null` payload for a case without one) |
//! | `enum` | the case name as a string |
//! | `option<T>` | `null` for none, else the value; an option inside an option is `{"some": v}` |
//! | `result<T, E>` | `{"ok": v}` or `{"err": e}` (`null` when the side has no type) |
//! | `flags` | array of the set flag names |

use serde_json::{Map, Number, Value as Json, json};
use wasmtime::component::{Type, Val};

/// Converts a value of type `ty` to JSON. One arm per WIT value kind, as the table above: kept
/// in one match (a little over 60 lines) so the mapping reads against the table.
pub(crate) fn to_json(ty: &Type, val: &Val) -> Json {
    match (ty, val) {
        (_, Val::Bool(b)) => Json::Bool(*b),
        (_, Val::S8(n)) => json!(n),
        (_, Val::U8(n)) => json!(n),
        (_, Val::S16(n)) => json!(n),
        (_, Val::U16(n)) => json!(n),
        (_, Val::S32(n)) => json!(n),
        (_, Val::U32(n)) => json!(n),
        (_, Val::S64(n)) => json!(n),
        (_, Val::U64(n)) => json!(n),
        (_, Val::Float32(f)) => float_to_json(f64::from(*f)),
        (_, Val::Float64(f)) => float_to_json(*f),
        (_, Val::Char(c)) => Json::String(c.to_string()),
        (_, Val::String(s)) => Json::String(s.clone()),
        (Type::List(list), Val::List(items)) => {
            let inner = list.ty();
            Json::Array(items.iter().map(|item| to_json(&inner, item)).collect())
        }
        (Type::Record(record), Val::Record(fields)) => {
            let map: Map<String, Json> = record
                .fields()
                .zip(fields)
                .map(|(field, (name, value))| (name.clone(), to_json(&field.ty, value)))
                .collect();
            Json::Object(map)
        }
        (Type::Tuple(tuple), Val::Tuple(items)) => {
            Json::Array(tuple.types().zip(items).map(|(ty, item)| to_json(&ty, item)).collect())
        }
        (Type::Variant(variant), Val::Variant(case, payload)) => {
            let case_ty = variant.cases().find(|c| c.name == case).and_then(|c| c.ty);
            let payload = match (case_ty, payload) {
                (Some(ty), Some(value)) => to_json(&ty, value),
                _ => Json::Null,
            };
            json!({ case.clone(): payload })
        }
        (_, Val::Enum(case)) => Json::String(case.clone()),
        (Type::Option(option), Val::Option(value)) => {
            let inner = option.ty();
            match value {
                None => Json::Null,
                Some(value) if matches!(inner, Type::Option(_)) => json!({ "some": to_json(&inner, value) }),
                Some(value) => to_json(&inner, value),
            }
        }
        (Type::Result(result), Val::Result(value)) => {
            let side = |ty: Option<Type>, value: &Option<Box<Val>>| match (ty, value) {
                (Some(ty), Some(value)) => to_json(&ty, value),
                _ => Json::Null,
            };
            match value {
                Ok(value) => json!({ "ok": side(result.ok(), value) }),
                Err(value) => json!({ "err": side(result.err(), value) }),
            }
        }
        (_, Val::Flags(names)) => Json::Array(names.iter().cloned().map(Json::String).collect()),
        _ => Json::Null,
    }
}

fn float_to_json(f: f64) -> Json {
    match Number::from_f64(f) {
        Some(n) => Json::Number(n),
        None if f.is_nan() => Json::String("NaN".into()),
        None if f > 0.0 => Json::String("Infinity".into()),
        None => Json::String("-Infinity".into()),
    }
}

/// Converts JSON to a value of type `ty`, or says what was expected. One arm per WIT value
/// kind, as the table above (the compound kinds' work is in the functions below it).
pub(crate) fn from_json(ty: &Type, json: &Json) -> Result<Val, String> {
    let expected = || format!("expected {}, got {}", type_name(ty), short(json));
    let int = |min: i128, max: i128| -> Result<i128, String> {
        let n =
            json.as_i64().map(i128::from).or_else(|| json.as_u64().map(i128::from)).ok_or_else(expected)?;
        if n < min || n > max { Err(format!("{n} is out of range for {}", type_name(ty))) } else { Ok(n) }
    };
    Ok(match ty {
        Type::Bool => Val::Bool(json.as_bool().ok_or_else(expected)?),
        Type::S8 => Val::S8(int(i8::MIN.into(), i8::MAX.into())? as i8),
        Type::U8 => Val::U8(int(0, u8::MAX.into())? as u8),
        Type::S16 => Val::S16(int(i16::MIN.into(), i16::MAX.into())? as i16),
        Type::U16 => Val::U16(int(0, u16::MAX.into())? as u16),
        Type::S32 => Val::S32(int(i32::MIN.into(), i32::MAX.into())? as i32),
        Type::U32 => Val::U32(int(0, u32::MAX.into())? as u32),
        Type::S64 => Val::S64(int(i64::MIN.into(), i64::MAX.into())? as i64),
        Type::U64 => Val::U64(int(0, u64::MAX.into())? as u64),
        Type::Float32 => Val::Float32(json_to_float(json).ok_or_else(expected)? as f32),
        Type::Float64 => Val::Float64(json_to_float(json).ok_or_else(expected)?),
        Type::Char => {
            let mut chars = json.as_str().ok_or_else(expected)?.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Val::Char(c),
                _ => return Err(format!("expected a single character, got {}", short(json))),
            }
        }
        Type::String => Val::String(json.as_str().ok_or_else(expected)?.to_string()),
        Type::List(list) => {
            let inner = list.ty();
            let items = json.as_array().ok_or_else(expected)?;
            Val::List(items.iter().map(|item| from_json(&inner, item)).collect::<Result<_, _>>()?)
        }
        Type::Record(record) => record_from_json(ty, record, json.as_object().ok_or_else(expected)?)?,
        Type::Tuple(tuple) => {
            let items = json.as_array().filter(|a| a.len() == tuple.types().len()).ok_or_else(expected)?;
            Val::Tuple(
                tuple.types().zip(items).map(|(ty, item)| from_json(&ty, item)).collect::<Result<_, _>>()?,
            )
        }
        Type::Variant(variant) => {
            let (case, payload) = single_key(json).ok_or_else(expected)?;
            variant_from_json(ty, variant, case, payload)?
        }
        Type::Enum(cases) => {
            let case = json.as_str().ok_or_else(expected)?;
            if !cases.names().any(|n| n == case) {
                return Err(format!("`{case}` is not a case of {}", type_name(ty)));
            }
            Val::Enum(case.to_string())
        }
        Type::Option(option) => option_from_json(&option.ty(), json).ok_or_else(expected)??,
        Type::Result(result) => {
            let (side, value) = single_key(json).ok_or_else(expected)?;
            let convert = |ty: Option<Type>| -> Result<Option<Box<Val>>, String> {
                ty.map(|ty| from_json(&ty, value).map(Box::new)).transpose()
            };
            match side {
                "ok" => Val::Result(Ok(convert(result.ok())?)),
                "err" => Val::Result(Err(convert(result.err())?)),
                _ => return Err(expected()),
            }
        }
        Type::Flags(flags) => {
            let names = json.as_array().ok_or_else(expected)?;
            let names =
                names.iter().map(|name| name.as_str().ok_or_else(expected)).collect::<Result<Vec<_>, _>>()?;
            if let Some(unknown) = names.iter().find(|name| !flags.names().any(|n| n == **name)) {
                return Err(format!("`{unknown}` is not a flag of {}", type_name(ty)));
            }
            Val::Flags(names.into_iter().map(str::to_string).collect())
        }
        _ => return Err(format!("{} values cannot be passed as JSON", type_name(ty))),
    })
}

/// An option of `inner`: `null` is none; an option of an option writes its some as
/// `{"some": ..}`. `None`: the JSON is not of that shape.
fn option_from_json(inner: &Type, json: &Json) -> Option<Result<Val, String>> {
    let value = match json {
        Json::Null => return Some(Ok(Val::Option(None))),
        _ if matches!(inner, Type::Option(_)) => single_key(json).filter(|(k, _)| *k == "some")?.1,
        _ => json,
    };
    Some(from_json(inner, value).map(|v| Val::Option(Some(Box::new(v)))))
}

/// A record from a JSON object: every field by name (a missing one is `null`), no others.
fn record_from_json(
    ty: &Type,
    record: &wasmtime::component::types::Record,
    map: &Map<String, Json>,
) -> Result<Val, String> {
    if let Some(unknown) = map.keys().find(|k| !record.fields().any(|f| f.name == k.as_str())) {
        return Err(format!("unknown field `{unknown}` for {}", type_name(ty)));
    }
    let fields = record
        .fields()
        .map(|field| {
            let value = map.get(field.name).unwrap_or(&Json::Null);
            from_json(&field.ty, value)
                .map(|v| (field.name.to_string(), v))
                .map_err(|e| format!("field `{}`: {e}", field.name))
        })
        .collect::<Result<_, String>>()?;
    Ok(Val::Record(fields))
}

/// A variant's `case` with its JSON `payload` (`null` for a case without one).
fn variant_from_json(
    ty: &Type,
    variant: &wasmtime::component::types::Variant,
    case: &str,
    payload: &Json,
) -> Result<Val, String> {
    let case_ty = variant
        .cases()
        .find(|c| c.name == case)
        .ok_or_else(|| format!("`{case}` is not a case of {}", type_name(ty)))?
        .ty;
    let payload = match case_ty {
        Some(ty) => Some(Box::new(from_json(&ty, payload)?)),
        None => None,
    };
    Ok(Val::Variant(case.to_string(), payload))
}

fn json_to_float(json: &Json) -> Option<f64> {
    match json {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

fn single_key(json: &Json) -> Option<(&str, &Json)> {
    let map = json.as_object()?;
    if map.len() != 1 {
        return None;
    }
    map.iter().next().map(|(k, v)| (k.as_str(), v))
}

fn short(json: &Json) -> String {
    let text = json.to_string();
    if text.len() > 40 { format!("{}…", &text[..text.floor_char_boundary(40)]) } else { text }
}

/// A WIT-like name for a type, for messages.
pub(crate) fn type_name(ty: &Type) -> String {
    match ty {
        Type::Bool => "bool".into(),
        Type::S8 => "s8".into(),
        Type::U8 => "u8".into(),
        Type::S16 => "s16".into(),
        Type::U16 => "u16".into(),
        Type::S32 => "s32".into(),
        Type::U32 => "u32".into(),
        Type::S64 => "s64".into(),
        Type::U64 => "u64".into(),
        Type::Float32 => "f32".into(),
        Type::Float64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::List(list) => format!("list<{}>", type_name(&list.ty())),
        Type::Record(record) => {
            let fields: Vec<String> =
                record.fields().map(|f| format!("{}: {}", f.name, type_name(&f.ty))).collect();
            format!("record {{ {} }}", fields.join(", "))
        }
        Type::Tuple(tuple) => {
            format!("tuple<{}>", tuple.types().map(|t| type_name(&t)).collect::<Vec<_>>().join(", "))
        }
        Type::Variant(variant) => {
            let cases: Vec<String> = variant
                .cases()
                .map(|c| match c.ty {
                    Some(ty) => format!("{}({})", c.name, type_name(&ty)),
                    None => c.name.to_string(),
                })
                .collect();
            format!("variant {{ {} }}", cases.join(", "))
        }
        Type::Enum(cases) => format!("enum {{ {} }}", cases.names().collect::<Vec<_>>().join(", ")),
        Type::Option(option) => format!("option<{}>", type_name(&option.ty())),
        Type::Result(result) => {
            let side = |t: Option<Type>| t.map(|t| type_name(&t)).unwrap_or_else(|| "_".into());
            format!("result<{}, {}>", side(result.ok()), side(result.err()))
        }
        Type::Flags(flags) => format!("flags {{ {} }}", flags.names().collect::<Vec<_>>().join(", ")),
        other => format!("{other:?}"),
    }
}

/// Whether `val` is certainly larger than `limit` bytes when printed: a cheap walk that
/// stops as soon as the running estimate (a lower bound on its WAVE length) passes `limit`.
pub(crate) fn exceeds(val: &Val, limit: usize) -> bool {
    fn walk(val: &Val, budget: &mut usize) -> bool {
        let cost = match val {
            Val::String(s) => s.len() + 2,
            Val::List(items) | Val::Tuple(items) | Val::FixedLengthList(items) => {
                *budget = budget.saturating_sub(2);
                return items.iter().any(|item| walk(item, budget));
            }
            Val::Record(fields) => {
                return fields.iter().any(|(name, value)| {
                    *budget = budget.saturating_sub(name.len() + 2);
                    walk(value, budget)
                });
            }
            Val::Variant(_, Some(value)) | Val::Option(Some(value)) => return walk(value, budget),
            Val::Result(Ok(Some(value)) | Err(Some(value))) => return walk(value, budget),
            Val::Flags(names) => names.iter().map(|n| n.len() + 2).sum(),
            _ => 1,
        };
        if cost > *budget {
            return true;
        }
        *budget -= cost;
        false
    }
    let mut budget = limit;
    walk(val, &mut budget)
}
