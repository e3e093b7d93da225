"""The Workflow Builder edits a step's control flow (issue 22) and draws the derived graph: rows by
level, edges from what each step waits for, badges for conditions and maps, and each problem or
warning marked on the node that has it."""
import re

import pytest

from tests.factories import make_block, make_payload
from workflows.diagram import flow_diagram
from workflows.models import Workflow

pytestmark = pytest.mark.django_db


@pytest.fixture
def fan(chain):
    """Two steps that read only the inputs, a third that reads both, and a map over the first."""
    endpoint = chain["endpoint"]
    outline, summary = chain["payloads"]
    both = make_payload("both", endpoint, [("user", make_block("both-task", "{{ outline }} and {{ angle }}"))])
    angle = make_payload("angle", endpoint, [("user", make_block("angle-task", "An angle on {{ topic }}."))])
    check = make_payload("check", endpoint, [("user", make_block("check-task", "Check {{ line }}."))])
    return {"payloads": {"outline": outline, "angle": angle, "both": both, "check": check, "summary": summary}}


def _form(fan, steps, **overrides):
    """Page fields for `steps`: (output name, payload name, {flow field: posted value})."""
    data = {"name": "fanned", "description": "", "workflow_id": "", "max_parallel": "3",
            "input_name": ["topic", "audience"], "input_default": ["", "everyone"], "input_description": ["", ""],
            "step_payload": [], "step_output": [], "step_when": [], "step_default": [], "step_for_each": [],
            "step_as": [], "step_max_parallel": [], "step_on_error": []}
    for output_key, payload, flow in steps:
        data["step_payload"].append(str(fan["payloads"][payload].pk))
        data["step_output"].append(output_key)
        for name in ("when", "default", "for_each", "as", "max_parallel", "on_error"):
            data[f"step_{name}"].append(flow.get(name, ""))
    data.update(overrides)
    return data


FANNED = [("outline", "outline", {}), ("angle", "angle", {"when": 'audience != "nobody"'}),
          ("both", "both", {"default": "-"}),
          ("checked", "check", {"for_each": "outline", "as": "line", "max_parallel": "2", "on_error": "skip"})]


def test_the_builder_saves_and_shows_the_flow_fields(user_client, fan):
    response = user_client.post("/workflows/new/", _form(fan, FANNED))
    assert response.status_code == 302, response.content.decode()[:2000]
    workflow = Workflow.objects.get(name="fanned")
    assert workflow.max_parallel == 3
    steps = {s.output_key: s for s in workflow.steps.all()}
    assert steps["angle"].when == 'audience != "nobody"'
    assert (steps["checked"].for_each, steps["checked"].item_as, steps["checked"].max_parallel,
            steps["checked"].on_error) == ("outline", "line", 2, "skip")
    assert (steps["outline"].item_as, steps["outline"].on_error, steps["outline"].max_parallel) == ("item", "fail", None)
    page = user_client.get(f"/workflows/{workflow.pk}/").content.decode()
    assert 'name="max_parallel" value="3"' in page
    assert 'value="audience != &quot;nobody&quot;"' in page and 'name="step_as" id="step-as-4" value="line"' in page
    # A row whose flow is set opens its Flow disclosure; a plain one stays closed.
    flows = re.findall(r'<details class="step-flow" data-step-flow( open)?>', page)
    assert flows == ["", " open", " open", " open", ""]  # the last: the new-row template


@pytest.mark.parametrize(("field", "value", "message"), [
    ("step_on_error", "retry", "Flow, on error"), ("step_max_parallel", "0", "Flow, items at once"),
    ("step_max_parallel", "x", "Flow, items at once"), ("step_as", "two words", "Flow, as")])
def test_a_bad_flow_value_is_shown_at_its_step_and_nothing_is_saved(user_client, fan, field, value, message):
    data = _form(fan, FANNED)
    data[field] = [*data[field][:3], value]
    response = user_client.post("/workflows/new/", data)
    assert response.status_code == 400
    step_four = response.content.decode().split('id="step-problems-4"')[1].split("</ul>")[0]
    assert message in step_four
    assert not Workflow.objects.filter(name="fanned").exists()


