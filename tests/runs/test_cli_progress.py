"""run_workflow's progress lines name their step and map item (issue 22): steps may run side by side."""
from runs.management.commands.run_workflow import progress_line


def test_a_plain_step_reads_as_before():
    assert progress_line({"type": "step.started", "index": 0, "step_count": 3, "output_key": "outline",
                          "payload": "outline"}) == "[1/3] outline (outline) ..."


def test_an_items_lines_name_the_step_and_the_item():
    started = progress_line({"type": "step.started", "index": 2, "step_count": 3, "output_key": "checked",
                             "payload": "check", "item": 4, "item_count": 20})
    assert started == "[3/3] checked item 4/20 (check) ..."
    done = progress_line({"type": "step.completed", "index": 2, "output_key": "checked", "item": 4,
                          "completion_tokens": 12, "latency_ms": 300})
    assert done == "[3] checked item 4 done: 12 tokens, 300 ms"
    failed = progress_line({"type": "step.failed", "index": 2, "output_key": "checked", "item": 5, "error": "HTTP 500"})
    assert failed == "[3] checked item 5 failed: HTTP 500"


def test_a_skipped_step_says_so_with_its_default():
    assert progress_line({"type": "step.skipped", "index": 1, "output_key": "translated", "output": "(English)"}) == (
        "[2] translated skipped (its condition was false): output '(English)'")
    assert progress_line({"type": "step.delta", "index": 1, "text": "x"}) == ""
    assert progress_line({"type": "run.started", "status": "running"}) == ""
