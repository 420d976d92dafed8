"""Unit tests of the Python agents' shared logic (enf_kit), run natively by
the host's CPython: ``python3 -m unittest discover -s plugins/python/tests``
(the engine's test suite runs them too, tests/python_agents.rs).

The parser and the Reason prompt are checked against the same recorded cases
as the Rust crate plugins/enf-kit, so both agents read every malformed output
and build every prompt alike."""

import json
import pathlib
import sys
import unittest

PYTHON_DIR = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PYTHON_DIR))

from enf_kit import clip, trim  # noqa: E402
from enf_kit.answer import split  # noqa: E402
from enf_kit.reason import judge  # noqa: E402
from enf_kit.task import Task  # noqa: E402
from enf_kit.verdict import parse  # noqa: E402

ENF_KIT = PYTHON_DIR.parent / "enf-kit"


def load(name):
    with open(ENF_KIT / name, encoding="utf-8") as f:
        return json.load(f)


class SharedCases(unittest.TestCase):
    def test_every_verdict_case_parses_as_the_rust_parser_does(self):
        cases = load("verdict-cases.json")
        self.assertGreaterEqual(len(cases), 30)
        for case in cases:
            with self.subTest(output=case["output"]):
                self.assertEqual(parse(case["output"], Task.default()).to_json(), case["verdict"])

    def test_every_prompt_case_is_built_as_the_rust_agent_builds_it(self):
        for case in load("reason-prompt-cases.json"):
            doc = case["input"]
            with self.subTest(input=doc):
                task = Task.from_value(doc.get("task"))
                prompt = judge(doc.get("user"), doc.get("profile"), doc.get("video"), doc.get("candidate"), task)
                self.assertEqual(prompt, case["prompt"])


class Answer(unittest.TestCase):
    def test_well_formed_output_splits_cleanly(self):
        a = split("<think>The user skips gore.</think><answer>negative: 3</answer>")
        self.assertEqual((a.think, a.answer), ("The user skips gore.", "negative: 3"))
        self.assertTrue(a.well_formed(), a.notes)

    def test_missing_closing_tags_run_to_the_next_tag_or_the_end(self):
        a = split("<think>loves cars <answer>like")
        self.assertEqual((a.think, a.answer), ("loves cars", "like"))
        self.assertIn("unclosed <think>", a.notes)
        self.assertIn("unclosed <answer>", a.notes)

    def test_non_ascii_text_outside_the_tags_is_counted_in_bytes(self):
        # Three CJK characters are 9 bytes: over the 2-byte allowance, as in Rust.
        self.assertIn("text outside the tags", split("<think>x</think><answer>like</answer>画面令").notes)
        self.assertNotIn("text outside the tags", split("<think>x</think><answer>like</answer>é").notes)


class Verdict(unittest.TestCase):
    def test_a_number_after_multibyte_text_does_not_split_a_character(self):
        v = parse("<think>日本語日本語2</think><answer>negative 日本語日本語3</answer>", Task.default())
        self.assertEqual((v.attitude, v.reason_class), ("negative", 3))

    def test_a_huge_number_is_not_a_class(self):
        v = parse("<think>x</think><answer>negative: " + "9" * 5000 + "</answer>", Task.default())
        self.assertEqual(v.reason_class, None)
        self.assertIn("no reason class found", v.notes)

    def test_a_custom_task_supplies_the_classes(self):
        task = Task.from_value(
            {"negative_play_rate": 0.5, "classes": [{"id": 7, "name": "too-loud", "description": "noise"}]}
        )
        self.assertEqual(parse("<think>x</think><answer>negative: 7</answer>", task).reason_class, 7)


class TaskAndHelpers(unittest.TestCase):
    def test_a_malformed_task_falls_back_to_the_defaults(self):
        for value in [None, 5, {}, {"negative_play_rate": "x", "classes": []}, {"negative_play_rate": 0.3, "classes": [{"id": 1}]}]:
            with self.subTest(value=value):
                self.assertEqual(Task.from_value(value), Task.default())

    def test_the_class_menu_lists_id_name_and_description(self):
        self.assertIn("2. boring: the content lacks appeal", Task.default().class_menu())

    def test_clip_counts_characters(self):
        self.assertEqual(clip("héllo", 2), "hé…")
        self.assertEqual(clip("hi", 5), "hi")

    def test_trim_is_rusts(self):
        self.assertEqual(trim("\u3000x\u3000"), "x")
        self.assertEqual(trim("\x1fx"), "\x1fx")


if __name__ == "__main__":
    unittest.main()