def test_the_check_draws_rows_by_level_with_edges_from_needs_and_badges(user_client, fan):
    html = user_client.post("/workflows/check/", _form(fan, FANNED)).content.decode()
    assert 'data-ready="true"' in html
    levels = dict(re.findall(r'class="graph-node" data-step="(\d)" data-level="(\d)"', html))
    assert levels == {"1": "0", "2": "0", "3": "1", "4": "1"}  # outline and angle side by side
    edges = set(re.findall(r'class="graph-edge" data-kind="(\w+)" data-from="(\d)" data-to="(\d)"', html))
    assert edges == {("data", "1", "3"), ("data", "2", "3"), ("map", "1", "4"), ("input", "0", "1"),
                     ("input", "0", "2")}
    assert 'data-kind="when"><title>Runs only when audience != &quot;nobody&quot;</title>' in html
    assert "Once for each line in outline" in html
    assert "Steps in one row run side by side, up to 3 at once." in html
    assert '<span class="flow-from">the list item</span>' in html


def test_a_problem_and_a_warning_are_marked_on_their_nodes(user_client, fan):
    steps = [("outline", "outline", {"when": "topic"}),  # may be skipped, no default: step 2 is warned
             ("angle", "angle", {}), ("both", "both", {}),
             ("checked", "check", {"for_each": "nowhere"})]
    html = user_client.post("/workflows/check/", _form(fan, steps)).content.decode()
    states = dict(re.findall(r'class="graph-node" data-step="(\d)" data-level="\d" data-state="(\w+)"', html))
    assert states == {"1": "ok", "2": "ok", "3": "warning", "4": "problem"}
    assert "Flow, for_each" not in html  # the for_each message names the field itself
    assert "for_each reads &#x27;nowhere&#x27;" in html.split('id="step-problems-4"')[1].split("</ul>")[0]
    assert 'id="flow-warnings"' in html and "Step 3: Reads &#x27;outline&#x27;" in html
    node_four = html.split('data-step="4"')[1].split("</g>")[0]
    assert "for_each reads" in node_four  # the node's tooltip lists its problems


def test_the_layout_puts_a_chain_in_one_column_and_a_fan_out_in_one_row():
    def step(index, needs, level):
        return {"index": index, "output_key": f"s{index}", "payload": "p", "reads": [], "needs": needs, "level": level}

    chain = flow_diagram([step(0, [], 0), step(1, [0], 1), step(2, [1], 2)], has_inputs=False)
    assert {node.x for node in chain.nodes} == {chain.nodes[0].x} and not chain.parallel
    assert [node.y for node in chain.nodes] == sorted({node.y for node in chain.nodes})
    fan = flow_diagram([step(n, [], 0) for n in range(4)], has_inputs=True)
    assert len({node.y for node in fan.nodes}) == 1 and fan.parallel and fan.rows == 1
    assert fan.width >= 4 * fan.nodes[0].width and all(node.x + node.width <= fan.width for node in fan.nodes)


def test_an_edge_past_a_row_runs_in_a_lane_beside_the_nodes():
    def step(index, needs, level):
        return {"index": index, "output_key": f"s{index}", "payload": "p", "reads": [], "needs": needs, "level": level}

    diagram = flow_diagram([step(0, [], 0), step(1, [0], 1), step(2, [0, 1], 2)], has_inputs=False)
    long_edge = next(edge for edge in diagram.edges if (edge.source, edge.target) == (1, 3))
    xs = [float(point.split(",")[0]) for point in re.findall(r"-?\d+,-?\d+", long_edge.path)]
    right_of_nodes = max(node.x + node.width for node in diagram.nodes)
    assert max(xs) > right_of_nodes and max(xs) < diagram.width  # in the lane, inside the drawing
    short_edge = next(edge for edge in diagram.edges if (edge.source, edge.target) == (2, 3))
    assert "L" not in short_edge.path


def test_history_names_a_change_of_a_steps_flow(user_client, fan):
    assert user_client.post("/workflows/new/", _form(fan, FANNED)).status_code == 302
    workflow = Workflow.objects.get(name="fanned")
    changed = [*FANNED[:3], ("checked", "check", {**FANNED[3][2], "on_error": "null"})]
    assert user_client.post(f"/workflows/{workflow.pk}/", _form(fan, changed)).status_code == 302
    page = user_client.get(f"/workflows/{workflow.pk}/history/").content.decode()
    assert "for each line in outline · 2 at once · on error skip" in page
    assert "on error null" in page


def test_the_workflow_list_shows_which_steps_run_side_by_side(user_client, chain):
    from tests.flow_factories import make_flow_workflow

    make_flow_workflow(chain["endpoint"])
    html = user_client.get("/workflows/").content.decode()
    row = re.search(r'<a href="/workflows/\d+/">claims</a>.*?</tr>', html, re.S).group(0)
    assert re.sub(r"<[^>]+>|\s+", "", row.split("</td>")[1]) == "claims∥translated→checked"
