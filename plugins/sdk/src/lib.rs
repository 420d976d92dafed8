//! Guest-side SDK for ENF agents.
//!
//! Owns the Rust bindings of the `enf:agent/plugin` world (generated from
//! `wit/agent.wit` by wit-bindgen) and a few JSON-friendly helpers, so an
//! agent crate only implements [`Guest`] and calls [`export_agent!`]:
//!
//! ```ignore
//! struct Echo;
//! impl enf_agent_sdk::Guest for Echo {
//!     fn describe() -> enf_agent_sdk::Descriptor { enf_agent_sdk::descriptor!("echo", "echoes", "{}", "{}") }
//!     fn run(input: String) -> Result<String, String> { Ok(input) }
//! }
//! enf_agent_sdk::export_agent!(Echo);
//! ```
//!
//! Build an agent with `cargo build --release --target wasm32-wasip2`; the
//! resulting `.wasm` is already a component.

wit_bindgen::generate!({
    path: "../../wit",
    world: "plugin",
    pub_export_macro: true,
    export_macro_name: "export_agent",
    default_bindings_module: "enf_agent_sdk",
});

pub use enf::agent::host::{CallError, Level};
pub use enf::agent::inference::{
    Completion, FinishReason, GenerateRequest, GenerateResponse, ImageRef, InferenceError, Message, ModelInfo, Role,
    Sampling,
};
pub use exports::enf::agent::agent::{Descriptor, Guest};

/// Builds a [`Descriptor`] whose version is the agent crate's version.
#[macro_export]
macro_rules! descriptor {
    ($name:expr, $description:expr, $input_schema:expr, $output_schema:expr) => {
        $crate::Descriptor {
            name: ::std::string::String::from($name),
            version: ::std::string::String::from(env!("CARGO_PKG_VERSION")),
            description: ::std::string::String::from($description),
            input_schema: ::std::string::String::from($input_schema),
            output_schema: ::std::string::String::from($output_schema),
        }
    };
}

/// Logging through the host (lines are tagged with node and item there).
pub mod log {
    use super::enf::agent::host::{self, Level};

    /// Logs at debug level.
    pub fn debug(message: &str) {
        host::log(Level::Debug, message);
    }
    /// Logs at info level.
    pub fn info(message: &str) {
        host::log(Level::Info, message);
    }
    /// Logs at warn level.
    pub fn warn(message: &str) {
        host::log(Level::Warn, message);
    }
    /// Logs at error level.
    pub fn error(message: &str) {
        host::log(Level::Error, message);
    }
}

/// Parses the JSON input document handed to `run`.
pub fn parse_input<T: serde::de::DeserializeOwned>(input: &str) -> Result<T, String> {
    serde_json::from_str(input).map_err(|e| format!("input is not the expected JSON: {e}"))
}

/// Serialises an output document for `run` to return.
pub fn to_output<T: serde::Serialize>(output: &T) -> Result<String, String> {
    serde_json::to_string(output).map_err(|e| format!("cannot serialise output: {e}"))
}

/// Calls another graph node (one listed in this node's `calls`) with a JSON
/// value and parses its JSON output.
pub fn call_agent(node: &str, input: &serde_json::Value) -> Result<serde_json::Value, String> {
    let output = enf::agent::host::call_agent(node, &input.to_string()).map_err(|e| match e {
        CallError::NotAllowed(m) => format!("call to `{node}` refused: {m}"),
        CallError::Failed(m) => format!("call to `{node}` failed: {m}"),
    })?;
    serde_json::from_str(&output).map_err(|e| format!("`{node}` returned invalid JSON: {e}"))
}

/// Describes the node's model (`None`) or another model alias it may use.
pub fn model_info(model: Option<&str>) -> Result<ModelInfo, InferenceError> {
    enf::agent::inference::describe_model(model)
}

/// Runs one generation request on the host.
pub fn generate(request: &GenerateRequest) -> Result<GenerateResponse, InferenceError> {
    enf::agent::inference::generate(request)
}

/// Sends a single user message (with optional frames) to the node's model
/// using the model's default sampling and returns the first completion.
pub fn ask(prompt: &str, images: Vec<ImageRef>) -> Result<String, String> {
    let request = GenerateRequest {
        model: None,
        messages: vec![Message { role: Role::User, text: prompt.to_string(), images }],
        sampling: None,
    };
    let response = generate(&request).map_err(describe_inference_error)?;
    response
        .completions
        .into_iter()
        .next()
        .map(|c| c.text)
        .ok_or_else(|| "the model returned no completion".to_string())
}

/// Renders an [`InferenceError`] as one line.
pub fn describe_inference_error(error: InferenceError) -> String {
    match error {
        InferenceError::UnknownModel(m) => format!("unknown model: {m}"),
        InferenceError::InvalidRequest(m) => format!("invalid inference request: {m}"),
        InferenceError::Backend(m) => format!("inference backend failed: {m}"),
    }
}
