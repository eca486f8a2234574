//! Editing the plugin's saved state as a DAW project would hold it. nice-plug's CLAP state
//! stream is an 8-byte little-endian length followed by its JSON `PluginState`; the reference
//! timbres live in the persisted fields `timbre-a` and `timbre-b`, their clips' audio in
//! `clip-a` and `clip-b`.

use serde_json::Value;
use timbreswap_engine::{Slot, TimbreDescriptor};

/// Why a state could not be edited.
#[derive(Debug, thiserror::Error)]
pub enum StateEditError {
    /// Not JSON.
    #[error("the plugin state is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Not a length-prefixed state stream.
    #[error("the plugin state does not start with its length")]
    Length,
    /// JSON without the `fields` object.
    #[error("the plugin state has no `fields` object")]
    NoFields,
}

/// Persisted-field key of a slot.
pub fn field_key(slot: Slot) -> &'static str {
    match slot {
        Slot::A => "timbre-a",
        Slot::B => "timbre-b",
    }
}

/// The JSON value of a length-prefixed state stream.
fn state_json(state: &[u8]) -> Result<Value, StateEditError> {
    match state.split_first_chunk::<8>() {
        Some((len, json)) if u64::from_le_bytes(*len) == json.len() as u64 => {
            Ok(serde_json::from_slice(json)?)
        }
        _ => Err(StateEditError::Length),
    }
}

/// The timbre `state` holds in `slot` (`None`: empty or absent).
pub fn timbre(state: &[u8], slot: Slot) -> Result<Option<TimbreDescriptor>, StateEditError> {
    let value = state_json(state)?;
    let fields = value
        .get("fields")
        .and_then(Value::as_object)
        .ok_or(StateEditError::NoFields)?;
    match fields.get(field_key(slot)).and_then(Value::as_str) {
        Some(raw) => Ok(serde_json::from_str(raw)?),
        None => Ok(None),
    }
}

/// Returns `state` with the persisted field of `slot` replaced by the raw string `raw` (the
/// JSON text nice-plug stores for the field; may be deliberately broken in tests).
pub fn with_raw_field(state: &[u8], slot: Slot, raw: &str) -> Result<Vec<u8>, StateEditError> {
    with_field(state, field_key(slot), raw)
}

/// Returns `state` with persisted field `key` replaced by the raw string `raw`.
pub fn with_field(state: &[u8], key: &str, raw: &str) -> Result<Vec<u8>, StateEditError> {
    let mut value = state_json(state)?;
    let fields = value
        .get_mut("fields")
        .and_then(Value::as_object_mut)
        .ok_or(StateEditError::NoFields)?;
    fields.insert(key.to_owned(), Value::String(raw.to_owned()));
    let json = serde_json::to_vec(&value)?;
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    Ok(out)
}

/// The raw JSON text of persisted field `key` in `state` (`None` if absent).
pub fn raw_field(state: &[u8], key: &str) -> Result<Option<String>, StateEditError> {
    let value = state_json(state)?;
    let fields = value
        .get("fields")
        .and_then(Value::as_object)
        .ok_or(StateEditError::NoFields)?;
    Ok(fields.get(key).and_then(Value::as_str).map(str::to_owned))
}

/// Returns `state` without persisted field `key`, as a project saved before the field existed.
pub fn without_field(state: &[u8], key: &str) -> Result<Vec<u8>, StateEditError> {
    let mut value = state_json(state)?;
    value
        .get_mut("fields")
        .and_then(Value::as_object_mut)
        .ok_or(StateEditError::NoFields)?
        .remove(key);
    let json = serde_json::to_vec(&value)?;
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    Ok(out)
}

/// Returns `state` with `slot` holding `timbre` (or empty).
pub fn with_timbre(
    state: &[u8],
    slot: Slot,
    timbre: Option<&TimbreDescriptor>,
) -> Result<Vec<u8>, StateEditError> {
    with_raw_field(state, slot, &serde_json::to_string(&timbre)?)
}
