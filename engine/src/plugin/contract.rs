//! Which versions of the `enf:agent` contract this host accepts, and the
//! check that a component implements the agent world at all — made before
//! instantiation, so a wrong component is refused with a message that says
//! what it is and what the host expects.

use wasmtime::Engine;
use wasmtime::component::Component;

/// The contract version this host implements (`package enf:agent@…` in `wit/agent.wit`).
pub const CONTRACT_VERSION: &str = "0.1.0";

/// The interface every agent exports, without version.
pub const AGENT_EXPORT: &str = "enf:agent/agent";

/// Human-readable range of accepted contract versions.
pub fn supported_versions() -> String {
    let version = semver::Version::parse(CONTRACT_VERSION).expect("CONTRACT_VERSION is valid semver");
    if version.major == 0 {
        format!("enf:agent@0.{}.x", version.minor)
    } else {
        format!("enf:agent@{}.x", version.major)
    }
}

/// Whether a component built against `version` can run on this host
/// (semver: same major, and for 0.x the same minor).
pub fn is_compatible(version: &semver::Version) -> bool {
    let ours = semver::Version::parse(CONTRACT_VERSION).expect("CONTRACT_VERSION is valid semver");
    version.major == ours.major && (ours.major != 0 || version.minor == ours.minor)
}

/// What is wrong with a file offered as an agent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    /// Not WebAssembly at all.
    #[error("is not a WebAssembly file")]
    NotWasm,
    /// A core module rather than a component.
    #[error("is a core WebAssembly module, not a component (build it with `--target wasm32-wasip2`)")]
    CoreModule,
    /// A component that does not export the agent interface.
    #[error("does not implement the agent world: it exports [{exports}], but an agent exports {AGENT_EXPORT}@… ({supported})", supported = supported_versions())]
    NotAnAgent {
        /// What it does export.
        exports: String,
    },
    /// Built against an incompatible contract version.
    #[error("was built against enf:agent@{found}; this host supports {supported}", supported = supported_versions())]
    IncompatibleVersion {
        /// The version it was built against.
        found: String,
    },
}

/// Classifies raw bytes before compiling them.
pub fn check_binary(bytes: &[u8]) -> Result<(), ContractError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(ContractError::NotWasm);
    }
    // Core modules have version 1, layer 0; components have layer 1.
    if bytes[6..8] == [0, 0] {
        return Err(ContractError::CoreModule);
    }
    Ok(())
}

/// Checks that a compiled component exports a compatible agent interface.
pub fn check_exports(engine: &Engine, component: &Component) -> Result<(), ContractError> {
    let exports: Vec<String> = component.component_type().exports(engine).map(|(name, _)| name.to_string()).collect();
    let agent = exports.iter().find_map(|name| {
        let (interface, version) = name.split_once('@')?;
        (interface == AGENT_EXPORT).then_some(version)
    });
    match agent {
        None => Err(ContractError::NotAnAgent { exports: exports.join(", ") }),
        Some(version) => match semver::Version::parse(version) {
            Ok(parsed) if is_compatible(&parsed) => Ok(()),
            _ => Err(ContractError::IncompatibleVersion { found: version.to_string() }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_minor_is_compatible_for_zero_major() {
        assert!(is_compatible(&semver::Version::parse("0.1.0").unwrap()));
        assert!(is_compatible(&semver::Version::parse("0.1.7").unwrap()));
        assert!(!is_compatible(&semver::Version::parse("0.2.0").unwrap()));
        assert!(!is_compatible(&semver::Version::parse("9.0.0").unwrap()));
    }

    #[test]
    fn classifies_non_components() {
        assert_eq!(check_binary(b"hello world"), Err(ContractError::NotWasm));
        assert_eq!(check_binary(b"\0asm\x01\0\0\0"), Err(ContractError::CoreModule));
        assert_eq!(check_binary(b"\0asm\x0d\0\x01\0"), Ok(()));
    }

    #[test]
    fn version_error_names_both_versions() {
        let text = ContractError::IncompatibleVersion { found: "9.0.0".into() }.to_string();
        assert!(text.contains("enf:agent@9.0.0") && text.contains("enf:agent@0.1.x"), "{text}");
    }
}
