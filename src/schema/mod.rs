//! Model config schemas for the Genkit Dev UI.
//!
//! The Dev UI renders a model's config form from `metadata.model.customOptions`, a JSON
//! Schema in the draft-07 form JS Genkit emits (`zod-to-json-schema`): no titles, objects
//! with `additionalProperties`, `$schema` on the root only and last. [`config`] defines
//! Genkit's common generation config and a Gemini-compatible one in Rust (schemars);
//! [`normalize`] turns any JSON Schema (schemars', or a Pydantic model's) into that form.

pub mod config;
pub mod normalize;
pub mod py;
