#!/usr/bin/env python3
"""What the Reason prompt of the training demonstration allows: a hand rule
that sees exactly what the prompt shows — the candidate's title and length
and the history digest's profile lines — and predicts negative when the title
carries a reason class's words (or the video runs 20 minutes or more: a cue for
boredom) and the profile line for that class says "low" (or, for boredom,
names the class). Its figures are the ceiling a model reading
that prompt can reach on a data set without guessing (the oracle's ceiling
uses the hidden traits as well). Then, for the items whose title names no
class, what S-GRPO's reward pays for answering `like` against guessing a
negative.

    python3 benches/demo_prompt_rule.py PREDICTIONS.jsonl DATA_DIR

PREDICTIONS is any `enf run` over DATA_DIR of a graph with the demo's
`profile` node (examples/train/demo-graph.toml: its records carry the
digest). The words are the task's
keywords plus the demo graph's extra ones.
"""
import json
import sys

KEYWORDS = {
    1: "negative vulgar values offensive violent scandal conflict controvers hateful brawl insult".split(),
    2: "boring dull interest appeal slow repetitive uninteresting".split()
    + ["hours of", "nothing happens", "rulebook", "uncut"],
    3: "disturbing visual graphic gore blood uncomfortable gross scary gory injury surgery".split(),
}
FIELD = {1: "negativity_tolerance", 2: "bored_by", 3: "sensory_tolerance"}
# A length that reads as dull on a short-video feed.
LONG_S = 20 * 60
# S-GRPO's ladder (docs/training.md): attitude right, then class right.
JUDGE, CLASS = 0.5, 1.0


def main(predictions, data):
    titles, long = {}, set()
    for line in open(f"{data}/videos.jsonl"):
        video = json.loads(line)
        titles[video["video_id"]] = (video.get("title") or "").lower()
        if (video.get("duration_s") or 0) >= LONG_S:
            long.add(video["video_id"])
    truth = {}
    for line in open(f"{data}/interactions.jsonl"):
        i = json.loads(line)
        truth[(i["user_id"], i["video_id"])] = (i["play_rate"] < 0.3 or i["disliked"], i.get("reason_class"))
    tp = fp = fn = tn = classes_right = negatives = 0
    shown = {"cue and low tolerance": 0, "cue, tolerance not shown low": 0, "no cue": 0}
    # Items whose title and length show no class but whose profile shows a low
    # tolerance: what answering `like` earns against the best guess of a
    # negative (S-GRPO's ladder without the format step: attitude right 0.5,
    # class right 1.0 more), the guess's class picked by an oracle among the
    # low ones — an upper bound for any guessing rule.
    vague = {"items": 0, "like": 0.0, "guess": 0.0}
    for line in open(predictions):
        record = json.loads(line)
        profile = record["nodes"]["profile"]["output"]["profile"]
        title = titles[record["video_id"]]
        cls = next((c for c in (1, 2, 3) if any(w in title for w in KEYWORDS[c])), None)
        if record["video_id"] in long:
            cls = 2
        # The classes whose profile line shows a low tolerance.
        low = [c for c in (1, 2, 3) if profile[FIELD[c]].startswith(("low", "boring"))]
        predicted = cls in low
        negative, true_class = truth[(record["user_id"], record["video_id"])]
        if cls is None and low:
            vague["items"] += 1
            vague["like"] += JUDGE * (not negative)
            vague["guess"] += (JUDGE + CLASS * (true_class in low)) if negative else 0.0
        tp += predicted and negative
        fp += predicted and not negative
        fn += negative and not predicted
        tn += not predicted and not negative
        if negative:
            negatives += 1
            classes_right += predicted and cls == true_class
            shown["no cue" if cls is None else "cue and low tolerance" if predicted else "cue, tolerance not shown low"] += 1
    precision = tp / max(1, tp + fp)
    recall = tp / max(1, tp + fn)
    f1 = 2 * precision * recall / max(1e-9, precision + recall)
    print(f"prompt rule over {tp + fp + fn + tn} items: Acc {(tp + tn) / (tp + fp + fn + tn):.3f} "
          f"P {precision:.3f} R {recall:.3f} F1 {f1:.3f} Class_Acc {classes_right / max(1, negatives):.3f} (n={negatives})")
    # What the prompt shows of the negatives: only the first kind can be told
    # from the prompt without guessing, which bounds Recall and Class_Acc.
    print("negatives by what the prompt shows: " + ", ".join(f"{k} {v}" for k, v in shown.items()))
    print(f"highest Recall / Class_Acc without guessing: {shown['cue and low tolerance'] / max(1, negatives):.3f}")
    n = max(1, vague["items"])
    print(f"no cue, low tolerance shown ({vague['items']} items), mean reward beyond format: "
          f"answering like {vague['like'] / n:.3f}, best guess of a negative {vague['guess'] / n:.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
