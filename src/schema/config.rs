//! Genkit's common generation config and a Gemini-compatible config, as Rust types whose
//! JSON Schema is what JS Genkit shows in the Dev UI.

#![allow(dead_code)] // the types exist for their schemas

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::normalize::normalize;

/// `GenerationCommonConfigSchema`: the options every Genkit model understands.
#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GenerationCommonConfig {
    /// A specific version of a model family, e.g. `gemini-2.5-flash` for the `googleai` family.
    pub version: Option<String>,
    /// Controls the degree of randomness in token selection. A lower value is good for a more predictable response. A higher value leads to more diverse or unexpected results.
    pub temperature: Option<f64>,
    /// The maximum number of tokens to include in the response.
    pub max_output_tokens: Option<f64>,
    /// The maximum number of tokens to consider when sampling.
    pub top_k: Option<f64>,
    /// Decides how many possible words to consider. A higher value means that the model looks at more possible words, even the less likely ones, which makes the generated text more diverse.
    pub top_p: Option<f64>,
    /// Set of character sequences (up to 5) that will stop output generation.
    #[schemars(length(max = 5))]
    pub stop_sequences: Option<Vec<String>>,
    /// API Key to use for the model call, overrides API key provided in plugin config.
    pub api_key: Option<String>,
}

/// Harm categories a Gemini safety setting applies to.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HarmCategory {
    HarmCategoryUnspecified,
    HarmCategoryHateSpeech,
    HarmCategorySexuallyExplicit,
    HarmCategoryHarassment,
    HarmCategoryDangerousContent,
    HarmCategoryCivicIntegrity,
}

/// How strictly content in a category is blocked.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HarmBlockThreshold {
    HarmBlockThresholdUnspecified,
    BlockLowAndAbove,
    BlockMediumAndAbove,
    BlockOnlyHigh,
    BlockNone,
    Off,
}

/// One safety rule.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct SafetySetting {
    pub category: HarmCategory,
    pub threshold: HarmBlockThreshold,
}

/// Whether and how the model may call functions.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FunctionCallingMode {
    ModeUnspecified,
    Auto,
    Any,
    None,
}

/// Constraints on function calling.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FunctionCallingConfig {
    /// AUTO lets the model choose, ANY forces a function call, NONE disables function calls.
    pub mode: Option<FunctionCallingMode>,
    /// With mode ANY, the functions the model may call.
    pub allowed_function_names: Option<Vec<String>>,
}

/// Output kinds a Gemini model can produce.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResponseModality {
    Text,
    Image,
    Audio,
}

/// Thinking (reasoning) options.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThinkingConfig {
    /// Return thought summaries in the response.
    pub include_thoughts: Option<bool>,
    /// Tokens the model may spend thinking; 0 turns thinking off where the model allows it.
    #[schemars(range(min = 0))]
    pub thinking_budget: Option<i64>,
}

/// A Gemini model's config (genkit-google-genai's `GeminiConfigSchema` shape): the common
/// options plus Gemini's own.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GeminiConfig {
    #[serde(flatten)]
    pub common: GenerationCommonConfig,
    /// Adjust how likely you are to see responses that could be harmful. Content is blocked based on the probability that it is harmful.
    #[schemars(extend("x-genkit-ui-widget" = "safety-settings"))]
    pub safety_settings: Option<Vec<SafetySetting>>,
    /// Enables the model to generate and run code.
    pub code_execution: Option<bool>,
    /// Controls how the model uses the provided tools.
    pub function_calling_config: Option<FunctionCallingConfig>,
    /// The modalities to be used in the response.
    pub response_modalities: Option<Vec<ResponseModality>>,
    /// Options for the model's thinking.
    pub thinking_config: Option<ThinkingConfig>,
    /// Retrieve public web data for grounding, powered by Google Search.
    pub google_search_retrieval: Option<bool>,
}

fn schema_of<T: JsonSchema>() -> Value {
    let generator = schemars::generate::SchemaSettings::draft07().into_generator();
    let mut schema = normalize(generator.into_root_schema_for::<T>().to_value());
    // The Rust doc comment of the type is for Rust readers; JS's root has no description.
    if let Value::Object(root) = &mut schema {
        root.shift_remove("description");
    }
    schema
}

/// The Dev UI schema of [`GenerationCommonConfig`].
pub fn common_config_schema() -> Value {
    schema_of::<GenerationCommonConfig>()
}

/// The Dev UI schema of [`GeminiConfig`].
pub fn gemini_config_schema() -> Value {
    schema_of::<GeminiConfig>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn common_config_is_what_js_emits() {
        let schema = common_config_schema();
        let text = serde_json::to_string(&schema).unwrap();
        assert!(text.ends_with(r#""additionalProperties":true,"$schema":"http://json-schema.org/draft-07/schema#"}"#), "{text}");
        let props = schema["properties"].as_object().unwrap();
        let keys: Vec<&str> = props.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "version",
                "temperature",
                "maxOutputTokens",
                "topK",
                "topP",
                "stopSequences",
                "apiKey"
            ]
        );
        assert_eq!(props["temperature"]["type"], "number");
        assert_eq!(
            props["stopSequences"],
            json!({"type": "array", "items": {"type": "string"}, "maxItems": 5,
                   "description": "Set of character sequences (up to 5) that will stop output generation."})
        );
        assert!(schema.get("required").is_none());
        assert!(schema.get("title").is_none());
    }

    #[test]
    fn gemini_config_inlines_its_enums_and_keeps_ui_hints() {
        let schema = gemini_config_schema();
        let props = &schema["properties"];
        assert_eq!(props["temperature"]["type"], "number");
        let safety = &props["safetySettings"];
        assert_eq!(safety["x-genkit-ui-widget"], "safety-settings");
        assert_eq!(safety["items"]["properties"]["threshold"]["type"], "string");
        assert!(
            safety["items"]["properties"]["threshold"]["enum"]
                .as_array()
                .unwrap()
                .contains(&json!("BLOCK_NONE"))
        );
        assert_eq!(
            safety["items"]["required"],
            json!(["category", "threshold"])
        );
        assert_eq!(
            props["thinkingConfig"]["properties"]["thinkingBudget"],
            json!({"type": "integer", "minimum": 0, "description": "Tokens the model may spend thinking; 0 turns thinking off where the model allows it."})
        );
        assert!(schema.get("definitions").is_none() && schema.get("$defs").is_none());
    }
}
