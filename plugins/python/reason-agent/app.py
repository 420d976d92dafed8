"""The Reason agent in Python — a port of ``plugins/reason-agent`` that can
replace it in a graph by changing only the node's ``plugin`` path.

From the user, the refined profile and the video analysis it judges four
dimensions — interest match, plot appeal, negative events or extreme
opinions, visual tolerance — and predicts like vs. negative feedback, the
reason class and the reason, in ``<think>…</think><answer>…</answer>`` form,
parsed tolerantly. Same prompt and same parsing as the Rust agent.
"""

import enf_agent
from enf_kit import reason, verdict
from enf_kit.task import Task


class Agent(enf_agent.JsonAgent):
    NAME = "reason-agent"
    VERSION = "0.1.0"
    DESCRIPTION = "Predicts like vs. negative feedback with its reason class and reason"
    INPUT_SCHEMA = (
        '{"type":"object","properties":{"user":{"type":"object"},"profile":{"type":"object"},'
        '"video":{"type":"object"},"candidate":{"type":"object"},"task":{"type":"object"}}}'
    )
    OUTPUT_SCHEMA = '{"type":"object","properties":{"verdict":{"type":"object"},"raw":{"type":"string"}}}'

    def handle(self, input):
        if not isinstance(input, dict):
            raise enf_agent.AgentError("input is not the expected JSON: expected an object")
        task = Task.from_value(input.get("task"))
        prompt = reason.judge(
            input.get("user"), input.get("profile"), input.get("video"), input.get("candidate"), task
        )
        raw = enf_agent.ask(prompt)
        return {"verdict": verdict.parse(raw, task).to_json(), "raw": raw}
