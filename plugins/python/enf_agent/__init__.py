"""Guest-side SDK for ENF agents written in Python.

The Python twin of the Rust crate ``plugins/sdk``: it wraps the bindings of
the ``enf:agent/plugin`` world (``wit/agent.wit``), which componentize-py
generates into the ``wit_world`` package when it builds an agent, and gives
the same helpers — :func:`ask`, :func:`generate`, :func:`call_agent`,
:func:`describe_model`, :mod:`log <enf_agent>` functions and JSON in/out.

An agent is a module named ``app`` with a class ``Agent``::

    import enf_agent

    class Agent(enf_agent.JsonAgent):
        NAME = "echo"
        DESCRIPTION = "echoes its input"

        def handle(self, input):
            return {"echo": input}

built with ``plugins/python/build.sh AGENT_DIR OUT.wasm``.
:class:`JsonAgent` parses the input document, calls :meth:`JsonAgent.handle`
and serialises what it returns; an :class:`AgentError` becomes the item's
error message, and any other exception its traceback.
"""

import json
import traceback
from typing import Any, Iterable, Optional

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.agent import Descriptor
from wit_world.imports import host, inference
from wit_world.imports.host import CallError_Failed, CallError_NotAllowed, Level
from wit_world.imports.inference import (
    Completion,
    FinishReason,
    GenerateRequest,
    GenerateResponse,
    ImageRef,
    InferenceError,
    InferenceError_Backend,
    InferenceError_InvalidRequest,
    InferenceError_UnknownModel,
    Message,
    ModelInfo,
    Role,
    Sampling,
)

__all__ = [
    "AgentError",
    "Completion",
    "Descriptor",
    "FinishReason",
    "GenerateRequest",
    "GenerateResponse",
    "ImageRef",
    "JsonAgent",
    "Level",
    "Message",
    "ModelInfo",
    "Role",
    "Sampling",
    "ask",
    "call_agent",
    "debug",
    "describe_inference_error",
    "describe_model",
    "error",
    "generate",
    "info",
    "parse_input",
    "to_output",
    "warn",
]


class AgentError(Exception):
    """An error that fails this item's node with its message (no traceback)."""


# Logging through the host (lines are tagged with node and item there).


def debug(message: str) -> None:
    """Logs at debug level."""
    host.log(Level.DEBUG, message)


def info(message: str) -> None:
    """Logs at info level."""
    host.log(Level.INFO, message)


def warn(message: str) -> None:
    """Logs at warn level."""
    host.log(Level.WARN, message)


def error(message: str) -> None:
    """Logs at error level."""
    host.log(Level.ERROR, message)


def parse_input(text: str) -> Any:
    """Parses the JSON input document handed to ``run``."""
    try:
        return json.loads(text)
    except ValueError as e:
        raise AgentError(f"input is not the expected JSON: {e}") from None


def to_output(value: Any) -> str:
    """Serialises an output document for ``run`` to return."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError) as e:
        raise AgentError(f"cannot serialise output: {e}") from None


def describe_inference_error(failure: InferenceError) -> str:
    """Renders an inference error as one line (the Rust SDK's wording)."""
    if isinstance(failure, InferenceError_UnknownModel):
        return f"unknown model: {failure.value}"
    if isinstance(failure, InferenceError_InvalidRequest):
        return f"invalid inference request: {failure.value}"
    if isinstance(failure, InferenceError_Backend):
        return f"inference backend failed: {failure.value}"
    return f"inference failed: {failure!r}"


def generate(request: GenerateRequest) -> GenerateResponse:
    """Runs one generation request on the host; failures raise :class:`AgentError`."""
    try:
        return inference.generate(request)
    except Err as e:
        raise AgentError(describe_inference_error(e.value)) from None


def describe_model(model: Optional[str] = None) -> ModelInfo:
    """Describes the node's model (``None``) or another model alias it may use."""
    try:
        return inference.describe_model(model)
    except Err as e:
        raise AgentError(describe_inference_error(e.value)) from None


def ask(prompt: str, images: Iterable[ImageRef] = ()) -> str:
    """Sends a single user message (with optional frames) to the node's model
    using the model's default sampling and returns the first completion."""
    request = GenerateRequest(
        model=None,
        messages=[Message(role=Role.USER, text=prompt, images=list(images))],
        sampling=None,
    )
    response = generate(request)
    if not response.completions:
        raise AgentError("the model returned no completion")
    return response.completions[0].text


def call_agent(node: str, input: Any) -> Any:
    """Calls another graph node (one listed in this node's ``calls``) with a
    JSON value and parses its JSON output."""
    try:
        output = host.call_agent(node, json.dumps(input, ensure_ascii=False))
    except Err as e:
        if isinstance(e.value, CallError_NotAllowed):
            raise AgentError(f"call to `{node}` refused: {e.value.value}") from None
        if isinstance(e.value, CallError_Failed):
            raise AgentError(f"call to `{node}` failed: {e.value.value}") from None
        raise
    try:
        return json.loads(output)
    except ValueError as e:
        raise AgentError(f"`{node}` returned invalid JSON: {e}") from None


def _schema(schema: Any) -> str:
    return schema if isinstance(schema, str) else json.dumps(schema)


class JsonAgent(exports.Agent):
    """Base class of a Python agent: set the descriptor's class attributes and
    implement :meth:`handle` on the parsed input document."""

    NAME: str = "python-agent"
    """Short machine name, e.g. ``reason-agent``."""
    VERSION: str = "0.1.0"
    """The agent's own version (not the contract's)."""
    DESCRIPTION: str = ""
    """One line for humans."""
    INPUT_SCHEMA: Any = {"type": "object"}
    """JSON Schema of the input document (a dict or its JSON text)."""
    OUTPUT_SCHEMA: Any = {"type": "object"}
    """JSON Schema of the output document; the host checks ``node.field``
    references in graph files against its top-level ``properties``."""

    def describe(self) -> Descriptor:
        return Descriptor(
            name=self.NAME,
            version=self.VERSION,
            description=self.DESCRIPTION,
            input_schema=_schema(self.INPUT_SCHEMA),
            output_schema=_schema(self.OUTPUT_SCHEMA),
        )

    def handle(self, input: Any) -> Any:
        """Runs the agent on one parsed input document; returns the output value."""
        raise AgentError(f"{self.NAME} does not implement handle()")

    def run(self, input: str) -> str:
        try:
            return to_output(self.handle(parse_input(input)))
        except AgentError as e:
            raise Err(str(e)) from None
        except Err:
            raise
        except Exception:
            raise Err(traceback.format_exc().strip()) from None
