//! Host-side bindings of the `enf:agent/plugin` world, generated from
//! `wit/agent.wit` by wasmtime's `bindgen!`. Imports are async (inference
//! and node calls wait on the host) and trappable (the host may end a call
//! that abuses an import).
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    imports: { default: async | trappable },
    exports: { default: async },
});

pub use self::enf::agent::{host, inference};
pub use self::exports::enf::agent::agent::Descriptor;
